"""Python-side state of one account, and the fill arithmetic (entry price after a fill)."""

from __future__ import annotations

from connectors import venues
from monitor.store.book import Leg
from rules.account import STABLECOINS
from rules.model import MarginModel
from rules.types import ContractKind, Side

# A fill leaving less than this fraction of the larger of (old qty, fill) closed the position:
# float residue of e.g. 0.3 − 0.1 − 0.2 must not leave a 5e-17 contract position behind.
_CLOSE_REL = 1e-12


class AccountState:
    """Balances, legs, per-symbol leverage and model overrides, and update times."""

    __slots__ = (
        "account",
        "balances",
        "balances_recv_ms",
        "collateral_ratios",
        "index",
        "last_event_ms",
        "last_recv_ms",
        "legs",
        "leverage",
        "margin_asset",
        "missing_collateral",
        "multi_asset",
        "overrides",
        "pool_problem",
        "positions_recv_ms",
        "venue",
        "version",
    )

    def __init__(self, index: int, venue: str, account: str) -> None:
        self.index = index
        self.venue = venue
        self.account = account
        self.balances: dict[str, float] = {}
        self.collateral_ratios: dict[str, float] = {}
        self.multi_asset = False
        self.legs: dict[tuple[str, Side], Leg] = {}
        self.leverage: dict[str, float] = {}
        self.overrides: dict[str, MarginModel] = {}
        self.missing_collateral: str | None = None
        # Single-asset mode: the pool backing the cross legs (see margin_pool).
        self.margin_asset: str | None = None
        self.pool_problem: str | None = None
        self.last_recv_ms: int | None = None
        self.last_event_ms: int | None = None
        self.balances_recv_ms: int | None = None
        self.positions_recv_ms: int | None = None
        self.version = 0  # bumped on every structural change (liquidation cache key)

    def model_for(self, leg: Leg) -> MarginModel | None:
        """The leg's margin model: the account's override for its symbol, else the book's."""
        override = self.overrides.get(leg.symbol)
        return override if override is not None else leg.book.model

    def touch(
        self, event_ms: int, recv_ms: int, *, balances: bool = False, positions: bool = False
    ) -> None:
        self.last_recv_ms = recv_ms
        self.last_event_ms = event_ms
        if balances:
            self.balances_recv_ms = recv_ms
        if positions:
            self.positions_recv_ms = recv_ms

    def margin_pool(self) -> tuple[str | None, str | None]:
        """(margin asset, problem) in single-asset mode: the settle asset of the cross legs.

        Legs settling in different assets draw on separate pools, which one equity/MM pair cannot
        describe: the problem names them and the account is incomplete. Without cross legs, the
        venue's default margin asset; ``(None, None)`` (every balance counts) where there is none.
        """
        settles = {
            leg.book.settle_asset
            for leg in self.legs.values()
            if leg.cross and leg.book.settle_asset is not None
        }
        if len(settles) > 1:
            pools = " and ".join(sorted(s for s in settles if s is not None))
            return None, (
                f"collateral: positions margined in {pools} are separate pools in single-asset mode"
            )
        if settles:
            return settles.pop(), None
        # No cross position names the pool: the venue's own margin asset, if it has one.
        return venues.default_margin_asset(self.venue), None

    def noncash_value(self, prices: dict[str, float]) -> float:
        """USD value of positive non-stablecoin collateral (it moves with the market)."""
        if not self.multi_asset:
            return 0.0
        total = 0.0
        for asset, bal in self.balances.items():
            if asset in STABLECOINS or bal <= 0.0:
                continue
            price = prices.get(asset)
            if price is not None:
                total += bal * price
        return total


AccountKey = tuple[str, str]


class AccountRegistry:
    """Every account's python-side state by index, its key, and each venue's asset prices.

    Written by :class:`monitor.store.structure.Structure` only; the views read it.
    """

    __slots__ = ("index", "keys", "prices", "states")

    def __init__(self) -> None:
        self.states: list[AccountState] = []
        self.index: dict[AccountKey, int] = {}
        self.keys: list[AccountKey] = []  # append-only: row i of every per-account array
        self.prices: dict[str, dict[str, float]] = {}  # venue -> asset -> USD price

    def add(self, i: int, venue: str, account: str) -> None:
        self.index[(venue, account)] = i
        self.keys.append((venue, account))
        self.states.append(AccountState(i, venue, account))

    def of(self, key: AccountKey) -> AccountState:
        return self.states[self.index[key]]


def fill_result(
    old: Leg | None, qty_delta: float, price: float, kind: ContractKind | None
) -> tuple[float, float]:
    """(qty, entry) after a fill of ``qty_delta`` contracts at ``price``.

    Increase: average entry weighted by contracts (harmonic for inverse contracts, whose value
    is contracts/price). Reduce: entry unchanged. Close: qty 0. Flip: the rest opens at ``price``.
    """
    if old is None or old.qty == 0.0:
        return qty_delta, price
    q0, e0 = old.qty, old.entry
    q1 = q0 + qty_delta
    if abs(q1) <= _CLOSE_REL * max(abs(q0), abs(qty_delta)):
        return 0.0, e0
    if q0 * qty_delta > 0.0:
        if kind is ContractKind.INVERSE and e0 > 0.0 and price > 0.0:
            return q1, q1 / (q0 / e0 + qty_delta / price)
        return q1, (q0 * e0 + qty_delta * price) / q1
    if q0 * q1 > 0.0:
        return q1, e0
    return q1, price

"""Store and engine test fixtures: tier tables from spec/margin.md, event helpers, a list sink."""

from __future__ import annotations

import asyncio
import math

from connectors.events import Instrument, MarkPrice, PositionSnapshot, TierTableUpdate
from monitor.store import AccountKey, Changed, Store, StoreInput
from rules.account import AccountFigures
from rules.alerts import Alert, StateDocument
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, MarginMode, Side

VENUE = "binance-usdm"

# spec/margin.md §1.1.1, BTCUSDT default brackets (Oct 2024): (floor, cap, mmr, cum, max lev)
BTC_2024 = TierTable.from_tiers(
    "BTCUSDT",
    [
        TierSpec(f, c, m, d, lev)
        for f, c, m, d, lev in (
            (0, 50_000, 0.004, 0, 125),
            (50_000, 600_000, 0.005, 50, 100),
            (600_000, 3_000_000, 0.0065, 950, 75),
            (3_000_000, 12_000_000, 0.01, 11_450, 50),
            (12_000_000, 70_000_000, 0.02, 131_450, 25),
            (70_000_000, 100_000_000, 0.025, 481_450, 20),
            (100_000_000, 230_000_000, 0.05, 2_981_450, 10),
            (230_000_000, 480_000_000, 0.10, 14_481_450, 5),
            (480_000_000, 600_000_000, 0.125, 26_481_450, 4),
            (600_000_000, 800_000_000, 0.15, 41_481_450, 3),
            (800_000_000, 1_200_000_000, 0.25, 121_481_450, 2),
            (1_200_000_000, 1_800_000_000, 0.50, 421_481_450, 1),
        )
    ],
)

# OKX-style: no deductions, so MM jumps at each floor (spec §3.2).
OKX_ETH = TierTable.from_tiers(
    "ETH",
    [
        TierSpec(0, 20_000, 0.01, None, 50),
        TierSpec(20_000, 60_000, 0.02, None, 20),
        TierSpec(60_000, math.inf, 0.05, None, 10),
    ],
    deduction=False,
)

# spec/margin.md §1.1.2, the 2020–21 BTCUSDT table behind Binance's worked example (§1.4.1).
BTC_2021 = TierTable.from_tiers(
    "BTCUSDT",
    [
        TierSpec(f, c, m, d, lev)
        for f, c, m, d, lev in (
            (0, 50_000, 0.004, 0, 125),
            (50_000, 250_000, 0.005, 50, 100),
            (250_000, 1_000_000, 0.01, 1_300, 50),
            (1_000_000, 10_000_000, 0.025, 16_300, 20),
            (10_000_000, 20_000_000, 0.05, 266_300, 10),
            (20_000_000, 50_000_000, 0.10, 1_266_300, 5),
            (50_000_000, 100_000_000, 0.125, 2_516_300, 4),
            (100_000_000, 200_000_000, 0.15, 5_016_300, 3),
            (200_000_000, 300_000_000, 0.25, 25_016_300, 2),
            (300_000_000, 500_000_000, 0.50, 100_016_300, 1),
        )
    ],
)


def linear(symbol: str, venue: str = VENUE, contract_size: float = 1.0) -> Instrument:
    return Instrument(venue, symbol, ContractKind.LINEAR, contract_size, "USDT")


def table(symbol: str, model: TierTable, venue: str = VENUE) -> TierTableUpdate:
    return TierTableUpdate(venue, symbol, model)


def mark(symbol: str, price: float, ms: int = 0, venue: str = VENUE) -> MarkPrice:
    return MarkPrice(venue, symbol, price, ms)


def position(
    account: str,
    symbol: str,
    qty: float,
    entry: float,
    side: Side = Side.BOTH,
    *,
    venue: str = VENUE,
    mode: MarginMode = MarginMode.CROSS,
    leverage: float | None = None,
    isolated_margin: float | None = None,
    ms: int = 0,
) -> PositionSnapshot:
    return PositionSnapshot(
        venue, account, symbol, side, qty, entry, ms, mode, leverage, isolated_margin
    )


def apply_all(store: Store, event: StoreInput, recv_ms: int) -> list[Changed]:
    """Apply ``event`` through the store's one door, a batch's ``rest`` too, as the engine
    does: one :class:`Changed` per part applied."""
    out = [store.apply(event, recv_ms)]
    while out[-1].rest is not None:
        out.append(store.apply(out[-1].rest, recv_ms))
    return out


def assert_matches_scratch(store: Store, key: AccountKey) -> AccountFigures:
    """The store's figures equal the from-scratch recomputation within the proven bound."""
    scratch = store.recompute(key)
    fig = store.figures(key)
    bound = fig.error_bound
    # Equity adds one rounding of C + U on top of the uPnL bound.
    eq_tol = bound + 2.0**-52 * abs(scratch.equity)
    assert abs(fig.equity - scratch.equity) <= eq_tol, (fig.equity, scratch.equity, eq_tol)
    mm_err = abs(fig.maintenance_margin - scratch.maintenance_margin)
    assert mm_err <= bound, (fig.maintenance_margin, scratch.maintenance_margin, bound)
    im_err = abs(fig.initial_margin - scratch.initial_margin)
    assert im_err <= bound, (fig.initial_margin, scratch.initial_margin, bound)
    if math.isinf(scratch.health):
        assert math.isinf(fig.health)
    else:
        mm = scratch.maintenance_margin
        h = abs(scratch.health)
        h_tol = eq_tol / mm + h * bound / mm + 2.0**-51 * h
        assert abs(fig.health - scratch.health) <= h_tol * (1 + 1e-6), (fig.health, h_tol)
    return scratch


class ListSink:
    """In-memory sink: keeps what it was handed, in order; ``enough`` is set once it holds
    ``want`` alerts (0: never)."""

    name = "list"

    def __init__(self, want: int = 0) -> None:
        self.alerts: list[Alert] = []
        self.states: list[StateDocument] = []
        self.want = want
        self.enough = asyncio.Event()

    def submit(self, alert: Alert) -> None:
        self.alerts.append(alert)
        if self.want and len(self.alerts) >= self.want:
            self.enough.set()

    def submit_state(self, state: StateDocument) -> None:
        self.states.append(state)

    async def run(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def pending(self) -> int:
        return 0

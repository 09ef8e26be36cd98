"""Read side of the store: figures, inputs, times and the metrics collector's arrays.

:class:`StoreViews` reads what the write side (:mod:`monitor.store.structure`,
:mod:`monitor.store.marks`) keeps and changes none of it, except the liquidation results it
caches (:class:`~monitor.store.risk.RiskCache`). ``Store`` answers its queries through it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from monitor.store.accounts import DIST_SLOPE, AccountTable
from monitor.store.book import F64, I64, BoolA, InstrumentBook, Leg
from monitor.store.books import Books, InstrumentKey
from monitor.store.distance import clear_of_threshold
from monitor.store.risk import RiskCache, build_risk
from monitor.store.state import AccountKey, AccountRegistry, AccountState
from rules.account import (
    AccountFigures,
    AccountInput,
    PositionFigures,
    PositionInput,
    account_figures,
    venue_ratio,
)
from rules.alerts import AccountRisk
from rules.errors import ModelInputError
from rules.staleness import MissingInput, MissingKind
from rules.types import Side


@dataclass(frozen=True, slots=True)
class AccountTimes:
    """Receive times (ms) of the account's private inputs; ``None`` until first seen."""

    last_event_recv_ms: int | None
    last_event_ms: int | None
    balances_recv_ms: int | None
    positions_recv_ms: int | None


@dataclass(frozen=True, slots=True)
class StoreFigures:
    """What ``calc`` shows for one account, from the incremental state."""

    equity: float
    maintenance_margin: float
    initial_margin: float
    margin_ratio: float
    health: float
    gross_notional: float
    error_bound: float
    complete: bool


@dataclass(frozen=True, slots=True)
class FiguresArrays:
    """Scrape-time view for the metrics collector; row ``i`` is ``keys[i]``. NaN = unknown."""

    keys: list[AccountKey]
    equity: F64
    maintenance_margin: F64
    initial_margin: F64
    health: F64
    margin_ratio: F64
    complete: BoolA
    liq_distance_down: F64  # last computed (NaN: never computed, or no liquidation that way)
    liq_distance_up: F64


class StoreViews:
    """Queries over the store's state (see :class:`monitor.store.core.Store`)."""

    def __init__(
        self, table: AccountTable, books: Books, registry: AccountRegistry, risk: RiskCache
    ) -> None:
        self._table = table
        self._books = books
        self._reg = registry
        self.risk_cache = risk

    # --- queries -----------------------------------------------------------------------------

    def index_of(self, key: AccountKey) -> int | None:
        return self._reg.index.get(key)

    def key_of(self, index: int) -> AccountKey:
        st = self._reg.states[index]
        return (st.venue, st.account)

    def accounts(self) -> Iterator[AccountKey]:
        return iter(list(self._reg.index))

    def state(self, key: AccountKey) -> AccountState:
        return self._reg.states[self._reg.index[key]]

    def book(self, key: InstrumentKey) -> InstrumentBook | None:
        return self._books.get(key)

    def holds(self, key: InstrumentKey) -> bool:
        return self._books.holds(key)

    def instruments(self) -> list[InstrumentKey]:
        return [key for key, _ in self._books.items()]

    def complete(self, index: int) -> bool:
        """Whether every input of the account is known (else its figures are unknown)."""
        return bool(self._table.complete.item(index))

    def health(self, index: int) -> float:
        """Equity / MM from the incremental sums (``inf`` without MM); meaningful if complete."""
        return self._table.health_of(index)

    def healths(self, indices: I64) -> F64:
        """:meth:`health` of many accounts, vectorised (NaN or ±inf where MM is 0)."""
        t = self._table
        with np.errstate(divide="ignore", invalid="ignore"):
            out: F64 = (t.coll[indices] + t.upnl[indices]) / t.mm[indices]
        return out

    def band(self, index: int) -> tuple[float, float]:
        """The quiet band the store screens with (as stored: shrunk by 1e-12 relative;
        ``(inf, -inf)`` until the alert policy set one)."""
        return self._table.band_lo.item(index), self._table.band_hi.item(index)

    def collateral(self, index: int) -> float:
        """The account's collateral value (NaN while unknown)."""
        return self._table.coll.item(index)

    def is_candidate(self, index: int) -> bool:
        """The full screen: whether the account needs the alert policy at its figures now."""
        return self._table.is_candidate(index)

    def times(self, key: AccountKey) -> AccountTimes:
        st = self.state(key)
        return AccountTimes(
            st.last_recv_ms, st.last_event_ms, st.balances_recv_ms, st.positions_recv_ms
        )

    def mark_recv_times(self, key: AccountKey) -> dict[str, int | None]:
        """Last mark receive time of every instrument the account holds (``None``: no mark)."""
        return {leg.symbol: leg.book.mark_recv_ms for leg in self.state(key).legs.values()}

    def missing_inputs(self, key: AccountKey) -> tuple[str, ...]:
        """Why the account's figures are unknown: one line per missing input; empty if none."""
        st = self.state(key)
        out: list[str] = []
        if st.last_recv_ms is None:
            out.append("private: no account data received yet")
        if st.missing_collateral is not None:
            out.append(st.missing_collateral)
        for leg in st.legs.values():
            if leg.row >= 0:
                continue
            what = [name for name, _ in self._leg_gaps(leg)]
            out.append(f"{leg.symbol} {leg.side.value}: no {', '.join(what)}")
        return tuple(out)

    def missing_list(self, key: AccountKey) -> list[MissingInput]:
        """:meth:`missing_inputs` as (kind, symbol, reason) for the inputs-missing alert: kinds
        ``instrument``, ``model``, ``mark`` (per symbol) and ``collateral``. An account with no
        private data yet is not listed: the private stream's staleness speaks for it."""
        st = self.state(key)
        out: list[MissingInput] = []
        if st.missing_collateral is not None:
            out.append(MissingInput("collateral", None, st.missing_collateral))
        seen: set[tuple[str, str]] = set()
        for leg in st.legs.values():
            if leg.row >= 0:
                continue
            for what, kind in self._leg_gaps(leg):
                if (kind, leg.symbol) not in seen:
                    seen.add((kind, leg.symbol))
                    out.append(MissingInput(kind, leg.symbol, f"{leg.symbol}: no {what}"))
        return out

    def _leg_gaps(self, leg: Leg) -> list[tuple[str, MissingKind]]:
        """What a held leg lacks: (description, kind)."""
        model_for = self._reg.states[leg.account].model_for
        book = leg.book
        gaps: list[tuple[str, MissingKind]] = []
        if book.kind is None:
            gaps.append(("instrument", "instrument"))
        if leg.model is None and model_for(leg) is None:
            gaps.append(("margin model", "model"))
        if book.mark is None:
            gaps.append(("mark price", "mark"))
        return gaps

    def error_bound(self, key: AccountKey) -> float:
        """Proven bound on |stored sum − exact sum of the legs' figures| for U, MM, IM, G."""
        return self._table.error_bound(self._reg.index[key])

    def figures(self, key: AccountKey) -> StoreFigures:
        i = self._reg.index[key]
        t = self._table
        eq, mm = t.equity_of(i), t.mm.item(i)
        complete = bool(t.complete[i])
        nan = math.nan
        return StoreFigures(
            equity=eq if complete else nan,
            maintenance_margin=mm if complete else nan,
            initial_margin=t.im.item(i) if complete else nan,
            margin_ratio=venue_ratio(key[0], eq, mm) if complete else nan,
            health=t.health_of(i) if complete else nan,
            gross_notional=t.gross.item(i),
            error_bound=t.error_bound(i),
            complete=complete,
        )

    def legs(self, key: AccountKey) -> list[Leg]:
        return list(self.state(key).legs.values())

    def leg_figures(self, leg: Leg) -> PositionFigures | None:
        if leg.row < 0:
            return None
        return PositionFigures(*leg.book.row_figures(leg.row))

    def account_input(self, key: AccountKey) -> AccountInput:
        """The account as :mod:`rules.account` input; raises ModelInputError while incomplete."""
        st = self.state(key)
        missing = self.missing_inputs(key)
        if missing:
            raise ModelInputError(f"{key[1]}@{key[0]}: inputs missing: {'; '.join(missing)}")
        positions: list[PositionInput] = []
        for leg in st.legs.values():
            book = leg.book
            assert book.kind is not None and book.contract_size is not None
            assert book.mark is not None and leg.model is not None
            positions.append(
                PositionInput(
                    leg.symbol,
                    leg.side,
                    leg.qty,
                    leg.entry,
                    book.mark,
                    book.kind,
                    book.contract_size,
                    leg.model,
                    leg.margin_mode,
                    leg.leverage,
                    leg.isolated_margin,
                )
            )
        return AccountInput(
            st.venue,
            dict(st.balances),
            tuple(positions),
            dict(st.collateral_ratios),
            dict(self._reg.prices.get(st.venue, {})),
            st.multi_asset,
            st.margin_asset,
        )

    def recompute(self, key: AccountKey) -> AccountFigures:
        """From scratch through :func:`rules.account.account_figures` (the reference)."""
        return account_figures(self.account_input(key))

    def position_mm(self, key: AccountKey) -> dict[tuple[str, Side], float | None]:
        return {
            (leg.symbol, leg.side): (None if leg.row < 0 else leg.book.mm.item(leg.row))
            for leg in self.state(key).legs.values()
        }

    def version(self, index: int) -> int:
        return self._reg.states[index].version

    def risk(
        self,
        key: AccountKey,
        *,
        event_ms: int = 0,
        recv_ms: int = 0,
        with_liquidation: bool = True,
        with_prices: bool | None = None,
    ) -> AccountRisk:
        """The alert policy's view; liquidation figures computed lazily and cached.

        ``with_liquidation`` computes the distance (and, unless ``with_prices`` is False, the
        per-position liquidation prices).
        """
        return build_risk(
            self,
            key,
            event_ms=event_ms,
            recv_ms=recv_ms,
            with_distance=with_liquidation,
            with_prices=with_liquidation if with_prices is None else with_prices,
        )

    def distance_maybe_near(self, index: int) -> bool:
        """The conservative screen: False proves the distance is at least the threshold."""
        t = self._table
        dist3 = t.dist3.item(index)
        slack = dist3 * (t.gross.item(index) + t.noncash.item(index))
        if not t.equity_of(index) - t.mm.item(index) < slack:
            return False
        # The leg-level screen (monitor.store.distance): net exposure instead of 3× gross.
        st = self._reg.states[index]
        prices = self._reg.prices.get(st.venue, {})
        return not clear_of_threshold(st, t.coll.item(index), prices, dist3 / DIST_SLOPE)

    def figures_arrays(self) -> FiguresArrays:
        """Every account's figures as arrays, vectorised (the metrics collector's scrape).

        ``keys`` is the store's own list (append-only, never copied): do not mutate it.
        """
        t = self._table
        n = t.n
        complete = t.complete[:n].copy()
        nan = np.where(complete, 0.0, math.nan)  # NaN marks unknown rows
        eq = t.coll[:n] + t.upnl[:n] + nan
        mm = t.mm[:n] + nan
        with np.errstate(divide="ignore", invalid="ignore"):
            health = np.where(mm == 0.0, math.inf, eq / mm)
            # rules.account.venue_ratio, vectorised: MM/equity (inf when equity <= 0, 0 without
            # MM) or, for equity-over-MM venues, equity/MM (inf without MM).
            mm_over_eq = np.where(mm == 0.0, 0.0, np.where(eq <= 0.0, math.inf, mm / eq))
            ratio = np.where(t.eq_over_mm[:n], health, mm_over_eq)
        ratio[~complete] = math.nan
        down = np.full(n, math.nan)
        up = np.full(n, math.nan)
        for i, (_, (d, u)) in self.risk_cache.distance.items():
            if i < n:
                down[i] = math.nan if d is None else d
                up[i] = math.nan if u is None else u
        return FiguresArrays(
            keys=self._reg.keys,
            equity=eq,
            maintenance_margin=mm,
            initial_margin=t.im[:n] + nan,
            health=health,
            margin_ratio=ratio,
            complete=complete,
            liq_distance_down=down,
            liq_distance_up=up,
        )

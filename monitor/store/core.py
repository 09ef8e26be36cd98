"""The incremental margin state store: one write door, ``apply(event)``, in plain sync code.

The store is composed of collaborators, each with one job:

* :class:`~monitor.store.accounts.AccountTable` — per-account sums (uPnL, MM, IM, gross
  notional), collateral, health and the alert policy's quiet band as numpy rows, kept
  incrementally with a proven error bound (see there for the exactness guarantee);
* :class:`~monitor.store.books.Books` — one :class:`~monitor.store.book.InstrumentBook` per
  instrument, every active leg on it as numpy columns;
* :class:`~monitor.store.structure.Structure` — events that change structure (positions,
  balances, instruments, tier tables), re-summing the accounts they touch exactly;
* :class:`~monitor.store.marks.MarkRouter` — marks, through the tick kernels of
  :mod:`monitor.store.kernels` (the hot path): a tick costs O(legs on that instrument) and
  returns only the accounts whose health left their quiet band (or whose liquidation distance
  may be under its threshold);
* :class:`~monitor.store.views.StoreViews` — every query, read-only.

A leg whose instrument facts, margin model or first mark are missing is *held*: its account is
incomplete, its figures unknown (never zero), and :meth:`Store.missing_inputs` names what is
missing. Incomplete accounts are never alert candidates; staleness covers them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from connectors.events import (
    AccountSnapshot,
    AssetPrice,
    BalanceUpdate,
    CollateralModeUpdate,
    Event,
    Instrument,
    LeverageUpdate,
    MarkPrice,
    MarkRun,
    PositionFill,
    PositionSnapshot,
    TierTableUpdate,
)
from monitor.store.accounts import DIST_SLOPE, AccountTable
from monitor.store.book import F64, I64, InstrumentBook, Leg
from monitor.store.books import Books, InstrumentKey
from monitor.store.changed import EMPTY, NO_CHANGE, Changed, MarkTail
from monitor.store.marks import MarkRouter
from monitor.store.risk import RiskCache
from monitor.store.settings import DistanceThreshold, KnownAccount, QuietBand, StoreSetting
from monitor.store.state import AccountKey, AccountRegistry, AccountState
from monitor.store.structure import Structure
from monitor.store.views import AccountTimes, FiguresArrays, StoreFigures, StoreViews
from rules.account import AccountFigures, AccountInput, PositionFigures
from rules.alerts import AccountRisk
from rules.staleness import MissingInput
from rules.types import Side

__all__ = [
    "NO_CHANGE",
    "AccountKey",
    "AccountTimes",
    "Changed",
    "DistanceThreshold",
    "FiguresArrays",
    "InstrumentKey",
    "KnownAccount",
    "MarkTail",
    "QuietBand",
    "Store",
    "StoreFigures",
    "StoreInput",
]

# What apply takes: a venue event, a batch of marks (a list or tuple of MarkPrice: applied as
# one batch, split at held repeats; a MarkTail: the rest of one), or one of the engine's
# settings.
StoreInput = Event | Sequence[MarkPrice] | MarkTail | StoreSetting


class Store:
    """Incremental per-account margin state for every watched account."""

    def __init__(self) -> None:
        table = self._table = AccountTable()
        books = self._books = Books()  # (read by the tests of the store's internals too)
        registry = AccountRegistry()
        self._flips: list[int] = []  # completeness flips of the event being applied
        structure = self._structure = Structure(table, books, registry, self._flips)
        marks = MarkRouter(table, books, structure)
        self._views = StoreViews(table, books, registry, RiskCache())
        # One handler per type. Single events are followed by a queued re-sum or few; the
        # batch routes of marks do theirs themselves (once per part applied).
        self._handlers: dict[type, Callable[[Any, int], Changed]] = {
            MarkRun: marks.run,
            list: marks.marks,
            tuple: marks.marks,
            MarkTail: marks.tail,
            QuietBand: self._set_band,
            DistanceThreshold: self._set_distance_threshold,
            KnownAccount: self._known_account,
        }
        single: dict[type, Callable[[Any, int], Changed]] = {
            MarkPrice: marks.mark,
            AssetPrice: structure.on_asset_price,
            Instrument: structure.on_instrument,
            TierTableUpdate: structure.on_tier_table,
            PositionSnapshot: structure.on_position,
            PositionFill: structure.on_fill,
            BalanceUpdate: structure.on_balance,
            LeverageUpdate: structure.on_leverage,
            CollateralModeUpdate: structure.on_collateral_mode,
            AccountSnapshot: structure.on_account_snapshot,
        }
        for kind, handler in single.items():
            self._handlers[kind] = self._then_resums(handler)

    # --- the write door ----------------------------------------------------------------------

    def apply(self, event: StoreInput, recv_ms: int) -> Changed:
        """Apply one event received at ``recv_ms``; return what it changed (:class:`Changed`).

        A batch of marks (:class:`MarkRun`, or a list of :class:`MarkPrice`) may be applied in
        part: apply ``Changed.rest`` next, until it is ``None``. The engine's settings
        (:mod:`monitor.store.settings`) change only what the screen compares with, and
        ``recv_ms`` means nothing to them. Events that change no state (e.g. a
        :class:`~connectors.events.FeedStatus`) return :data:`NO_CHANGE`.
        """
        handler = self._handlers.get(type(event))
        if handler is None:
            return NO_CHANGE
        changed = handler(event, recv_ms)
        flips = self._flips
        if flips:
            changed = changed._replace(flips=tuple(dict.fromkeys(flips)))
            flips.clear()
        return changed

    def _then_resums(self, handler: Callable[[Any, int], Changed]) -> Callable[[Any, int], Changed]:
        drain = self._structure.drain_resums

        def apply_one(event: Any, recv_ms: int) -> Changed:
            changed = handler(event, recv_ms)
            drain()
            return changed

        return apply_one

    def watch(self, venue: str, account: str) -> int:
        """A configured account, before any of its events: incomplete (its figures are unknown,
        not zero) until its first private event arrives. Returns its index."""
        return self._structure.watch(venue, account)

    def _set_band(self, s: QuietBand, recv_ms: int) -> Changed:
        self._table.set_band(s.index, s.lo, s.hi)
        return NO_CHANGE

    def _set_distance_threshold(self, s: DistanceThreshold, recv_ms: int) -> Changed:
        # NaN compares false (never near, no warnings); beyond a third the prefilter's slope
        # bound no longer holds, so a huge finite factor makes every account near.
        t, threshold = self._table, s.threshold
        if threshold is None:
            t.set_dist3(s.index, math.nan)
        elif threshold > 1.0 / 3.0:
            t.set_dist3(s.index, 1e200)
        else:
            t.set_dist3(s.index, DIST_SLOPE * threshold)
        return NO_CHANGE

    def _known_account(self, s: KnownAccount, recv_ms: int) -> Changed:
        i = self._structure.account(s.venue, s.account)
        return Changed(np.array([i], dtype=np.int64), EMPTY)

    # --- queries (see monitor.store.views) ---------------------------------------------------

    def index_of(self, key: AccountKey) -> int | None:
        return self._views.index_of(key)

    def key_of(self, index: int) -> AccountKey:
        return self._views.key_of(index)

    def accounts(self) -> Iterator[AccountKey]:
        return self._views.accounts()

    def state(self, key: AccountKey) -> AccountState:
        return self._views.state(key)

    def book(self, key: InstrumentKey) -> InstrumentBook | None:
        return self._views.book(key)

    def holds(self, key: InstrumentKey) -> bool:
        """Whether any leg (active or held) sits on the instrument."""
        return self._views.holds(key)

    def instruments(self) -> list[InstrumentKey]:
        """Every instrument seen so far (each has a book)."""
        return self._views.instruments()

    def complete(self, index: int) -> bool:
        return self._views.complete(index)

    def health(self, index: int) -> float:
        return self._views.health(index)

    def healths(self, indices: I64) -> F64:
        return self._views.healths(indices)

    def band(self, index: int) -> tuple[float, float]:
        return self._views.band(index)

    def collateral(self, index: int) -> float:
        return self._views.collateral(index)

    def is_candidate(self, index: int) -> bool:
        return self._views.is_candidate(index)

    def times(self, key: AccountKey) -> AccountTimes:
        return self._views.times(key)

    def mark_recv_times(self, key: AccountKey) -> dict[str, int | None]:
        return self._views.mark_recv_times(key)

    def missing_inputs(self, key: AccountKey) -> tuple[str, ...]:
        return self._views.missing_inputs(key)

    def missing_list(self, key: AccountKey) -> list[MissingInput]:
        return self._views.missing_list(key)

    def error_bound(self, key: AccountKey) -> float:
        return self._views.error_bound(key)

    def figures(self, key: AccountKey) -> StoreFigures:
        return self._views.figures(key)

    def legs(self, key: AccountKey) -> list[Leg]:
        return self._views.legs(key)

    def leg_figures(self, leg: Leg) -> PositionFigures | None:
        return self._views.leg_figures(leg)

    def account_input(self, key: AccountKey) -> AccountInput:
        return self._views.account_input(key)

    def recompute(self, key: AccountKey) -> AccountFigures:
        return self._views.recompute(key)

    def position_mm(self, key: AccountKey) -> dict[tuple[str, Side], float | None]:
        return self._views.position_mm(key)

    def version(self, index: int) -> int:
        return self._views.version(index)

    def risk(
        self,
        key: AccountKey,
        *,
        event_ms: int = 0,
        recv_ms: int = 0,
        with_liquidation: bool = True,
        with_prices: bool | None = None,
    ) -> AccountRisk:
        return self._views.risk(
            key,
            event_ms=event_ms,
            recv_ms=recv_ms,
            with_liquidation=with_liquidation,
            with_prices=with_prices,
        )

    def distance_maybe_near(self, index: int) -> bool:
        return self._views.distance_maybe_near(index)

    def figures_arrays(self) -> FiguresArrays:
        return self._views.figures_arrays()

"""The incremental margin state store: ``apply(event)`` in plain synchronous code.

State lives in two layers: :class:`~monitor.store.book.InstrumentBook` holds every active position
leg
of one instrument as numpy columns; :class:`~monitor.store.accounts.AccountTable` holds per-account
sums (uPnL, MM, IM, gross notional), collateral, equity, health and the alert policy's quiet band.
A mark tick costs O(legs on that instrument): vectorised leg figures, ``np.add.at`` of the deltas
into the account sums, vectorised health of the touched accounts, and a vectorised screen that
returns only the accounts whose health left their quiet band (or whose liquidation distance may
be under its threshold). Everything else (fills, snapshots, balances, tier tables) is structural,
python, and re-sums the accounts it touches exactly. See :mod:`monitor.store.accounts` for the
exactness guarantee, and :mod:`monitor.store.marks` for how marks are applied.

A leg whose instrument facts, margin model or first mark are missing is *held*: its account is
incomplete, its figures unknown (never zero), and :meth:`Store.missing_inputs` names what is
missing. Incomplete accounts are never alert candidates; staleness covers them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
from monitor.store.accounts import AccountTable
from monitor.store.book import I64, InstrumentBook, Leg
from monitor.store.kernels import FrameCache
from monitor.store.marks import NO_CHANGE, Changed, StoreMarks
from monitor.store.risk import RiskCache
from monitor.store.state import AccountState, fill_result
from monitor.store.views import (
    AccountKey,
    AccountTimes,
    FiguresArrays,
    InstrumentKey,
    StoreFigures,
    StoreViews,
)
from rules.account import (
    EQUITY_OVER_MM_VENUES,
    AccountInput,
    collateral_value,
)
from rules.errors import ModelInputError
from rules.types import MarginMode

__all__ = [
    "NO_CHANGE",
    "AccountKey",
    "AccountTimes",
    "Changed",
    "FiguresArrays",
    "InstrumentKey",
    "Store",
    "StoreFigures",
]


class Store(StoreMarks, StoreViews):
    """Incremental per-account margin state for every watched account."""

    def __init__(self) -> None:
        self._books: dict[InstrumentKey, InstrumentBook] = {}
        self._venue_books: dict[str, dict[str, InstrumentBook]] = {}  # venue -> symbol -> book
        # venue -> symbol -> book nobody holds (each book keeps itself in or out of it)
        self._idle: dict[str, dict[str, InstrumentBook]] = {}
        self._accounts: list[AccountState] = []
        self._index: dict[AccountKey, int] = {}
        self._keys: list[AccountKey] = []
        self._prices: dict[str, dict[str, float]] = {}
        self._multi: dict[str, set[int]] = {}  # venue -> multi-asset accounts
        self.table = AccountTable()
        self._dirty: set[int] = set()
        # Accounts whose completeness changed since the engine last looked (it drains this).
        self.flips: list[int] = []
        self.risk_cache = RiskCache()
        self._frame = FrameCache()
        self._touched_of: dict[tuple[int, ...], I64] = {}  # see _small_changed
        self._handlers: dict[type, Callable[[Any, int], Changed]] = {
            MarkPrice: self._on_mark,
            MarkRun: self._on_mark_run,
            AssetPrice: self._on_asset_price,
            Instrument: self._on_instrument,
            TierTableUpdate: self._on_tier_table,
            PositionSnapshot: self._on_position,
            PositionFill: self._on_fill,
            BalanceUpdate: self._on_balance,
            LeverageUpdate: self._on_leverage,
            CollateralModeUpdate: self._on_collateral_mode,
            AccountSnapshot: self._on_account_snapshot,
        }

    # --- applying events ---------------------------------------------------------------------

    def apply(self, event: Event, recv_ms: int) -> Changed:
        """Apply one event; return the accounts it changed (MarginCall etc. change nothing)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return NO_CHANGE
        changed = handler(event, recv_ms)
        self._drain_resums()
        return changed

    def _finish(self) -> Changed:
        """Re-sum the structurally changed accounts; report them and the candidates."""
        dirty = sorted(self._dirty)
        self._dirty.clear()
        accounts = self._accounts
        for i in dirty:
            st = accounts[i]
            if not st.multi_asset and st.margin_pool() != (st.margin_asset, st.pool_problem):
                self._value_collateral(i)  # the legs now settle in another pool
            self._resum(i)
        cands = [i for i in dirty if self.table.is_candidate(i)]
        return Changed(np.array(dirty, dtype=np.int64), np.array(cands, dtype=np.int64))

    def _on_asset_price(self, ev: AssetPrice, recv_ms: int) -> Changed:
        self._prices.setdefault(ev.venue, {})[ev.asset] = ev.price
        for i in self._multi.get(ev.venue, ()):
            if ev.asset in self._accounts[i].balances:
                self._revalue(i)
        return self._finish()

    def _on_instrument(self, ev: Instrument, recv_ms: int) -> Changed:
        book = self._book(ev.venue, ev.symbol)
        if book.kind is ev.kind and book.contract_size == ev.contract_size:
            book.settle_asset = ev.settle_asset
            return NO_CHANGE
        active = list(book.legs)
        for leg in active:  # contract facts changed: re-add every leg under the new facts
            book.remove(leg)
            book.hold(leg)
        book.kind, book.contract_size, book.settle_asset = (
            ev.kind,
            ev.contract_size,
            ev.settle_asset,
        )
        self._activate_held(book)
        return self._finish()

    def _on_tier_table(self, ev: TierTableUpdate, recv_ms: int) -> Changed:
        book = self._book(ev.venue, ev.symbol)
        if ev.account is None:
            book.model = ev.model
            for leg in book.legs:
                st = self._accounts[leg.account]
                if ev.symbol not in st.overrides:
                    book.set_model(leg, ev.model)
                    self._dirty.add(leg.account)
        else:
            i = self._account(ev.venue, ev.account)
            st = self._accounts[i]
            st.overrides[ev.symbol] = ev.model
            for leg in st.legs.values():
                if leg.symbol == ev.symbol and leg.row >= 0:
                    book.set_model(leg, ev.model)
            self._dirty.add(i)
        self._activate_held(book)
        return self._finish()

    def _on_position(self, ev: PositionSnapshot, recv_ms: int) -> Changed:
        i = self._account(ev.venue, ev.account)
        st = self._accounts[i]
        st.touch(ev.event_ms, recv_ms, positions=True)
        self._set_leg(i, ev)
        return self._finish()

    def _on_fill(self, ev: PositionFill, recv_ms: int) -> Changed:
        i = self._account(ev.venue, ev.account)
        st = self._accounts[i]
        st.touch(ev.event_ms, recv_ms, positions=True)
        if ev.position_pushed:
            # The venue pushes the resulting absolute position itself (Binance ACCOUNT_UPDATE):
            # applying the delta too would count the fill twice.
            return NO_CHANGE
        old = st.legs.get((ev.symbol, ev.side))
        book = self._book(ev.venue, ev.symbol)
        qty, entry = fill_result(old, ev.qty_delta, ev.price, book.kind)
        mode = MarginMode.CROSS if old is None else old.margin_mode
        lev = None if old is None else old.leverage
        iso = None if old is None else old.isolated_margin
        snap = PositionSnapshot(
            ev.venue, ev.account, ev.symbol, ev.side, qty, entry, ev.event_ms, mode, lev, iso
        )
        # A fill keeps the leg's own leverage (None included): the account's per-symbol
        # leverage applies to legs it opens, not to one that already existed without it.
        self._set_leg(i, snap, inherit_leverage=old is None)
        return self._finish()

    def _on_balance(self, ev: BalanceUpdate, recv_ms: int) -> Changed:
        i = self._account(ev.venue, ev.account)
        st = self._accounts[i]
        st.touch(ev.event_ms, recv_ms, balances=True)
        st.balances[ev.asset] = ev.wallet_balance
        self._revalue(i)
        return self._finish()

    def _on_leverage(self, ev: LeverageUpdate, recv_ms: int) -> Changed:
        i = self._account(ev.venue, ev.account)
        st = self._accounts[i]
        st.touch(ev.event_ms, recv_ms)
        st.leverage[ev.symbol] = ev.leverage
        for leg in st.legs.values():
            if leg.symbol == ev.symbol:
                leg.book.set_leverage(leg, ev.leverage)
        self._dirty.add(i)
        return self._finish()

    def _on_collateral_mode(self, ev: CollateralModeUpdate, recv_ms: int) -> Changed:
        i = self._account(ev.venue, ev.account)
        st = self._accounts[i]
        st.touch(ev.event_ms, recv_ms, balances=True)
        st.multi_asset = ev.multi_asset
        self._revalue(i)
        return self._finish()

    def _on_account_snapshot(self, ev: AccountSnapshot, recv_ms: int) -> Changed:
        i = self._account(ev.venue, ev.account)
        st = self._accounts[i]
        st.touch(ev.event_ms, recv_ms, balances=True, positions=True)
        for leg in list(st.legs.values()):
            self._drop_leg(st, leg)
        st.balances = dict(ev.balances)
        st.collateral_ratios = dict(ev.collateral_ratios)
        st.multi_asset = ev.multi_asset
        for p in ev.positions:
            self._set_leg(i, p)
        self._revalue(i)
        return self._finish()

    # --- structural helpers ------------------------------------------------------------------

    def _book(self, venue: str, symbol: str) -> InstrumentBook:
        book = self._books.get((venue, symbol))
        if book is None:
            idle = self._idle.setdefault(venue, {})
            book = self._books[(venue, symbol)] = InstrumentBook(venue, symbol, idle)
            self._venue_books.setdefault(venue, {})[symbol] = book
        return book

    def _account(self, venue: str, account: str) -> int:
        i = self._index.get((venue, account))
        if i is None:
            i = self.table.new_account()
            self._index[(venue, account)] = i
            self._keys.append((venue, account))
            self.table.eq_over_mm[i] = venue in EQUITY_OVER_MM_VENUES
            self._accounts.append(AccountState(i, venue, account))
        return i

    def _attach(self, leg: Leg) -> None:
        book = leg.book
        model = self._model_for(leg)
        if model is not None and book.ready():
            book.add(leg, model)
        else:
            leg.model = model
            book.hold(leg)
        self._dirty.add(leg.account)

    def _activate_held(self, book: InstrumentBook) -> None:
        for leg in list(book.held):
            if book.ready() and self._model_for(leg) is not None:
                book.release(leg)
                self._attach(leg)

    def _drop_leg(self, st: AccountState, leg: Leg) -> None:
        if leg.row >= 0:
            leg.book.remove(leg)
        else:
            leg.book.release(leg)
        del st.legs[(leg.symbol, leg.side)]
        self._dirty.add(st.index)

    def _set_leg(self, i: int, p: PositionSnapshot, *, inherit_leverage: bool = True) -> None:
        st = self._accounts[i]
        old = st.legs.get((p.symbol, p.side))
        if old is not None:
            self._drop_leg(st, old)
        if p.leverage is not None:
            st.leverage[p.symbol] = p.leverage
        if p.qty == 0.0:
            return
        lev = p.leverage
        if lev is None and inherit_leverage:
            lev = st.leverage.get(p.symbol)
        book = self._book(p.venue, p.symbol)
        leg = Leg(
            i,
            book,
            side=p.side,
            qty=p.qty,
            entry=p.entry_price,
            margin_mode=p.margin_mode,
            leverage=lev,
            isolated_margin=p.isolated_margin,
            event_ms=p.event_ms,
        )
        st.legs[(p.symbol, p.side)] = leg
        self._attach(leg)

    def _revalue(self, i: int) -> None:
        """Recompute collateral value (balances, mode or an asset price changed)."""
        self._value_collateral(i)
        self._dirty.add(i)

    def _value_collateral(self, i: int) -> None:
        st = self._accounts[i]
        venue_multi = self._multi.setdefault(st.venue, set())
        if st.multi_asset:
            venue_multi.add(i)
        else:
            venue_multi.discard(i)
        if st.multi_asset:
            st.margin_asset, st.pool_problem = None, None
        else:
            st.margin_asset, st.pool_problem = st.margin_pool()
        coll_input = AccountInput(
            st.venue,
            st.balances,
            (),
            st.collateral_ratios,
            self._prices.get(st.venue, {}),
            st.multi_asset,
            st.margin_asset,
        )
        try:
            coll = collateral_value(coll_input)
            st.missing_collateral = st.pool_problem
        except ModelInputError as exc:
            coll = math.nan
            st.missing_collateral = str(exc)
        if st.pool_problem is not None:
            coll = math.nan
        self.table.set_collateral(i, coll, st.noncash_value(self._prices.get(st.venue, {})))

    def _resum(self, i: int) -> None:
        """Exact (fsum) sums of account ``i`` from its legs' current figures."""
        st = self._accounts[i]
        st.version += 1
        upnl: list[float] = []
        mm: list[float] = []
        im: list[float] = []
        gross: list[float] = []
        # No private event yet (a watched account before its snapshot): nothing is known.
        complete = st.missing_collateral is None and st.last_recv_ms is not None
        for leg in st.legs.values():
            r = leg.row
            if r < 0:
                complete = False
                continue
            if not leg.cross:
                continue
            b = leg.book
            gross.append(b.notional.item(r))
            upnl.append(b.upnl.item(r))
            mm.append(b.mm.item(r))
            im.append(b.im.item(r))
        if complete != self.table.complete.item(i):
            self.flips.append(i)  # the engine's inputs-missing clock (see Engine._on_flips)
        self.table.complete[i] = complete
        self.table.set_sums(i, math.fsum(upnl), math.fsum(mm), math.fsum(im), math.fsum(gross))

    def watch(self, venue: str, account: str) -> int:
        """A configured account, before any of its events: incomplete (its figures are unknown,
        not zero) until its first private event arrives."""
        i = self._index.get((venue, account))
        if i is None:
            i = self._account(venue, account)
            self.table.complete[i] = False
        return i

    def ensure_account(self, venue: str, account: str) -> int:
        """The account's index, creating an empty account on first sight."""
        return self._account(venue, account)

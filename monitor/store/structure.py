"""Events that change the store's structure: instruments, tier tables, positions, balances.

Python, and exact: every account such an event touches is re-summed from its legs
(``math.fsum``, see :mod:`monitor.store.accounts`) before the event returns. Marks go through
:mod:`monitor.store.marks`; both write the same :class:`~monitor.store.accounts.AccountTable`.

A leg whose instrument facts, margin model or first mark are missing is *held*: its account is
incomplete, its figures unknown (never zero). Incomplete accounts are never alert candidates.
"""

from __future__ import annotations

import math

import numpy as np

from connectors.events import (
    AccountSnapshot,
    AssetPrice,
    BalanceUpdate,
    CollateralModeUpdate,
    Instrument,
    LeverageUpdate,
    PositionFill,
    PositionSnapshot,
    TierTableUpdate,
)
from monitor.store.accounts import AccountTable
from monitor.store.book import InstrumentBook, Leg
from monitor.store.books import Books
from monitor.store.changed import NO_CHANGE, Changed
from monitor.store.state import AccountRegistry, AccountState, fill_result
from rules.account import EQUITY_OVER_MM_VENUES, AccountInput, collateral_value
from rules.errors import ModelInputError
from rules.types import MarginMode

# Queued re-sums done per applied event: spreads them so no single tick pays for many.
RESUM_PER_EVENT = 4


class Structure:
    """Applies the structural events; keeps the accounts to re-sum and completeness flips."""

    def __init__(
        self, table: AccountTable, books: Books, registry: AccountRegistry, flips: list[int]
    ) -> None:
        """``flips``: where accounts whose completeness changed are appended (the store
        reports and clears them after each event)."""
        self._table = table
        self._books = books
        self._reg = registry
        self._multi: dict[str, set[int]] = {}  # venue -> multi-asset accounts
        self._dirty: set[int] = set()
        self._flips = flips

    # --- for the store and the mark router ---------------------------------------------------

    def dirty(self) -> bool:
        """Whether accounts changed structurally and wait for :meth:`finish`."""
        return bool(self._dirty)

    def finish(self) -> Changed:
        """Re-sum the structurally changed accounts; report them and the candidates."""
        if not self._dirty:
            return NO_CHANGE
        dirty = sorted(self._dirty)
        self._dirty.clear()
        states = self._reg.states
        for i in dirty:
            st = states[i]
            if not st.multi_asset and st.margin_pool() != (st.margin_asset, st.pool_problem):
                self._value_collateral(i)  # the legs now settle in another pool
            self.resum(i)
        cands = [i for i in dirty if self._table.is_candidate(i)]
        return Changed(np.array(dirty, dtype=np.int64), np.array(cands, dtype=np.int64))

    def drain_resums(self) -> None:
        queue = self._table.resum_queue
        if not queue:
            return
        for _ in range(min(RESUM_PER_EVENT, len(queue))):
            self.resum(next(iter(queue)))

    def resum(self, i: int) -> None:
        """Exact (fsum) sums of account ``i`` from its legs' current figures."""
        st = self._reg.states[i]
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
        t = self._table
        if complete != t.complete.item(i):
            self._flips.append(i)  # the engine's inputs-missing clock
        t.complete[i] = complete
        t.set_sums(i, math.fsum(upnl), math.fsum(mm), math.fsum(im), math.fsum(gross))

    def activate_held(self, book: InstrumentBook) -> None:
        """Activate the book's held legs whose inputs are all known now."""
        states = self._reg.states
        for leg in list(book.held):
            if book.ready() and states[leg.account].model_for(leg) is not None:
                book.release(leg)
                self._attach(leg)

    def account(self, venue: str, account: str) -> int:
        """The account's index, making an empty account on first sight."""
        i = self._reg.index.get((venue, account))
        if i is None:
            i = self._table.new_account()
            self._reg.add(i, venue, account)
            self._table.eq_over_mm[i] = venue in EQUITY_OVER_MM_VENUES
        return i

    def watch(self, venue: str, account: str) -> int:
        """A configured account, before any of its events: incomplete (its figures are unknown,
        not zero) until its first private event arrives."""
        i = self._reg.index.get((venue, account))
        if i is None:
            i = self.account(venue, account)
            self._table.complete[i] = False
        return i

    # --- the events --------------------------------------------------------------------------

    def on_asset_price(self, ev: AssetPrice, recv_ms: int) -> Changed:
        self._reg.prices.setdefault(ev.venue, {})[ev.asset] = ev.price
        for i in self._multi.get(ev.venue, ()):
            if ev.asset in self._reg.states[i].balances:
                self._revalue(i)
        return self.finish()

    def on_instrument(self, ev: Instrument, recv_ms: int) -> Changed:
        book = self._books.book(ev.venue, ev.symbol)
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
        self.activate_held(book)
        return self.finish()

    def on_tier_table(self, ev: TierTableUpdate, recv_ms: int) -> Changed:
        book = self._books.book(ev.venue, ev.symbol)
        if ev.account is None:
            book.model = ev.model
            for leg in book.legs:
                st = self._reg.states[leg.account]
                if ev.symbol not in st.overrides:
                    book.set_model(leg, ev.model)
                    self._dirty.add(leg.account)
        else:
            i = self.account(ev.venue, ev.account)
            st = self._reg.states[i]
            st.overrides[ev.symbol] = ev.model
            for leg in st.legs.values():
                if leg.symbol == ev.symbol and leg.row >= 0:
                    book.set_model(leg, ev.model)
            self._dirty.add(i)
        self.activate_held(book)
        return self.finish()

    def on_position(self, ev: PositionSnapshot, recv_ms: int) -> Changed:
        i = self.account(ev.venue, ev.account)
        st = self._reg.states[i]
        st.touch(ev.event_ms, recv_ms, positions=True)
        self._set_leg(i, ev)
        return self.finish()

    def on_fill(self, ev: PositionFill, recv_ms: int) -> Changed:
        i = self.account(ev.venue, ev.account)
        st = self._reg.states[i]
        st.touch(ev.event_ms, recv_ms, positions=True)
        if ev.position_pushed:
            # The venue pushes the resulting absolute position itself (Binance ACCOUNT_UPDATE):
            # applying the delta too would count the fill twice.
            return NO_CHANGE
        old = st.legs.get((ev.symbol, ev.side))
        book = self._books.book(ev.venue, ev.symbol)
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
        return self.finish()

    def on_balance(self, ev: BalanceUpdate, recv_ms: int) -> Changed:
        i = self.account(ev.venue, ev.account)
        st = self._reg.states[i]
        st.touch(ev.event_ms, recv_ms, balances=True)
        st.balances[ev.asset] = ev.wallet_balance
        self._revalue(i)
        return self.finish()

    def on_leverage(self, ev: LeverageUpdate, recv_ms: int) -> Changed:
        i = self.account(ev.venue, ev.account)
        st = self._reg.states[i]
        st.touch(ev.event_ms, recv_ms)
        st.leverage[ev.symbol] = ev.leverage
        for leg in st.legs.values():
            if leg.symbol == ev.symbol:
                leg.book.set_leverage(leg, ev.leverage)
        self._dirty.add(i)
        return self.finish()

    def on_collateral_mode(self, ev: CollateralModeUpdate, recv_ms: int) -> Changed:
        i = self.account(ev.venue, ev.account)
        st = self._reg.states[i]
        st.touch(ev.event_ms, recv_ms, balances=True)
        st.multi_asset = ev.multi_asset
        self._revalue(i)
        return self.finish()

    def on_account_snapshot(self, ev: AccountSnapshot, recv_ms: int) -> Changed:
        i = self.account(ev.venue, ev.account)
        st = self._reg.states[i]
        st.touch(ev.event_ms, recv_ms, balances=True, positions=True)
        for leg in list(st.legs.values()):
            self._drop_leg(st, leg)
        st.balances = dict(ev.balances)
        st.collateral_ratios = dict(ev.collateral_ratios)
        st.multi_asset = ev.multi_asset
        for p in ev.positions:
            self._set_leg(i, p)
        self._revalue(i)
        return self.finish()

    # --- helpers -----------------------------------------------------------------------------

    def _attach(self, leg: Leg) -> None:
        book = leg.book
        model = self._reg.states[leg.account].model_for(leg)
        if model is not None and book.ready():
            book.add(leg, model)
        else:
            leg.model = model
            book.hold(leg)
        self._dirty.add(leg.account)

    def _drop_leg(self, st: AccountState, leg: Leg) -> None:
        if leg.row >= 0:
            leg.book.remove(leg)
        else:
            leg.book.release(leg)
        del st.legs[(leg.symbol, leg.side)]
        self._dirty.add(st.index)

    def _set_leg(self, i: int, p: PositionSnapshot, *, inherit_leverage: bool = True) -> None:
        st = self._reg.states[i]
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
        book = self._books.book(p.venue, p.symbol)
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
        st = self._reg.states[i]
        venue_multi = self._multi.setdefault(st.venue, set())
        if st.multi_asset:
            venue_multi.add(i)
        else:
            venue_multi.discard(i)
        if st.multi_asset:
            st.margin_asset, st.pool_problem = None, None
        else:
            st.margin_asset, st.pool_problem = st.margin_pool()
        prices = self._reg.prices.get(st.venue, {})
        coll_input = AccountInput(
            st.venue,
            st.balances,
            (),
            st.collateral_ratios,
            prices,
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
        self._table.set_collateral(i, coll, st.noncash_value(prices))

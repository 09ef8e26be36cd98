"""Marks into the store: one mark, a list of marks, and a feed's batch (``MarkRun``).

One route per shape, one outcome (:class:`~monitor.store.changed.Changed`):

* a book nobody holds records the mark and nothing else (a whole feed batch with one lookup
  per mark, :meth:`MarkRouter.run`);
* a small book (:meth:`monitor.store.book.InstrumentBook.small`) ticks in python floats and
  charges its accounts' lazy budgets (:meth:`monitor.store.accounts.AccountTable.add_rows`) —
  a feed's usual held marks straight away, without a :class:`MarkPrice` per quote;
* a larger book ticks in numpy, alone with the lazy budget (:meth:`MarkRouter.mark`) or in a
  batch with the batch bound, many books fused in one pass when they are many legs;
* in a batch mixing small and larger books, the small ones' rows count in the batch bound too.

A batch is applied up to the first repeat of a held instrument and the rest handed back in
``Changed.rest``: every mark of a held instrument is screened, so a dip that recovers within one
batch still alerts. The kernels themselves live in :mod:`monitor.store.kernels`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Collection, Sequence

import numpy as np

from connectors.events import MarkPrice, MarkQuote, MarkRun
from monitor.store import kernels
from monitor.store.accounts import AccountTable
from monitor.store.book import I64, InstrumentBook, RowDeltas
from monitor.store.books import Books
from monitor.store.changed import EMPTY, NO_CHANGE, Changed, MarkTail
from monitor.store.structure import Structure

_EVENT_MS = operator.attrgetter("event_ms")


class MarkRouter:
    """Moves books to new marks and accounts by the ticks' deltas."""

    def __init__(self, table: AccountTable, books: Books, structure: Structure) -> None:
        self._table = table
        self._books = books
        # Books' own maps, live: the loops over a batch's marks look books up in C.
        self._by_key = books.by_key()
        self._idle = books.idle_maps()  # venue -> its idle books
        self._structure = structure
        self._frame = kernels.FrameCache()
        self._touched_of: dict[tuple[int, ...], I64] = {}  # see _small_changed

    # --- the three shapes --------------------------------------------------------------------

    def mark(self, ev: MarkPrice, recv_ms: int) -> Changed:
        """One mark."""
        if not (math.isfinite(ev.mark) and ev.mark > 0.0):
            return NO_CHANGE  # a connector bug: never price legs at a non-positive mark
        structure = self._structure
        book = self._books.book(ev.venue, ev.symbol)
        book.mark_recv_ms = recv_ms
        if book.held:
            book.mark = ev.mark
            structure.activate_held(book)
        if book.small():
            small: list[RowDeltas] = []
            flagged: set[int] = set()
            self._tick_small(book, ev.mark, small, flagged)
            return Changed(*self._small_changed(small, flagged, structure.finish()))
        deltas = kernels.tick_book(book, ev.mark)
        structural = structure.finish()
        if deltas is None:
            return structural
        return Changed(*self._ticked(*self._table.apply_tick(deltas), structural))

    def run(self, ev: MarkRun, recv_ms: int) -> Changed:
        """A feed's batch. First the marks of instruments nobody holds are recorded (latest
        wins); the others (held, or without a book yet) are then ticked at once when they are
        the usual few small books, each once, else applied as a list (:meth:`marks`).

        Most of a venue's marks are of instruments no account holds, and they move nothing
        but the mark itself: recording them is the whole job, done here in one tight loop over
        the venue's idle books. Which instruments are idle cannot change inside the loop (only
        positions change it), and an idle instrument's marks touch no other book, so splitting
        the run this way applies the same marks in the same per-instrument order as
        :meth:`marks` alone.
        """
        idle = self._idle.get(ev.venue)
        if idle is None:
            rest: list[MarkQuote] = list(ev.quotes)
        else:
            get = idle.get
            rest = []
            for q in ev.quotes:
                book = get(q.symbol)
                if book is None:
                    rest.append(q)
                else:
                    book.mark = q.mark
                    book.mark_recv_ms = recv_ms
        if not rest:
            return NO_CHANGE
        changed = self._held_run(ev.venue, rest, recv_ms)
        if changed is not None:
            return changed
        return self.marks(MarkRun(ev.venue, rest).marks(), recv_ms)

    def marks(self, marks: Sequence[MarkPrice], recv_ms: int) -> Changed:
        """Consecutive marks as one batch up to the first repeat of a held instrument; the rest
        goes back in ``Changed.rest``. Marks of instruments nobody holds are just recorded
        (latest wins), so they never split a batch, and ``Changed.event_ms`` is that of the
        latest held mark applied: whether idle marks came in the same batch changes nothing."""
        return self.tail(MarkTail(marks, 0), recv_ms)

    # --- routes ------------------------------------------------------------------------------

    def _held_run(self, venue: str, quotes: Sequence[MarkQuote], recv_ms: int) -> Changed | None:
        """The usual rest of a feed's batch once idle marks are recorded: each quote on a
        different small book whose legs are all active. Those tick in python with their lazy
        bounds, exactly as :meth:`marks` would tick them. ``None`` (nothing applied) for any
        other run: the caller then goes through :meth:`marks`."""
        books = self._books.of_venue(venue)
        if books is None or self._structure.dirty():
            return None
        picked: list[InstrumentBook] = []
        for q in quotes:
            book = books.get(q.symbol)
            if book is None or book.held or not book.small() or book in picked:
                return None
            if not 0.0 < q.mark < math.inf:  # a connector bug (NaN too): marks() skips it
                return None
            picked.append(book)
        small: list[RowDeltas] = []
        for book, q in zip(picked, quotes, strict=True):
            book.mark_recv_ms = recv_ms
            got = kernels.tick_small(book, q.mark)
            if got:
                small += got
        latest = max(map(_EVENT_MS, quotes))  # every quote: a held mark
        flagged = self._table.add_rows(small)
        touched, cands = self._small_changed(small, flagged, NO_CHANGE)
        changed = Changed(touched, cands, (), None, latest)
        self._structure.drain_resums()
        return changed

    def tail(self, tail: MarkTail, recv_ms: int) -> Changed:
        """The marks of a batch from ``tail.start`` on, up to the first repeat of a held
        instrument (see :meth:`marks`).

        Each instrument's legs tick as usual — many legs of linear books in one fused pass
        (:class:`~monitor.store.kernels.FrameCache`); the account-side error bound, health and
        screen run once over the union of touched accounts instead of once per instrument.
        """
        marks, start = tail
        n = len(marks)
        rows: list[I64] = []
        get = self._by_key.get
        structure = self._structure
        fused: list[InstrumentBook] = []
        fused_marks: list[float] = []
        small: list[RowDeltas] = []  # rows of small books, ticked at once in python
        flagged: set[int] = set()
        held: set[int] = set()  # the held books this part moved
        latest = -1  # event time of the latest held mark
        rest = None
        k = start
        while k < n:
            ev = marks[k]
            k += 1
            book = get((ev.venue, ev.symbol))
            if book is not None:
                if book.n == 0 and not book.held:
                    # Nobody holds it: just record the mark (most of a venue's all-marks frame).
                    mark = ev.mark
                    if math.isfinite(mark) and mark > 0.0:
                        book.mark, book.mark_recv_ms = mark, recv_ms
                    continue
                # Held: a repeat ends this part, so each of its marks is screened before the
                # next (who holds what cannot change while marks apply: only positions do).
                if id(book) in held:
                    rest = MarkTail(marks, k - 1)
                    break
                held.add(id(book))
                latest = max(latest, ev.event_ms)
            if not (math.isfinite(ev.mark) and ev.mark > 0.0):
                continue
            if book is None:
                book = self._books.book(ev.venue, ev.symbol)
            book.mark_recv_ms = recv_ms
            if book.held:
                book.mark = ev.mark
                structure.activate_held(book)
            if book.small():
                self._tick_small(book, ev.mark, small, flagged)
                continue
            if book.n and book.fusable():
                book.mark = ev.mark
                fused.append(book)
                fused_marks.append(ev.mark)
                continue
            self._tick_into_batch(book, ev.mark, rows)
        cnt = self._flush_fused(fused, fused_marks, rows)
        structural = structure.finish()
        if not rows and cnt is None and not small and structural is NO_CHANGE:
            return NO_CHANGE if rest is None else Changed(EMPTY, EMPTY, (), rest)
        # Alerts carry the time of the latest held mark, the one that moved them.
        end = n if rest is None else rest.start
        event_ms = latest if latest >= 0 else max(map(_EVENT_MS, marks[start:end]))
        if not rows and cnt is None:
            if not small:
                return Changed(structural.accounts, structural.candidates, (), rest, event_ms)
            touched, cands = self._small_changed(small, flagged, structural)
            structure.drain_resums()
            return Changed(touched, cands, (), rest, event_ms)
        if small:
            rows.append(self._table.rows_into_batch(small))
        touched, cands = self._ticked(*self._table.finish_batch(rows, cnt), structural)
        structure.drain_resums()
        return Changed(touched, cands, (), rest, event_ms)

    # --- helpers -----------------------------------------------------------------------------

    def _ticked(
        self, touched: I64, cands: I64, hard: list[int], structural: Changed
    ) -> tuple[I64, I64]:
        """A tick's outcome (touched accounts, candidates): accounts over HARD re-summed at
        once, the structural change (legs activated by the same mark) added."""
        for i in hard:
            self._structure.resum(i)
        if structural.accounts.size:
            touched = np.union1d(touched, structural.accounts)
            cands = np.union1d(cands, structural.candidates)
        return touched, cands

    def _flush_fused(
        self, books: list[InstrumentBook], marks: list[float], rows: list[I64]
    ) -> I64 | None:
        """Tick the deferred books: one fused pass when they are many legs (its per-account
        row counts returned, for the batch bound), else one by one."""
        if not books:
            return None
        if sum(b.n for b in books) >= kernels.MIN_FUSED_ROWS:
            deltas, weight = self._frame.tick(books, marks)
            self._table.add_frame(self._frame.account, deltas, weight)
            return self._frame.per_account
        for book, mark in zip(books, marks, strict=True):
            self._tick_into_batch(book, mark, rows)
        return None

    def _tick_small(
        self, book: InstrumentBook, mark: float, small: list[RowDeltas], flagged: set[int]
    ) -> None:
        """Tick a small book in python scalars, its deltas straight into the account sums."""
        got = kernels.tick_small(book, mark)
        if got:
            flagged.update(self._table.add_rows(got))
            small += got

    def _small_changed(
        self, small: list[RowDeltas], flagged: Collection[int], structural: Changed
    ) -> tuple[I64, I64]:
        """Finish a batch of small-book ticks alone (touched accounts, candidates): their lazy
        bounds hold, so only the accounts out of budget are screened."""
        accounts = tuple([row[0] for row in small])
        touched = self._touched_of.get(accounts)
        if touched is None:  # a feed's held books touch the same accounts batch after batch
            if len(self._touched_of) >= 64:
                self._touched_of.clear()
            touched = np.array(sorted(set(accounts)), dtype=np.int64)
            touched.flags.writeable = False  # shared by every Changed built from the cache
            self._touched_of[accounts] = touched
        if not flagged:
            return self._ticked(touched, EMPTY, [], structural)
        screened = self._table.screen(np.array(sorted(set(flagged)), dtype=np.int64))
        return self._ticked(touched, *screened, structural)

    def _tick_into_batch(self, book: InstrumentBook, mark: float, rows: list[I64]) -> None:
        deltas = kernels.tick_book(book, mark)
        if deltas is not None:
            self._table.add_deltas(deltas)
            rows.append(deltas.accounts)

"""Marks into the store: one mark, a frame of marks, and a feed's batch (``MarkRun``).

Split from :mod:`monitor.store.core` (events that change structure) to keep modules small; ``Store``
inherits these. Four routes, one outcome (:class:`Changed`); the tick kernels themselves live
in :mod:`monitor.store.kernels`:

* a book nobody holds records the mark and nothing else (:meth:`StoreMarks.record_idle_marks`
  does a whole feed batch with one lookup per mark);
* a small book (:meth:`monitor.store.book.InstrumentBook.small`) ticks in python floats and charges
  its accounts' lazy budgets (:meth:`monitor.store.accounts.AccountTable.add_rows`), a feed's usual
  held marks straight away (:meth:`StoreMarks.apply_held_run`);
* a larger book ticks in numpy, alone with the lazy budget (:meth:`StoreMarks._on_mark`) or in a
  frame with the batch bound, many books fused in one pass when they are many legs;
* in a frame mixing small and larger books, the small ones' rows count in the batch bound too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from typing import NamedTuple

import numpy as np

from connectors.events import MarkPrice, MarkQuote, MarkRun
from monitor.store import kernels
from monitor.store.accounts import AccountTable
from monitor.store.book import I64, InstrumentBook, RowDeltas
from monitor.store.kernels import FrameCache
from monitor.store.views import InstrumentKey

_EMPTY: I64 = np.zeros(0, dtype=np.int64)
# Queued re-sums done per applied event: spreads them so no single tick pays for many.
RESUM_PER_EVENT = 4


class Changed(NamedTuple):
    """Account indices an event touched, and the subset the alert policy must look at (both
    sorted ascending, without repeats). A named tuple: one is built per event, and a frozen
    dataclass costs several times more to build."""

    accounts: I64
    candidates: I64


NO_CHANGE = Changed(_EMPTY, _EMPTY)


class StoreMarks:
    """How marks move the store (see :class:`monitor.store.core.Store`)."""

    _books: dict[InstrumentKey, InstrumentBook]
    _venue_books: dict[str, dict[str, InstrumentBook]]
    _idle: dict[str, dict[str, InstrumentBook]]
    _dirty: set[int]
    _frame: FrameCache
    _touched_of: dict[tuple[int, ...], I64]
    table: AccountTable
    # The structural side, in monitor.store.core.
    _finish: Callable[[], Changed]
    _book: Callable[[str, str], InstrumentBook]
    _activate_held: Callable[[InstrumentBook], None]
    _resum: Callable[[int], None]

    def _drain_resums(self) -> None:
        queue = self.table.resum_queue
        if not queue:
            return
        for _ in range(min(RESUM_PER_EVENT, len(queue))):
            self._resum(next(iter(queue)))

    def _on_mark(self, ev: MarkPrice, recv_ms: int) -> Changed:
        if not (math.isfinite(ev.mark) and ev.mark > 0.0):
            return NO_CHANGE  # a connector bug: never price legs at a non-positive mark
        book = self._book(ev.venue, ev.symbol)
        book.mark_recv_ms = recv_ms
        if book.held:
            book.mark = ev.mark
            self._activate_held(book)
        if book.small():
            small: list[RowDeltas] = []
            flagged: set[int] = set()
            self._tick_small(book, ev.mark, small, flagged)
            structural = self._finish() if self._dirty else NO_CHANGE
            return self._small_changed(small, flagged, structural)
        deltas = kernels.tick_book(book, ev.mark)
        structural = self._finish() if self._dirty else NO_CHANGE
        if deltas is None:
            return structural
        return self._ticked(*self.table.apply_tick(deltas), structural)

    def _ticked(self, touched: I64, cands: I64, hard: list[int], structural: Changed) -> Changed:
        """A tick's outcome: accounts over HARD re-summed at once, the structural change (legs
        activated by the same mark) added."""
        for i in hard:
            self._resum(i)
        if structural.accounts.size:
            touched = np.union1d(touched, structural.accounts)
            cands = np.union1d(cands, structural.candidates)
        return Changed(touched, cands)

    def holds(self, key: InstrumentKey) -> bool:
        """Whether any leg (active or held) sits on the instrument: only then does its mark
        move an account, and only then must a repeated mark be screened before the next."""
        book = self._books.get(key)
        return book is not None and (book.n > 0 or bool(book.held))

    def record_idle_marks(self, run: MarkRun, recv_ms: int) -> list[MarkQuote]:
        """Record the marks of instruments nobody holds (latest wins); return the others in
        order, for :meth:`apply_held_run` or :meth:`apply_marks`.

        Most of a venue's marks are of instruments no account holds, and they move nothing
        but the mark itself: recording them is the whole job, done here in one tight loop over
        the venue's idle books. Which instruments are idle cannot change inside the loop (only
        positions change it), and an idle instrument's marks touch no other book, so splitting
        the run this way applies the same marks in the same per-instrument order as
        :meth:`apply_marks` alone. Instruments without a book yet go with the others.
        """
        idle = self._idle.get(run.venue)
        if idle is None:
            return list(run.quotes)
        get = idle.get
        rest: list[MarkQuote] = []
        for q in run.quotes:
            book = get(q.symbol)
            if book is None:
                rest.append(q)
            else:
                book.mark = q.mark
                book.mark_recv_ms = recv_ms
        return rest

    def apply_held_run(
        self, venue: str, quotes: Sequence[MarkQuote], recv_ms: int
    ) -> Changed | None:
        """The usual rest of a feed's batch once idle marks are recorded: each quote on a
        different small book (:meth:`InstrumentBook.small`) whose legs are all active. Those
        tick in python with their lazy bounds, exactly as :meth:`apply_marks` would tick them,
        without a :class:`MarkPrice` per quote. ``None`` (nothing applied) for any other run:
        the caller then goes through :meth:`apply_marks`."""
        books = self._venue_books.get(venue)
        if books is None or self._dirty:
            return None
        picked: list[InstrumentBook] = []
        for q in quotes:
            book = books.get(q.symbol)
            if book is None or book.held or not book.small() or book in picked:
                return None
            if not 0.0 < q.mark < math.inf:  # a connector bug (NaN too): apply_marks skips it
                return None
            picked.append(book)
        small: list[RowDeltas] = []
        for book, q in zip(picked, quotes, strict=True):
            book.mark_recv_ms = recv_ms
            got = kernels.tick_small(book, q.mark)
            if got:
                small += got
        changed = self._small_changed(small, self.table.add_rows(small), NO_CHANGE)
        self._drain_resums()
        return changed

    def _on_mark_run(self, ev: MarkRun, recv_ms: int) -> Changed:
        rest = self.record_idle_marks(ev, recv_ms)
        return self.apply_marks(MarkRun(ev.venue, rest).marks(), recv_ms)

    def apply_marks(self, events: Sequence[MarkPrice], recv_ms: int) -> Changed:
        """A frame of marks (e.g. Binance ``!markPrice@arr``) as one batch.

        Each instrument's legs tick as usual — many legs of linear books in one fused pass
        (:class:`~monitor.store.kernels.FrameCache`); the account-side error bound, health and
        screen run once over the union of touched accounts instead of once per instrument. A
        repeated instrument ticks in order (the engine splits batches there so each mark is
        screened).
        """
        rows: list[I64] = []
        books = self._books
        fused: list[InstrumentBook] = []
        fused_marks: list[float] = []
        seen: set[int] = set()
        counted: list[I64] = []  # per-account row counts of fused passes
        small: list[RowDeltas] = []  # rows of small books, ticked at once in python
        flagged: set[int] = set()
        for ev in events:
            book = books.get((ev.venue, ev.symbol))
            if book is not None and book.n == 0 and not book.held:
                # Nobody holds it: just record the mark (most of a venue's all-marks frame).
                mark = ev.mark
                if math.isfinite(mark) and mark > 0.0:
                    book.mark, book.mark_recv_ms = mark, recv_ms
                continue
            if not (math.isfinite(ev.mark) and ev.mark > 0.0):
                continue
            if book is None:
                book = self._book(ev.venue, ev.symbol)
            if id(book) in seen:  # a repeat: the earlier mark must land first
                self._flush_fused(fused, fused_marks, rows, counted)
                seen.clear()
            book.mark_recv_ms = recv_ms
            if book.held:
                book.mark = ev.mark
                self._activate_held(book)
            if book.small():
                self._tick_small(book, ev.mark, small, flagged)
                continue
            if book.n and book.fusable():
                book.mark = ev.mark
                seen.add(id(book))
                fused.append(book)
                fused_marks.append(ev.mark)
                continue
            self._tick_into_batch(book, ev.mark, rows)
        self._flush_fused(fused, fused_marks, rows, counted)
        structural = self._finish() if self._dirty else NO_CHANGE
        if not rows and not counted:
            if not small:
                return structural
            changed = self._small_changed(small, flagged, structural)
            self._drain_resums()
            return changed
        if small:
            rows.append(self.table.rows_into_batch(small))
        cnt = None
        if counted:
            cnt = counted[0]
            for more in counted[1:]:
                size = max(cnt.size, more.size)
                cnt = np.pad(cnt, (0, size - cnt.size)) + np.pad(more, (0, size - more.size))
        changed = self._ticked(*self.table.finish_batch(rows, cnt), structural)
        self._drain_resums()
        return changed

    def _flush_fused(
        self,
        books: list[InstrumentBook],
        marks: list[float],
        rows: list[I64],
        counted: list[I64],
    ) -> None:
        """Tick the deferred books: one fused pass when they are many legs, else one by one."""
        if not books:
            return
        if sum(b.n for b in books) >= kernels.MIN_FUSED_ROWS:
            deltas, weight = self._frame.tick(books, marks)
            self.table.add_frame(self._frame.account, deltas, weight)
            counted.append(self._frame.per_account)
        else:
            for book, mark in zip(books, marks, strict=True):
                self._tick_into_batch(book, mark, rows)
        books.clear()
        marks.clear()

    def _tick_small(
        self, book: InstrumentBook, mark: float, small: list[RowDeltas], flagged: set[int]
    ) -> None:
        """Tick a small book in python scalars, its deltas straight into the account sums."""
        got = kernels.tick_small(book, mark)
        if got:
            flagged.update(self.table.add_rows(got))
            small += got

    def _small_changed(
        self, small: list[RowDeltas], flagged: Collection[int], structural: Changed
    ) -> Changed:
        """Finish a batch of small-book ticks alone: their lazy bounds hold, so only the
        accounts out of budget are screened."""
        accounts = tuple([row[0] for row in small])
        touched = self._touched_of.get(accounts)
        if touched is None:  # a feed's held books touch the same accounts batch after batch
            if len(self._touched_of) >= 64:
                self._touched_of.clear()
            touched = np.array(sorted(set(accounts)), dtype=np.int64)
            touched.flags.writeable = False  # shared by every Changed built from the cache
            self._touched_of[accounts] = touched
        if not flagged:
            return self._ticked(touched, _EMPTY, [], structural)
        screened = self.table.screen(np.array(sorted(set(flagged)), dtype=np.int64))
        return self._ticked(touched, *screened, structural)

    def _tick_into_batch(self, book: InstrumentBook, mark: float, rows: list[I64]) -> None:
        deltas = kernels.tick_book(book, mark)
        if deltas is not None:
            self.table.add_deltas(deltas)
            rows.append(deltas.accounts)

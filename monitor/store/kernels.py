"""The store's hot path: the three mark-tick kernels, side by side.

Every mark that moves an account goes through one of these; everything else in the store is
plain structural code. They do the same float operations in the same order on every row, so
they give the same figures and deltas bit for bit (``tests/test_store_kernels.py`` checks it):

* :func:`tick_book` — one book in numpy over its ``n`` rows. The cached
  :class:`~rules.types.Piece` of each row stands in for the tier lookup; a row whose notional
  leaves ``[lo, hi)`` is re-looked up through its model (rare, python), and a precomputed *safe
  mark range* lets most ticks skip even the vectorised check. Models that are not pure linear
  pieces are evaluated per row in python after the vectorised pass ("slow rows").
* :func:`tick_small` — the same in python floats, for small books
  (:meth:`~monitor.store.book.InstrumentBook.small`): a dozen numpy calls cost ~10 µs whatever
  the row count, the same arithmetic on one or two rows in python well under that. IEEE
  float64 operations are the same in both, so the figures are the same bits either way.
* :class:`FrameCache` — many books' rows in one fused pass (a venue's frame of marks): the
  static columns of every book in the frame are kept concatenated (rebuilt only when a book's
  ``version`` moved), so the frame is a handful of numpy calls over all its legs at once. Only
  linear books whose rows are all pure linear pieces take it
  (:meth:`~monitor.store.book.InstrumentBook.fusable`).

Each leg gets ``notional = size·mark`` (``size/mark`` inverse), ``upnl = qcs·(mark − entry)``
(``qcs·(1/entry − 1/mark)``), ``mm = notional·mmr − ded``, ``im = notional·imr`` or
``notional/lev`` — exactly :func:`rules.account.position_figures`' operations, so per-leg figures
stay bit-identical to it.

The kernels read and write the book's columns and kernel state (``fig_now``, ``fig_alt``,
``mirror``, ``safe``...; see :class:`~monitor.store.book.InstrumentBook`); the book itself only
changes rows (add, remove, re-piece).

Account sums of a fused frame: the per-account deltas are summed with ``np.bincount``
(sequentially per account, from 0) and added to the stored sums once. For an account with ``m``
rows that is ``m`` roundings of partial sums each at most ``Σ|d|``, plus one of the final sum —
within the ``(m + 1)·Σ|d| + m·Σ|S|`` that :meth:`monitor.store.accounts.AccountTable.finish_batch`
books for ``m`` rows, so the error bound of :mod:`monitor.store.accounts` still holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from monitor.store.book import (
    F64,
    FIG_IM,
    FIG_MM,
    FIG_NOTIONAL,
    FIG_UPNL,
    I64,
    N_FIG,
    InstrumentBook,
    RowDeltas,
    TickDeltas,
)
from rules.types import ContractKind

_COLS = ("size", "entry", "qcs", "lo", "hi", "mmr", "ded", "imr", "lev", "crossf")
# Below this many legs the per-book ticks are as cheap as the fused pass and need no cache.
MIN_FUSED_ROWS = 20_000


class FrameCache:
    """Concatenated static columns of the books of the last fused frame."""

    def __init__(self) -> None:
        self.key: tuple[tuple[int, int], ...] = ()
        self.books: list[InstrumentBook] = []
        self.account: I64 = np.zeros(0, dtype=np.int64)
        self.offsets: I64 = np.zeros(1, dtype=np.int64)
        self.counts: I64 = np.zeros(0, dtype=np.int64)
        self.per_account: I64 = np.zeros(0, dtype=np.int64)  # legs per account index
        self.cols: dict[str, F64] = {}
        self.lev_mode = 0
        self.all_cross = True
        self.new: F64 = np.zeros((N_FIG, 0))
        self.old: F64 = np.zeros((N_FIG, 0))
        self.weight: F64 = np.zeros(0)
        self.book_of: I64 = np.zeros(0, dtype=np.int64)  # per leg: its book's position
        # Scratch: fresh megabyte temporaries would cost page faults on every frame.
        self.markv: F64 = np.zeros(0)
        self.b1 = np.zeros(0, dtype=np.bool_)
        self.b2 = np.zeros(0, dtype=np.bool_)

    def _build(self, books: Sequence[InstrumentBook], key: tuple[tuple[int, int], ...]) -> None:
        self.key = key
        self.books = list(books)
        ns = np.array([b.n for b in books], dtype=np.int64)
        self.counts = ns
        self.offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(ns)])
        self.account = np.concatenate([b.account[: b.n] for b in books])
        self.per_account = np.bincount(self.account)
        self.cols = {c: np.concatenate([getattr(b, c)[: b.n] for b in books]) for c in _COLS}
        has_lev = ~np.isnan(self.cols["lev"])
        self.lev_mode = 1 if has_lev.all() else (2 if has_lev.any() else 0)
        self.all_cross = bool((self.cols["crossf"] == 1.0).all())
        total = int(self.offsets[-1])
        if self.new.shape[1] != total:
            self.new = np.zeros((N_FIG, total))
            self.old = np.zeros((N_FIG, total))
            self.weight = np.zeros(total)
            self.markv = np.zeros(total)
            self.b1 = np.zeros(total, dtype=np.bool_)
            self.b2 = np.zeros(total, dtype=np.bool_)
        self.book_of = np.repeat(np.arange(len(books), dtype=np.int64), ns)

    def ensure(self, books: Sequence[InstrumentBook]) -> None:
        key = tuple((id(b), b.version) for b in books)
        if key != self.key:
            self._build(books, key)

    def _repiece(self, idx: I64, notional: F64) -> None:
        """Rows that left their piece: look them up in their book, refresh the copies."""
        b_of = np.searchsorted(self.offsets, idx, side="right") - 1
        cols = self.cols
        for j, b in zip(idx.tolist(), b_of.tolist(), strict=True):
            book = self.books[b]
            r = j - int(self.offsets[b])
            book.repiece(r, float(notional[j]))
            for c in ("lo", "hi", "mmr", "ded", "imr"):
                cols[c][j] = getattr(book, c)[r]
        # The copies are current again: re-key the touched books to their new versions.
        self.key = tuple((id(bk), bk.version) for bk in self.books)

    def tick(self, books: Sequence[InstrumentBook], marks: Sequence[float]) -> tuple[F64, F64]:
        """Move every book to its mark (books distinct, all fusable, marks already recorded).

        Returns ``(deltas, weight)``: the (4, N) per-leg deltas (uPnL, MM, IM, notional; zero
        for isolated legs) aligned with :attr:`account`, and the per-leg ``Σ|delta|``.
        Both are scratch of the cache, valid until its next tick.
        """
        self.ensure(books)
        c = self.cols
        size = c["size"]
        markv = np.asarray(marks, dtype=np.float64).take(self.book_of, out=self.markv)
        new, old = self.new, self.old
        notional = new[FIG_NOTIONAL]
        np.multiply(size, markv, out=notional)
        np.subtract(markv, c["entry"], out=markv)
        np.multiply(c["qcs"], markv, out=new[FIG_UPNL])
        out_of = np.less(notional, c["lo"], out=self.b1)
        np.greater_equal(notional, c["hi"], out=self.b2)
        out_of |= self.b2
        if out_of.any():
            self._repiece(np.flatnonzero(out_of), notional)
        mm, im = new[FIG_MM], new[FIG_IM]
        np.multiply(notional, c["mmr"], out=mm)
        np.subtract(mm, c["ded"], out=mm)
        if self.lev_mode == 0:
            np.multiply(notional, c["imr"], out=im)
        elif self.lev_mode == 1:
            np.divide(notional, c["lev"], out=im)
        else:
            lev = c["lev"]
            im[:] = np.where(np.isnan(lev), notional * c["imr"], notional / lev)
        np.concatenate([b.fig[:, : b.n] for b in books], axis=1, out=old)
        offs = self.offsets.tolist()
        for k, b in enumerate(books):
            b.fig[:, : b.n] = new[:, offs[k] : offs[k + 1]]
        np.subtract(new, old, out=old)  # old now holds the deltas
        if not self.all_cross:
            old *= c["crossf"]
        np.abs(old, out=new)  # new's figures are in the books now: reuse as scratch
        np.add.reduce(new, axis=0, out=self.weight)
        return old, self.weight


def tick_book(book: InstrumentBook, mark: float) -> TickDeltas | None:
    """Move every row to ``mark``; return the per-row deltas of the cross rows."""
    book.mark = mark
    n = book.n
    if n == 0:
        return None
    if not book.derived_ok:
        book.derive()
    elif math.isinf(book.safe[0]) and book.safe[0] > 0:
        book.update_safe_range()
    # Every temporary lives in preallocated scratch: fresh 80 KB arrays per tick cost more in
    # page faults (heap trimmed and regrown) than the arithmetic itself. The four figures
    # are stacked so the deltas, the copy-back and the error weight are one call each.
    size = book.size[:n]
    new = book.fig_alt[:, :n]
    notional, tmp = new[FIG_NOTIONAL], book.w_tmp[:n]
    if book.kind is ContractKind.LINEAR:
        np.multiply(size, mark, out=notional)
        np.subtract(mark, book.entry[:n], out=tmp)
    else:
        np.divide(size, mark, out=notional)
        np.subtract(book.entry[:n], 1.0 / mark, out=tmp)
    np.multiply(book.qcs[:n], tmp, out=new[FIG_UPNL])
    lo_m, hi_m = book.safe
    if not (lo_m < mark < hi_m):
        # With thousands of rows some row usually sits near a tier floor, so the exact
        # check runs often; the range is rebuilt only after a row actually changed piece.
        below, above = book.w_b1[:n], book.w_b2[:n]
        np.less(notional, book.lo[:n], out=below)
        np.greater_equal(notional, book.hi[:n], out=above)
        np.logical_or(below, above, out=below)
        if below.any():
            for r in np.flatnonzero(below).tolist():
                book.repiece(r, float(notional[r]))
            book.update_safe_range()
    mm, im = new[FIG_MM], new[FIG_IM]
    np.multiply(notional, book.mmr[:n], out=mm)
    np.subtract(mm, book.ded[:n], out=mm)
    if book.lev_mode == 0:
        np.multiply(notional, book.imr[:n], out=im)
    elif book.lev_mode == 1:
        np.divide(notional, book.lev[:n], out=im)
    else:
        lev = book.lev[:n]
        im[:] = np.where(np.isnan(lev), notional * book.imr[:n], notional / lev)
    for r in book.slow:
        model = book.legs[r].model
        assert model is not None
        x, sz = float(notional[r]), float(size[r])
        mm[r] = model.maintenance(x, sz)
        im[r] = model.initial(x, sz, book.legs[r].leverage)
    delta = book.delta_buf[: (N_FIG + 2) * n].reshape(N_FIG + 2, n)
    deltas = delta[:N_FIG]
    old = book.fig[:, :n]  # (written back first if the python tick ran last)
    np.subtract(new, old, out=deltas)
    if not book.all_cross:
        deltas *= book.crossf[:n]
    # Error-bound weight of this tick per row: Σ|delta| (see monitor.store.accounts). The old
    # figures are dead now: their buffer takes |delta| and becomes next tick's scratch.
    np.abs(deltas, out=old)
    np.add.reduce(old, axis=0, out=delta[N_FIG])
    book.fig_now, book.fig_alt = book.fig_alt, book.fig_now
    return TickDeltas(book.account[:n], delta, book.flat_index, book.touched, book.max_rows)


def tick_small(book: InstrumentBook, mark: float) -> list[RowDeltas] | None:
    """:func:`tick_book` in python floats, for small books: the same operations in the same
    order on each row (so the same figures, bit for bit), one tuple of deltas per row."""
    book.mark = mark
    if book.py_version != book.version or not book.mirror_ok or not book.derived_ok:
        if book.n == 0:
            return None
        _prepare_rows(book)
    lo_m, hi_m = book.safe
    if lo_m == math.inf:  # a row changed piece: the range is rebuilt before it is used
        book.update_safe_range()
        lo_m, hi_m = book.safe
    inside = lo_m < mark < hi_m
    per_w = book.max_rows + 1.0
    linear = book.py_linear
    inv_mark = 0.0 if linear else 1.0 / mark
    slow = book.slow
    mirror = book.mirror
    out: list[RowDeltas] = []
    moved = False
    for r, (acct, qcs, size, entry, lo, hi, mmr, ded, imr, lev, crossf) in enumerate(book.py_rows):
        if linear:
            x = size * mark
            u = qcs * (mark - entry)
        else:
            x = size / mark
            u = qcs * (entry - inv_mark)
        if not inside and (x < lo or x >= hi):
            book.repiece(r, x)
            moved = True
            mm, im = _margins_at(book, r, x, size)
        elif slow and r in slow:
            mm, im = _margins_at(book, r, x, size)
        else:
            mm = x * mmr - ded
            # lev NaN: no leverage set (tested without a call: this is the hot loop)
            im = x * imr if lev != lev else x / lev  # noqa: PLR0124
        old_u, old_mm, old_im, old_x = mirror[r]  # the FIG_* order
        mirror[r] = [u, mm, im, x]
        du, dmm, dim, dx = u - old_u, mm - old_mm, im - old_im, x - old_x
        if crossf != 1.0:  # isolated: its deltas stay out of the account sums
            du, dmm, dim, dx = du * crossf, dmm * crossf, dim * crossf, dx * crossf
        w = abs(du) + abs(dmm) + abs(dim) + abs(dx)
        out.append((acct, du, dmm, dim, dx, w, w * per_w))
    book.fig_dirty = True
    if moved:
        book.update_safe_range()
    return out


def _prepare_rows(book: InstrumentBook) -> None:
    """The python tick's copies: the static columns (after any structural change), the
    figures (after numpy touched them), and the derived caches."""
    n = book.n
    if not book.derived_ok:
        book.derive()
    if book.py_version != book.version:
        cols = ("account", "qcs", "size", "entry", "lo", "hi", "mmr", "ded", "imr", "lev")
        cross = book.crossf[:n].tolist()
        book.py_rows = list(zip(*(getattr(book, c)[:n].tolist() for c in cols), cross, strict=True))
        book.py_linear = book.kind is ContractKind.LINEAR
        book.py_version = book.version
    if not book.mirror_ok:
        book.mirror = book.fig_now[:, :n].T.tolist()
        book.mirror_ok = True


def _margins_at(book: InstrumentBook, r: int, x: float, size: float) -> tuple[float, float]:
    """(MM, IM) of row ``r`` at notional ``x`` by its current piece, or its model for a
    slow row: the python tick's rare path, as :func:`tick_book` forms them."""
    if r in book.slow:
        leg = book.legs[r]
        model = leg.model
        assert model is not None
        return model.maintenance(x, size), model.initial(x, size, leg.leverage)
    lev = book.lev.item(r)
    im = x * book.imr.item(r) if math.isnan(lev) else x / lev
    return x * book.mmr.item(r) - book.ded.item(r), im

"""One fused pass over many instruments' legs: a frame of marks (all of a venue's instruments).

Ticking 300 books one by one pays a dozen numpy calls per book; here the static columns of every
book in the frame are kept concatenated (rebuilt only when a book's ``version`` moved), so the
frame is a handful of numpy calls over all its legs at once.

Exactness: each leg gets the same float operations, in the same order, as
:meth:`monitor.store.book.InstrumentBook.tick` (``notional = size·mark``,
``upnl = qcs·(mark − entry)``,
``mm = notional·mmr − ded``, ``im = notional·imr`` or ``notional/lev``) — so per-leg figures stay
bit-identical to :func:`rules.account.position_figures`. Only linear books whose rows are all
pure linear pieces take this path (:meth:`InstrumentBook.fusable`); a row whose notional leaves
its piece is re-looked up through its model before MM/IM are formed, as in ``tick``.

Account sums: the per-account deltas are summed with ``np.bincount`` (sequentially per account,
from 0) and added to the stored sums once. For an account with ``m`` rows that is ``m`` roundings
of partial sums each at most ``Σ|d|``, plus one of the final sum — within the
``(m + 1)·Σ|d| + m·Σ|S|`` that :meth:`monitor.store.accounts.AccountTable.finish_batch` books for
``m`` rows, so the error bound of :mod:`monitor.store.accounts` still holds.
"""

from __future__ import annotations

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
)

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


def fused_rows(books: Sequence[InstrumentBook]) -> int:
    return sum(b.n for b in books)

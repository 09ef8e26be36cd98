"""Per-account aggregates as numpy arrays, kept incrementally with a proven error bound.

Exactness guarantee (the property tests check it after every event)
--------------------------------------------------------------------
Every per-leg figure (notional, uPnL, MM, IM) is bit-identical to
:func:`rules.account.position_figures` of the same leg (see :mod:`monitor.book`). The account
sums ``U = Σ uPnL``, ``MM = Σ MM``, ``IM = Σ IM`` and ``G = Σ notional`` over the cross legs are
kept by adding per-leg deltas on each tick. Plain ``+= delta`` accumulates rounding, so each
account also carries ``E``, a running bound built from the actual rounded operands: every
float operation ``fl(a ± b)`` errs by at most ``u·|result|`` (``u = 2⁻⁵³``). An account updated
by ``k`` rows (hedge legs; or several instruments in one frame) with deltas ``d_i`` errs by at
most ``u·Σ(|d_i| + |S_i|)`` with every intermediate ``|S_i| <= |S_final| + Σ|d|``, so ``E``
grows by ``(k + 1)·Σ|d_i| + k·(|U| + |MM| + |IM| + |G|)`` of the updated sums. Hence, for each
of the four sums, at every step::

    |stored − exact sum of the current per-leg values| <= u·E·(1 + 1e-6)

When ``E`` passes ``SOFT·G`` the account is queued for an exact re-sum (``math.fsum`` over its
legs, correctly rounded: ``E`` restarts at ``|U| + |MM| + |IM| + |G|``); queued accounts are
re-summed a few per event so re-sums never bunch into one slow tick, and any account reaching
``HARD·G`` is re-summed at once. So the bound can never exceed ``u·HARD·G = 2⁻³⁶·G`` (≈1.5e-11 of
the account's gross notional) whatever the history: drift cannot accumulate. Structural changes
(legs opened, closed, resized, re-priced models) always re-sum the account exactly.

Equity is ``C + U`` with ``C`` computed by :func:`rules.account.collateral_value` itself, health
``equity / MM`` (``inf`` when MM is 0), exactly as :func:`rules.account.account_figures` forms
them from its own (``fsum``) sums.
"""

from __future__ import annotations

import math

import numpy as np

from monitor.book import F64, I64, BoolA, TickDeltas

UNIT_ROUNDOFF = 2.0**-53
BOUND_SLACK = 1.0 + 1e-6  # covers the rounding of E's own accumulation
SOFT = 2.0**16  # E / G at which an account is queued for a re-sum
HARD = 2.0**17  # E / G at which it is re-summed before the event returns
BAND_EPS = 1e-12
# Conservative liquidation-distance prefilter: a uniform relative move x of every mark and
# non-stable collateral price changes equity − MM by at most DIST_SLOPE·x·(G + NC) for x ≤ 1/3
# (uPnL ≤ x·notional, inverse ≤ 1.5·x·notional; MM rates ≤ 1; collateral ≤ x·NC).
DIST_SLOPE = 3.0

# One row per quantity of a 2-D table (rows contiguous: whole-book arithmetic stays fast; a
# subset is gathered with one ``take``). The first four rows match monitor.book's figure rows,
# so one ``np.add.at`` on the flattened table applies a tick's whole delta block.
ROWS = (
    "upnl",
    "mm",
    "im",
    "gross",
    "err",
    "coll",  # collateral value C (NaN while unknown)
    "noncash",  # value of non-stablecoin collateral (distance prefilter)
    "band_lo",
    "band_hi",
    "dist3",  # DIST_SLOPE·distance threshold; NaN when distance alerts are off
    "wsum",  # batch accumulator of Σ|delta| per account
)
R = {name: k for k, name in enumerate(ROWS)}
_GATHER = slice(0, R["dist3"] + 1)  # rows read by the per-tick screen


class AccountTable:
    """Numpy columns of account aggregates indexed by account index."""

    def __init__(self) -> None:
        self.n = 0
        self._cap = 0
        self.table = np.zeros((len(ROWS), 0))
        self.complete = np.zeros(0, dtype=np.bool_)
        self.eq_over_mm = np.zeros(0, dtype=np.bool_)  # venue ratio is equity/MM (OKX)
        self._bind()
        self.resum_queue: dict[int, None] = {}  # ordered set of accounts due a re-sum
        self._scratch: tuple[F64, ...] = (np.zeros(0),)
        self._scratch_b: tuple[BoolA, ...] = ()

    def _bind(self) -> None:
        t = self.table
        self.flat: F64 = t.reshape(-1)
        self.upnl: F64 = t[R["upnl"]]
        self.mm: F64 = t[R["mm"]]
        self.im: F64 = t[R["im"]]
        self.gross: F64 = t[R["gross"]]
        self.err: F64 = t[R["err"]]
        self.coll: F64 = t[R["coll"]]
        self.noncash: F64 = t[R["noncash"]]
        self.band_lo: F64 = t[R["band_lo"]]
        self.band_hi: F64 = t[R["band_hi"]]
        self.dist3: F64 = t[R["dist3"]]
        self.wsum: F64 = t[R["wsum"]]

    def new_account(self) -> int:
        if self.n == self._cap:
            cap = max(64, self._cap * 2)
            table = np.zeros((len(ROWS), cap))
            table[:, : self.n] = self.table[:, : self.n]
            complete = np.zeros(cap, dtype=np.bool_)
            complete[: self.n] = self.complete[: self.n]
            inverse = np.zeros(cap, dtype=np.bool_)
            inverse[: self.n] = self.eq_over_mm[: self.n]
            self.table, self.complete, self.eq_over_mm, self._cap = table, complete, inverse, cap
            self._bind()
        i = self.n
        self.n += 1
        self.coll[i] = 0.0
        self.band_lo[i] = math.inf  # unset band: never quiet
        self.band_hi[i] = -math.inf
        self.dist3[i] = math.nan
        self.complete[i] = True
        return i

    def set_sums(self, i: int, upnl: float, mm: float, im: float, gross: float) -> None:
        """Exact sums of account ``i`` (from an fsum re-sum); resets its error bound."""
        self.upnl[i], self.mm[i], self.im[i], self.gross[i] = upnl, mm, im, gross
        self.err[i] = abs(upnl) + abs(mm) + abs(im) + abs(gross)
        self.resum_queue.pop(i, None)

    def equity_of(self, i: int) -> float:
        """``C + U``: formed on read (the tick never needs it per account)."""
        return self.coll.item(i) + self.upnl.item(i)

    def health_of(self, i: int) -> float:
        mm = self.mm.item(i)
        return math.inf if mm == 0.0 else self.equity_of(i) / mm

    def set_band(self, i: int, lo: float, hi: float) -> None:
        """Store the policy's quiet band shrunk by 1e-12, so the division-free screen
        ``lo·MM < equity < hi·MM`` implies ``lo < fl(equity/MM) < hi`` despite rounding."""
        self.band_lo[i] = lo * (1.0 + BAND_EPS) if 0.0 < lo < math.inf else lo
        self.band_hi[i] = hi * (1.0 - BAND_EPS) if 0.0 < hi < math.inf else hi

    def error_bound(self, i: int) -> float:
        return UNIT_ROUNDOFF * self.err.item(i) * BOUND_SLACK

    def is_candidate(self, i: int) -> bool:
        """Whether account ``i`` must go through the alert policy after a change."""
        if not self.complete[i]:
            return False
        eq, mm = self.equity_of(i), self.mm.item(i)
        if not (self.band_lo.item(i) * mm < eq < self.band_hi.item(i) * mm):
            return True
        slack = self.dist3.item(i) * (self.gross.item(i) + self.noncash.item(i))
        return bool(eq - mm < slack)

    def apply_tick(self, t: TickDeltas) -> tuple[I64, I64, list[int]]:
        """Add one tick's deltas; return (touched accounts, candidates, accounts over HARD)."""
        touched = t.touched
        k = float(t.max_rows_per_account)
        block = t.block  # the book's scratch: the weight row is scaled in place
        block[-1] *= k + 1.0
        np.add.at(self.flat, t.flat_index(self._cap, R["err"]), block.reshape(-1))
        if touched.size == self.n:
            # Every account holds the instrument (BTC): whole-row arithmetic, no gathers.
            return (touched, *self._after_all(k))
        return (touched, *self._after(touched, k))

    def add_deltas(self, t: TickDeltas) -> None:
        """One instrument's tick inside a batch (a frame of marks); see :meth:`finish_batch`."""
        np.add.at(self.flat, t.flat_index(self._cap, R["wsum"]), t.block.reshape(-1))

    def finish_batch(self, rows: list[I64]) -> tuple[I64, I64, list[int]]:
        """Error bound, health and screen of every account a batch touched.

        An account updated by ``m`` rows of the batch gets ``(m + 1)·Σ|d| + m·Σ|S|`` (the
        intermediate sums are bounded by the final one plus the later deltas).
        """
        n = self.n
        cnt = np.bincount(np.concatenate(rows), minlength=n).astype(np.float64)
        if cnt.size > n:
            cnt = cnt[:n]
        if bool(cnt.all()):
            self.err[:n] += (cnt + 1.0) * self.wsum[:n]
            self.wsum[:n] = 0.0
            return (np.arange(n, dtype=np.int64), *self._after_all(cnt))
        touched = np.flatnonzero(cnt)
        m = cnt[touched]
        self.err[touched] += (m + 1.0) * self.wsum[touched]
        self.wsum[touched] = 0.0
        return (touched, *self._after(touched, m))

    def _after_all(self, k: float | F64) -> tuple[I64, list[int]]:
        """``_after`` over every account, in preallocated scratch (no page-faulting temps)."""
        n = self.n
        if self._scratch[0].size < n:
            self._scratch = tuple(np.zeros(self._cap) for _ in range(3))
            self._scratch_b = tuple(np.zeros(self._cap, dtype=np.bool_) for _ in range(2))
        mag, tmp, eq = (a[:n] for a in self._scratch)
        quiet, loud = (b[:n] for b in self._scratch_b)
        upnl, mm, im, gross = self.upnl[:n], self.mm[:n], self.im[:n], self.gross[:n]
        err = self.err[:n]
        np.abs(upnl, out=mag)
        for x in (mm, im, gross):
            np.abs(x, out=tmp)
            mag += tmp
        if isinstance(k, np.ndarray) or k != 1.0:
            mag *= k
        err += mag
        np.add(self.coll[:n], upnl, out=eq)
        # Inside the band ⇔ lo·MM < equity < hi·MM (MM > 0; MM = 0 gives NaN or 0: loud).
        with np.errstate(invalid="ignore"):
            np.multiply(self.band_lo[:n], mm, out=tmp)
            np.less(tmp, eq, out=quiet)
            np.multiply(self.band_hi[:n], mm, out=tmp)
            np.less(eq, tmp, out=loud)
        quiet &= loud
        np.logical_not(quiet, out=loud)
        np.add(gross, self.noncash[:n], out=tmp)
        tmp *= self.dist3[:n]
        np.subtract(eq, mm, out=mag)
        np.less(mag, tmp, out=quiet)  # reused: "distance may be near"
        loud |= quiet
        loud &= self.complete[:n]
        hard: list[int] = []
        np.multiply(gross, SOFT, out=tmp)
        np.greater(err, tmp, out=quiet)
        if quiet.any():
            for i in np.flatnonzero(quiet).tolist():
                self.resum_queue[i] = None
            hard = np.flatnonzero(err > HARD * gross).tolist()
        return np.flatnonzero(loud), hard

    def _after(self, index: I64, k: float | F64) -> tuple[I64, list[int]]:
        """Error bound, equity, health and the screen for a subset of accounts (one gather)."""
        g = self.table[_GATHER].take(index, axis=1)
        upnl, mm, gross, err = g[R["upnl"]], g[R["mm"]], g[R["gross"]], g[R["err"]]
        mag = np.abs(g[: R["gross"] + 1]).sum(axis=0)
        if isinstance(k, np.ndarray) or k != 1.0:
            mag *= k
        err += mag
        eq = g[R["coll"]] + upnl
        self.err[index] = err
        with np.errstate(invalid="ignore"):  # inf·0 when MM is 0: NaN compares false → loud
            loud = ~((g[R["band_lo"]] * mm < eq) & (eq < g[R["band_hi"]] * mm))
        loud |= (eq - mm) < g[R["dist3"]] * (gross + g[R["noncash"]])
        loud &= self.complete[index]
        hard: list[int] = []
        over = err > SOFT * gross
        if over.any():
            for i in index[np.flatnonzero(over)].tolist():
                self.resum_queue[i] = None
            hard = index[np.flatnonzero(err > HARD * gross)].tolist()
        return index[np.flatnonzero(loud)], hard

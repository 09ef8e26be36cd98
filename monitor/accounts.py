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
# Conservative liquidation-distance prefilter: a uniform relative move x of every mark and
# non-stable collateral price changes equity − MM by at most DIST_SLOPE·x·(G + NC) for x ≤ 1/3
# (uPnL ≤ x·notional, inverse ≤ 1.5·x·notional; MM rates ≤ 1; collateral ≤ x·NC).
DIST_SLOPE = 3.0

_ARRAYS = (
    "coll",  # collateral value C (NaN while unknown)
    "noncash",  # value of non-stablecoin collateral (distance prefilter)
    "upnl",
    "mm",
    "im",
    "gross",
    "err",
    "equity",
    "health",
    "band_lo",
    "band_hi",
    "dist3",  # DIST_SLOPE·distance threshold; NaN when distance alerts are off
)


class AccountTable:
    """Numpy columns of account aggregates indexed by account index."""

    def __init__(self) -> None:
        self.n = 0
        self._cap = 0
        for name in _ARRAYS:
            setattr(self, name, np.zeros(0))
        self.complete = np.zeros(0, dtype=np.bool_)
        self.coll: F64
        self.noncash: F64
        self.upnl: F64
        self.mm: F64
        self.im: F64
        self.gross: F64
        self.err: F64
        self.equity: F64
        self.health: F64
        self.band_lo: F64
        self.band_hi: F64
        self.dist3: F64
        self.resum_queue: dict[int, None] = {}  # ordered set of accounts due a re-sum
        self._scratch: tuple[F64, ...] = (np.zeros(0),)
        self._scratch_b: tuple[BoolA, ...] = ()
        self._wsum = np.zeros(0)  # batch accumulator of Σ|delta| per account

    def new_account(self) -> int:
        if self.n == self._cap:
            cap = max(64, self._cap * 2)
            for name in (*_ARRAYS, "complete"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
            self._cap = cap
        i = self.n
        self.n += 1
        self.coll[i] = 0.0
        self.band_lo[i] = math.inf  # unset band: never quiet
        self.band_hi[i] = -math.inf
        self.dist3[i] = math.nan
        self.health[i] = math.inf
        self.complete[i] = True
        return i

    def set_sums(self, i: int, upnl: float, mm: float, im: float, gross: float) -> None:
        """Exact sums of account ``i`` (from an fsum re-sum); resets its error bound."""
        self.upnl[i], self.mm[i], self.im[i], self.gross[i] = upnl, mm, im, gross
        self.err[i] = abs(upnl) + abs(mm) + abs(im) + abs(gross)
        self.resum_queue.pop(i, None)
        self.refresh_health(i)

    def refresh_health(self, i: int) -> None:
        eq = self.coll.item(i) + self.upnl.item(i)
        mm = self.mm.item(i)
        self.equity[i] = eq
        self.health[i] = math.inf if mm == 0.0 else eq / mm

    def error_bound(self, i: int) -> float:
        return UNIT_ROUNDOFF * self.err.item(i) * BOUND_SLACK

    def is_candidate(self, i: int) -> bool:
        """Whether account ``i`` must go through the alert policy after a change."""
        if not self.complete[i]:
            return False
        h = self.health.item(i)
        if not (self.band_lo.item(i) < h < self.band_hi.item(i)):
            return True
        slack = self.dist3.item(i) * (self.gross.item(i) + self.noncash.item(i))
        return bool(self.equity.item(i) - self.mm.item(i) < slack)

    def apply_tick(self, t: TickDeltas) -> tuple[I64, I64, list[int]]:
        """Add one tick's deltas; return (touched accounts, candidates, accounts over HARD)."""
        acc = t.accounts
        np.add.at(self.upnl, acc, t.d_upnl)
        np.add.at(self.mm, acc, t.d_mm)
        np.add.at(self.im, acc, t.d_im)
        np.add.at(self.gross, acc, t.d_notional)
        touched = t.touched
        k = float(t.max_rows_per_account)
        weight = t.weight  # the book's scratch column: scaled in place
        weight *= k + 1.0
        np.add.at(self.err, acc, weight)
        if touched.size == self.n:
            # Every account holds the instrument (BTC): whole-array arithmetic, no gathers.
            return (touched, *self._after_all(k))
        return (touched, *self._after(touched, k, touched))

    def add_deltas(self, t: TickDeltas) -> None:
        """One instrument's tick inside a batch (a frame of marks); see :meth:`finish_batch`."""
        acc = t.accounts
        np.add.at(self.upnl, acc, t.d_upnl)
        np.add.at(self.mm, acc, t.d_mm)
        np.add.at(self.im, acc, t.d_im)
        np.add.at(self.gross, acc, t.d_notional)
        if self._wsum.size < self.n:
            self._wsum = np.zeros(self._cap)
        np.add.at(self._wsum, acc, t.weight)

    def finish_batch(self, rows: list[I64]) -> tuple[I64, I64, list[int]]:
        """Error bound, health and screen of every account a batch touched.

        An account updated by ``m`` rows of the batch gets ``(m + 1)·Σ|d| + m·Σ|S|`` (the
        intermediate sums are bounded by the final one plus the later deltas).
        """
        n = self.n
        cnt = np.bincount(np.concatenate(rows), minlength=n).astype(np.float64)
        touched = np.flatnonzero(cnt)
        w = self._wsum[touched]
        self._wsum[touched] = 0.0
        self.err[touched] += (cnt[touched] + 1.0) * w
        if touched.size == n:
            return (touched, *self._after_all(cnt))
        return (touched, *self._after(touched, cnt[touched], touched))

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
        np.copyto(self.equity[:n], eq)
        health = self.health[:n]
        health.fill(math.inf)
        np.divide(eq, mm, out=health, where=mm != 0.0)
        np.less(self.band_lo[:n], health, out=quiet)
        np.less(health, self.band_hi[:n], out=loud)
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

    def _after(self, sel: I64, k: float | F64, index: I64) -> tuple[I64, list[int]]:
        upnl, mm, im, gross = self.upnl[sel], self.mm[sel], self.im[sel], self.gross[sel]
        err = self.err[sel]
        mag = np.abs(upnl)
        mag += np.abs(mm)
        mag += np.abs(im)
        mag += np.abs(gross)
        if isinstance(k, np.ndarray) or k != 1.0:
            mag *= k
        err += mag
        self.err[sel] = err
        eq = self.coll[sel] + upnl
        self.equity[sel] = eq
        health = np.full(eq.shape, math.inf)
        np.divide(eq, mm, out=health, where=mm != 0.0)
        self.health[sel] = health
        loud = ~((self.band_lo[sel] < health) & (health < self.band_hi[sel]))
        loud |= (eq - mm) < self.dist3[sel] * (gross + self.noncash[sel])
        loud &= self.complete[sel]
        hard: list[int] = []
        over = err > SOFT * gross
        if over.any():
            due = np.flatnonzero(over)
            ids = index[due]
            for i in ids.tolist():
                self.resum_queue[i] = None
            big = np.flatnonzero(err > HARD * gross)
            hard = index[big].tolist()
        found = np.flatnonzero(loud)
        return index[found], hard

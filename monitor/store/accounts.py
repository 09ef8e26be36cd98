"""Per-account aggregates as numpy arrays, kept incrementally with a proven error bound.

Exactness guarantee (the property tests check it after every event)
--------------------------------------------------------------------
Every per-leg figure (notional, uPnL, MM, IM) is bit-identical to
:func:`rules.account.position_figures` of the same leg (see :mod:`monitor.store.book`). The account
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

Lazy error bound and the screen's budget ("room")
-------------------------------------------------
A single-instrument tick must not pay a dozen numpy calls over its touched accounts, so the
``k·Σ|S|`` term and the screen are settled lazily. Each account carries ``room`` (a budget in
units of ``(k+1)·Σ|d|``), ``cntroom`` (updates left) and ``s0`` (``|U| + |MM| + |IM| + |G|`` when
the budget was set). A tick scatters ``−(k+1)·Σ|d|`` into ``room`` and ``−k`` into ``cntroom`` with
the same ``np.add.at`` as the deltas; only accounts whose ``room`` or ``cntroom`` went negative
are *flagged* and get the full screen. Until then, with ``W = (room0 − room)/2 >= Σ|d|`` since
the budget was set, every ``|S_t| <= s0 + W`` (each stored sum moved by at most its deltas plus
its roundings, which BOUND_SLACK covers), so the error bound *materialised* as
``E = E0 + (room0 − room) + (CNT − cntroom)·(s0 + (room0 − room)/2)`` dominates the eager
``E``. The budget is armed only when it keeps ``E < HARD·G`` for its whole life.

Why an unflagged account needs no screen: with ``s = max(1, |lo|, |hi|, dist3)`` (finite ones;
the band shrunk as in :meth:`AccountTable.set_band`), each of ``equity − lo·MM``,
``hi·MM − equity`` and ``equity − MM − dist3·(G + NC)`` moves by at most
``|ΔU| + s·(|ΔMM| + |ΔG|) <= s·Σ|d|`` per row. The budget is
``2·(min of the three − 1e-9·(|C| + |U| + s·(|MM| + G + NC)))/s`` (the 1e-9 term dwarfs the
roundings of the stored sums over at most CNT updates and of the screen's own arithmetic, all
below ``2⁻³⁶·`` those magnitudes), capped at ``G``; so while ``room >= 0`` all three stay
positive: the account is still quiet and not near, exactly what a full screen would find. Any
change outside ticks (re-sum, band, threshold, collateral) disarms the account (``room < 0``):
it is screened on its next tick. Batches (frames) and ticks touching every account screen all
of them and re-arm.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from monitor.store.book import F64, I64, RowDeltas, TickDeltas

UNIT_ROUNDOFF = 2.0**-53
BOUND_SLACK = 1.0 + 1e-6  # covers the rounding of E's own accumulation
SOFT = 2.0**16  # E / G at which an account is queued for a re-sum
HARD = 2.0**17  # E / G at which it is re-summed before the event returns
BAND_EPS = 1e-12
# Conservative liquidation-distance prefilter: a uniform relative move x of every mark and
# non-stable collateral price changes equity − MM by at most DIST_SLOPE·x·(G + NC) for x ≤ 1/3
# (uPnL ≤ x·notional, inverse ≤ 1.5·x·notional; MM rates ≤ 1; collateral ≤ x·NC).
DIST_SLOPE = 3.0
CNT = 1024.0  # updates an armed budget lasts at most (bounds the lazy k·|S| term)
ROOM_EPS = 1e-9  # relative margin of the budget (see the module docstring)

# One row per quantity of a 2-D table (rows contiguous: whole-book arithmetic stays fast; a
# subset is gathered with one ``take``). The first four rows match monitor.store.book's figure rows,
# so one ``np.add.at`` on the flattened table applies a tick's whole delta block.
ROWS = (
    "upnl",
    "mm",
    "im",
    "gross",
    "coll",  # collateral value C (NaN while unknown)
    "noncash",  # value of non-stablecoin collateral (distance prefilter)
    "band_lo",
    "band_hi",
    "dist3",  # DIST_SLOPE·distance threshold; NaN when distance alerts are off
    "scale",  # s of the budget: max(1, finite |band_lo|, |band_hi|, dist3)
    "err",  # materialised error bound E0
    "room",  # budget left, in units of (k+1)·Σ|d|; negative: screen on the next tick
    "room0",  # room when armed
    "cntroom",  # updates left
    "s0",  # |U| + |MM| + |IM| + |G| when armed
    "wsum",  # batch accumulator of Σ|delta| per account
)
R = {name: k for k, name in enumerate(ROWS)}
_NG = R["s0"] + 1  # rows read by the screen
_W0 = R["err"]  # rows err..s0 are written back by the screen
_TICK_ROWS = (0, 1, 2, 3, R["room"], R["cntroom"])  # where a tick's block rows go
_EMPTY_I: I64 = np.zeros(0, dtype=np.int64)


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
        self._flag = np.zeros(0)
        self._flag_b = np.zeros(0, dtype=np.bool_)

    def _bind(self) -> None:
        t = self.table
        self.flat: F64 = t.reshape(-1)
        self.upnl: F64 = t[R["upnl"]]
        self.mm: F64 = t[R["mm"]]
        self.im: F64 = t[R["im"]]
        self.gross: F64 = t[R["gross"]]
        self.coll: F64 = t[R["coll"]]
        self.noncash: F64 = t[R["noncash"]]
        self.band_lo: F64 = t[R["band_lo"]]
        self.band_hi: F64 = t[R["band_hi"]]
        self.dist3: F64 = t[R["dist3"]]
        self.scale: F64 = t[R["scale"]]
        self.err: F64 = t[R["err"]]
        self.room: F64 = t[R["room"]]
        self.wsum: F64 = t[R["wsum"]]
        # For add_rows's python loop: the table as a memoryview of doubles (items read and
        # written as python floats, about twice as fast as numpy's scalar indexing) and the
        # offsets of the rows it updates.
        self._cells = cast("memoryview[float]", self.flat.data)  # format "d": python floats
        cap = t.shape[1]
        self._row_at = tuple(R[name] * cap for name in ("mm", "im", "gross", "room", "cntroom"))

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
        self.scale[i] = 1.0
        self.complete[i] = True
        self.disarm(i)
        return i

    # --- the lazy error bound and budget -------------------------------------------------

    def disarm(self, i: int) -> None:
        """Settle account ``i``'s lazy bound; it is screened (and re-armed) on its next tick."""
        t = self.table
        t[R["err"], i] = self._materialised(i)
        t[R["room"], i] = t[R["room0"], i] = -1.0
        t[R["cntroom"], i] = CNT
        t[R["s0"], i] = self._magnitude(i)

    def _magnitude(self, i: int) -> float:
        return (
            abs(self.upnl.item(i))
            + abs(self.mm.item(i))
            + abs(self.im.item(i))
            + abs(self.gross.item(i))
        )

    def _materialised(self, i: int) -> float:
        t = self.table
        used = t[R["room0"], i] - t[R["room"], i]
        cnt = CNT - t[R["cntroom"], i]
        return float(t[R["err"], i] + used + cnt * (t[R["s0"], i] + 0.5 * used))

    def set_sums(self, i: int, upnl: float, mm: float, im: float, gross: float) -> None:
        """Exact sums of account ``i`` (from an fsum re-sum); resets its error bound."""
        self.upnl[i], self.mm[i], self.im[i], self.gross[i] = upnl, mm, im, gross
        t = self.table
        t[R["err"], i] = abs(upnl) + abs(mm) + abs(im) + abs(gross)
        t[R["room"], i] = t[R["room0"], i] = -1.0
        t[R["cntroom"], i] = CNT
        t[R["s0"], i] = t[R["err"], i]
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
        self._set_scale(i)

    def set_dist3(self, i: int, value: float) -> None:
        self.dist3[i] = value
        self._set_scale(i)

    def _set_scale(self, i: int) -> None:
        terms = [1.0]
        for x in (self.band_lo.item(i), self.band_hi.item(i), self.dist3.item(i)):
            if math.isfinite(x):
                terms.append(abs(x))
        self.scale[i] = max(terms)
        self.disarm(i)

    def set_collateral(self, i: int, coll: float, noncash: float) -> None:
        self.coll[i] = coll
        self.noncash[i] = noncash
        self.disarm(i)

    def error_bound(self, i: int) -> float:
        return UNIT_ROUNDOFF * self._materialised(i) * BOUND_SLACK

    def is_candidate(self, i: int) -> bool:
        """Whether account ``i`` must go through the alert policy after a change."""
        if not self.complete[i]:
            return False
        eq, mm = self.equity_of(i), self.mm.item(i)
        if not (self.band_lo.item(i) * mm < eq < self.band_hi.item(i) * mm):
            return True
        slack = self.dist3.item(i) * (self.gross.item(i) + self.noncash.item(i))
        return bool(eq - mm < slack)

    # --- ticks ----------------------------------------------------------------------------

    def apply_tick(self, t: TickDeltas) -> tuple[I64, I64, list[int]]:
        """Add one tick's deltas; return (touched accounts, candidates, accounts over HARD)."""
        touched = t.touched
        k = float(t.max_rows_per_account)
        block = t.block  # the book's scratch: the weight row is scaled in place
        block[4] *= -(k + 1.0)
        np.add.at(self.flat, t.flat_index(self._cap, _TICK_ROWS), block.reshape(-1))
        # Only accounts whose budget ran out are screened (see the module docstring).
        if touched.size == self.n:
            # Every account holds the instrument (BTC): whole-row comparisons, no gathers.
            n = self.n
            with np.errstate(invalid="ignore"):
                low = np.minimum(self.room[:n], self.table[R["cntroom"], :n])
            flagged = np.flatnonzero(~(low >= 0.0))
            if not flagged.size:
                return touched, _EMPTY_I, []
            if flagged.size * 8 > n:  # a jump: whole rows beat gathering most of them
                return (touched, *self._screen(None, None))
            return (touched, *self._screen(flagged, None))
        idx = t.flat_index(self._cap, (R["room"], R["cntroom"]))
        m = idx.size
        if self._flag.size < m:
            self._flag = np.zeros(2 * m)
            self._flag_b = np.zeros(2 * m, dtype=np.bool_)
        got, neg = self._flag[:m], self._flag_b[:m]
        np.take(self.flat, idx, out=got)
        np.greater_equal(got, 0.0, out=neg)
        np.logical_not(neg, out=neg)  # NaN included, as in add_rows and the full-row branch
        if not neg.any():
            return touched, _EMPTY_I, []
        rows = t.accounts.size
        flagged = t.accounts[np.flatnonzero(neg[:rows] | neg[rows:])]
        if t.max_rows_per_account > 1:
            flagged = np.unique(flagged)
        return (touched, *self._screen(flagged, None))

    def add_rows(self, rows: list[RowDeltas]) -> list[int]:
        """Small books' ticks (:func:`monitor.store.kernels.tick_small`) with the lazy
        bound of :meth:`apply_tick`, in python: each row's deltas into its account's sums, its
        charge ``(k + 1)·Σ|d|`` out of ``room`` and 1 out of ``cntroom``. Returns the accounts
        whose budget ran out (NaN included): they must be screened (:meth:`screen`) before the
        event returns."""
        cells = self._cells
        mm_at, im_at, gross_at, room_at, cnt_at = self._row_at
        flagged: list[int] = []
        for i, du, dmm, dim, dx, _w, charge in rows:
            cells[i] += du  # R["upnl"] == 0
            cells[mm_at + i] += dmm
            cells[im_at + i] += dim
            cells[gross_at + i] += dx
            j = room_at + i
            room = cells[j] - charge
            cells[j] = room
            j = cnt_at + i
            cnt = cells[j] - 1.0
            cells[j] = cnt
            if not (room >= 0.0 and cnt >= 0.0):
                flagged.append(i)
        return flagged

    def rows_into_batch(self, rows: list[RowDeltas]) -> I64:
        """Book rows already added by :meth:`add_rows` into a batch's accounting too (their
        weights into ``wsum``; the returned accounts go to :meth:`finish_batch`'s ``rows``):
        the batch bound then covers every update of the batch, in whatever order they came.
        The lazy charges those rows already made only over-count, which is safe."""
        cells, at = self._cells, R["wsum"] * self.table.shape[1]
        for i, _du, _dmm, _dim, _dx, w, _charge in rows:
            cells[at + i] += w
        return np.array([row[0] for row in rows], dtype=np.int64)

    def screen(self, accounts: I64) -> tuple[I64, list[int]]:
        """Screen (and re-arm) ``accounts`` (unique): (candidates, accounts over HARD)."""
        if not accounts.size:
            return _EMPTY_I, []
        return self._screen(accounts, None)

    def add_deltas(self, t: TickDeltas) -> None:
        """One instrument's tick inside a batch (a frame of marks); see :meth:`finish_batch`."""
        np.add.at(
            self.flat, t.flat_index(self._cap, (0, 1, 2, 3, R["wsum"])), t.block[:5].reshape(-1)
        )

    def add_frame(self, accounts: I64, deltas: F64, weight: F64) -> None:
        """A fused frame's per-leg deltas (:class:`monitor.store.kernels.FrameCache`), summed per
        account with ``bincount``; its per-account leg counts go to :meth:`finish_batch`'s
        ``counted``."""
        n = self.n
        t = self.table
        for row in range(4):
            t[row, :n] += np.bincount(accounts, weights=deltas[row], minlength=n)[:n]
        self.wsum[:n] += np.bincount(accounts, weights=weight, minlength=n)[:n]

    def finish_batch(
        self, rows: list[I64], counted: I64 | None = None
    ) -> tuple[I64, I64, list[int]]:
        """Error bound, health and screen of every account a batch touched.

        An account updated by ``m`` rows of the batch gets ``(m + 1)·Σ|d| + m·Σ|S|`` (the
        intermediate sums are bounded by the final one plus the later deltas).
        """
        n = self.n
        # ``counted``: per-account row counts already known (a fused frame's, cached with it).
        if rows:
            cnt = np.bincount(np.concatenate(rows), minlength=n).astype(np.float64)[:n]
            if counted is not None:
                cnt[: counted.size] += counted[:n]
        else:
            assert counted is not None
            cnt = np.zeros(n)
            cnt[: min(n, counted.size)] = counted[:n]
        if bool(cnt.all()):
            self.err[:n] += (cnt + 1.0) * self.wsum[:n]
            self.wsum[:n] = 0.0
            return (np.arange(n, dtype=np.int64), *self._screen(None, cnt))
        touched = np.flatnonzero(cnt)
        m = cnt[touched]
        self.err[touched] += (m + 1.0) * self.wsum[touched]
        self.wsum[touched] = 0.0
        return (touched, *self._screen(touched, m))

    def _screen(self, index: I64 | None, k: F64 | None) -> tuple[I64, list[int]]:
        """Materialise the error bound, screen, and re-arm the budgets of ``index`` (None:
        every account). ``k``: per-account row counts of a batch, whose ``k·Σ|S|`` error term
        is added here (a tick's is already in the lazy bound)."""
        n = self.n
        if index is None:
            g = self.table[:_NG, :n]  # views: every write below lands in the table
            complete = self.complete[:n]
        else:
            g = self.table[:_NG].take(index, axis=1)
            complete = self.complete[index]
        upnl, mm, im, gross = g[R["upnl"]], g[R["mm"]], g[R["im"]], g[R["gross"]]
        err, room, room0, cntroom = g[R["err"]], g[R["room"]], g[R["room0"]], g[R["cntroom"]]
        mag = np.abs(upnl) + np.abs(mm) + np.abs(im) + np.abs(gross)
        used = room0 - room
        err += used + (CNT - cntroom) * (g[R["s0"]] + 0.5 * used)
        if k is not None:
            err += k * mag
        eq = g[R["coll"]] + upnl
        with np.errstate(invalid="ignore"):  # inf·0 when MM is 0: NaN compares false → loud
            f1 = eq - g[R["band_lo"]] * mm
            f2 = g[R["band_hi"]] * mm - eq
            f3 = (eq - mm) - g[R["dist3"]] * (gross + g[R["noncash"]])
            # Quiet ⇔ f1 > 0 and f2 > 0; near ⇔ f3 < 0 (NaN f3: distance alerts off).
            loud = ~((f1 > 0.0) & (f2 > 0.0)) | (f3 < 0.0)
            loud &= complete
            scale = g[R["scale"]]
            budget = np.fmin(np.fmin(f1, f2), f3)
            budget -= ROOM_EPS * (np.abs(g[R["coll"]]) + np.abs(upnl))
            budget -= ROOM_EPS * scale * (np.abs(mm) + gross + g[R["noncash"]])
            budget *= 2.0 / scale
            np.minimum(budget, gross, out=budget)
            # Armed only if quiet, complete, and the lazy bound stays below HARD·G throughout.
            life = err + budget + CNT * (mag + 0.5 * budget)
            armed = (budget > 0.0) & (life < HARD * (gross - 0.5 * budget)) & complete
            armed &= ~loud
        room[...] = np.where(armed, budget, -1.0)
        room0[...] = room
        cntroom[...] = CNT
        g[R["s0"]] = mag
        if index is not None:
            self.table[_W0:_NG, index] = g[_W0:_NG]
        hard: list[int] = []
        over = err > SOFT * gross
        if over.any():
            where = np.flatnonzero(over)
            ids = where if index is None else index[where]
            for i in ids.tolist():
                self.resum_queue[i] = None
            big = np.flatnonzero(err > HARD * gross)
            hard = (big if index is None else index[big]).tolist()
        cands = np.flatnonzero(loud)
        return (cands if index is None else index[cands]), hard

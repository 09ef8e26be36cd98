"""Per-instrument columns of position legs, and the vectorised mark tick over them.

One :class:`InstrumentBook` per ``(venue, symbol)`` holds every *active* leg on that instrument in
numpy float64 columns (rows ``0..n-1``, swap-remove on close, amortised doubling on growth). A
mark tick recomputes notional, uPnL, MM and IM of those rows with the same float operations, in
the same order, as :func:`rules.account.position_figures` — so every per-leg figure is
bit-identical to the from-scratch one — and returns the per-leg deltas for the account sums.

The cached :class:`~rules.types.Piece` of each row (``lo, hi, mm_rate, mm_deduction, im_rate``)
stands in for the tier lookup; a row whose notional leaves ``[lo, hi)`` is re-looked up through
its model (rare, python). A precomputed *safe mark range* lets most ticks skip even the vectorised
check: inside it no row can leave its piece.

Models that are not pure linear pieces (dYdX rounds up to a quantum; unknown third-party models)
are evaluated per row in python after the vectorised pass ("slow rows").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rules.deribit import SizeLinearModel
from rules.model import MarginModel
from rules.tiers import TierTable
from rules.types import ContractKind, MarginMode, Piece, Side

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolA = npt.NDArray[np.bool_]

_FLOAT_COLUMNS = (
    "qcs",  # qty·contract_size (signed), the uPnL factor (0 for inverse legs with entry 0)
    "size",  # |qty|·contract_size
    "entry",  # entry price (linear) or 1/entry (inverse)
    "lo",
    "hi",
    "mmr",
    "ded",
    "imr",
    "lev",  # NaN = no leverage set (IM from the piece's rate)
    "notional",
    "upnl",
    "mm",
    "im",
    "crossf",  # 1.0 cross, 0.0 isolated: masks deltas out of the account sums
)
# Relative margin by which the safe mark range is shrunk, far above the rounding of size·mark.
_SAFE_EPS = 1e-9


def exact_piecewise(model: MarginModel) -> bool:
    """True when ``maintenance == piece.mm(notional)`` and ``initial`` is the piece's rate.

    Only models known to satisfy it are vectorised; anything else takes the python path so the
    per-leg figures stay identical to the model's own.
    """
    return isinstance(model, TierTable | SizeLinearModel) and model.rounding_quantum == 0.0


class Leg:
    """One position leg of one account: python master copy of its static facts.

    ``row`` is its row in ``book`` while active, ``-1`` while held (inputs missing).
    """

    __slots__ = (
        "account",
        "book",
        "entry",
        "event_ms",
        "isolated_margin",
        "leverage",
        "margin_mode",
        "model",
        "qty",
        "row",
        "side",
        "symbol",
    )

    def __init__(
        self,
        account: int,
        book: InstrumentBook,
        *,
        side: Side,
        qty: float,
        entry: float,
        margin_mode: MarginMode,
        leverage: float | None,
        isolated_margin: float | None,
        event_ms: int,
    ) -> None:
        self.account = account
        self.book = book
        self.symbol = book.symbol
        self.side = side
        self.qty = qty
        self.entry = entry
        self.margin_mode = margin_mode
        self.leverage = leverage
        self.isolated_margin = isolated_margin
        self.event_ms = event_ms
        self.model: MarginModel | None = None
        self.row = -1

    @property
    def cross(self) -> bool:
        return self.margin_mode is MarginMode.CROSS


@dataclass(frozen=True, slots=True)
class TickDeltas:
    """Per-row changes of one tick, for the cross rows' accounts (isolated rows carry zeros)."""

    accounts: I64
    d_upnl: F64
    d_mm: F64
    d_im: F64
    d_notional: F64
    touched: I64  # unique account indices holding a row on the instrument
    max_rows_per_account: int


class InstrumentBook:
    """The active legs of one instrument as numpy columns, plus the instrument's inputs."""

    def __init__(self, venue: str, symbol: str) -> None:
        self.venue = venue
        self.symbol = symbol
        self.kind: ContractKind | None = None
        self.contract_size: float | None = None
        self.settle_asset: str | None = None
        self.model: MarginModel | None = None  # venue-symbol default; accounts may override
        self.mark: float | None = None
        self.mark_event_ms: int | None = None
        self.mark_recv_ms: int | None = None
        self.legs: list[Leg] = []  # aligned with rows
        self.held: set[Leg] = set()  # legs waiting for kind, model or mark
        self.n = 0
        self._cap = 0
        self.account = np.zeros(0, dtype=np.int64)
        for name in _FLOAT_COLUMNS:
            setattr(self, name, np.zeros(0))
        self.qcs: F64
        self.size: F64
        self.entry: F64
        self.lo: F64
        self.hi: F64
        self.mmr: F64
        self.ded: F64
        self.imr: F64
        self.lev: F64
        self.notional: F64
        self.upnl: F64
        self.mm: F64
        self.im: F64
        self.crossf: F64
        self._slow: set[int] = set()  # rows whose model is evaluated in python
        self._derived_ok = False
        self._touched = np.zeros(0, dtype=np.int64)
        self._max_rows = 1
        self._all_cross = True
        self._lev_mode = 0  # 0: no row has leverage, 1: all rows, 2: mixed
        self._safe = (math.inf, -math.inf)  # (lo, hi) mark range where no row leaves its piece

    # --- inputs ------------------------------------------------------------------------------

    def ready(self) -> bool:
        return self.kind is not None and self.mark is not None

    # --- structure ---------------------------------------------------------------------------

    def _grow(self) -> None:
        cap = max(16, self._cap * 2)
        for name in ("account", *_FLOAT_COLUMNS):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        self._cap = cap

    def add(self, leg: Leg, model: MarginModel) -> None:
        """Activate ``leg`` (kind and mark must be known) and compute its figures at the mark."""
        assert self.kind is not None and self.contract_size is not None and self.mark is not None
        if self.n == self._cap:
            self._grow()
        r = self.n
        self.n += 1
        self.legs.append(leg)
        leg.row = r
        leg.model = model
        cs = self.contract_size
        self.account[r] = leg.account
        self.size[r] = abs(leg.qty) * cs
        if self.kind is ContractKind.LINEAR:
            self.qcs[r] = leg.qty * cs
            self.entry[r] = leg.entry
        elif leg.entry == 0.0:
            self.qcs[r] = 0.0  # rules.types.upnl_of: inverse uPnL is 0 without an entry
            self.entry[r] = 0.0
        else:
            self.qcs[r] = leg.qty * cs
            self.entry[r] = 1.0 / leg.entry
        self.lev[r] = math.nan if leg.leverage is None else leg.leverage
        self.crossf[r] = 1.0 if leg.cross else 0.0
        if not exact_piecewise(model):
            self._slow.add(r)
        self.notional[r] = self._notional_at(r, self.mark)
        self.repiece(r)
        self.refresh_row(r)
        self._derived_ok = False

    def remove(self, leg: Leg) -> None:
        """Deactivate ``leg``: swap the last row into its place."""
        r = leg.row
        last = self.n - 1
        if r != last:
            moved = self.legs[last]
            for name in ("account", *_FLOAT_COLUMNS):
                col = getattr(self, name)
                col[r] = col[last]
            self.legs[r] = moved
            moved.row = r
            if last in self._slow:
                self._slow.discard(last)
                self._slow.add(r)
            else:
                self._slow.discard(r)
        else:
            self._slow.discard(r)
        self.legs.pop()
        self.n = last
        leg.row = -1
        self._derived_ok = False

    def _notional_at(self, r: int, mark: float) -> float:
        size = float(self.size[r])
        return size * mark if self.kind is ContractKind.LINEAR else size / mark

    def repiece(self, r: int) -> None:
        """Look the row's piece up at its current notional (tier crossing, new model or size)."""
        model = self.legs[r].model
        assert model is not None
        p: Piece = model.piece(float(self.notional[r]), float(self.size[r]))
        self.lo[r], self.hi[r], self.mmr[r] = p.lo, p.hi, p.mm_rate
        self.ded[r], self.imr[r] = p.mm_deduction, p.im_rate
        self._derived_ok = False

    def refresh_row(self, r: int) -> None:
        """Recompute one row's figures at the current mark exactly as rules.account does."""
        assert self.mark is not None
        leg = self.legs[r]
        model = leg.model
        assert model is not None
        mark = self.mark
        notional = self._notional_at(r, mark)
        qcs, entry = float(self.qcs[r]), float(self.entry[r])
        if self.kind is ContractKind.LINEAR:
            upnl = qcs * (mark - entry)
        else:
            upnl = qcs * (entry - 1.0 / mark)
        size = float(self.size[r])
        self.notional[r] = notional
        self.upnl[r] = upnl
        self.mm[r] = model.maintenance(notional, size)
        self.im[r] = model.initial(notional, size, leg.leverage)

    def set_model(self, leg: Leg, model: MarginModel) -> None:
        """Re-price an active leg with a new model (tier table update)."""
        r = leg.row
        leg.model = model
        if exact_piecewise(model):
            self._slow.discard(r)
        else:
            self._slow.add(r)
        self.repiece(r)
        self.refresh_row(r)

    def set_leverage(self, leg: Leg, leverage: float | None) -> None:
        leg.leverage = leverage
        if leg.row >= 0:
            self.lev[leg.row] = math.nan if leverage is None else leverage
            self.refresh_row(leg.row)
            self._derived_ok = False

    # --- derived caches, rebuilt after structural changes --------------------------------------

    def _derive(self) -> None:
        n = self.n
        acc = self.account[:n]
        self._touched, counts = np.unique(acc, return_counts=True)
        self._max_rows = int(counts.max()) if n else 1
        self._all_cross = bool((self.crossf[:n] == 1.0).all())
        has_lev = ~np.isnan(self.lev[:n])
        self._lev_mode = 1 if has_lev.all() else (2 if has_lev.any() else 0)
        self._update_safe_range()
        self._derived_ok = True

    def _update_safe_range(self) -> None:
        n = self.n
        if n == 0:
            self._safe = (math.inf, -math.inf)
            return
        size, lo, hi = self.size[:n], self.lo[:n], self.hi[:n]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind is ContractKind.LINEAR:
                lo_m, hi_m = float((lo / size).max()), float((hi / size).min())
            else:  # notional = size/mark falls as mark rises
                lo_m, hi_m = float((size / hi).max()), float((size / lo).min())
        self._safe = (lo_m * (1.0 + _SAFE_EPS), hi_m * (1.0 - _SAFE_EPS))

    # --- the tick ----------------------------------------------------------------------------

    def tick(self, mark: float) -> TickDeltas | None:
        """Move every row to ``mark``; return the per-row deltas of the cross rows."""
        self.mark = mark
        n = self.n
        if n == 0:
            return None
        if not self._derived_ok:
            self._derive()
        size = self.size[:n]
        if self.kind is ContractKind.LINEAR:
            notional = size * mark
            upnl = self.qcs[:n] * (mark - self.entry[:n])
        else:
            notional = size / mark
            upnl = self.qcs[:n] * (self.entry[:n] - 1.0 / mark)
        lo_m, hi_m = self._safe
        if not (lo_m < mark < hi_m):
            out = np.flatnonzero((notional < self.lo[:n]) | (notional >= self.hi[:n]))
            if out.size:
                for r in out.tolist():
                    self.notional[r] = notional[r]
                    self.repiece(r)
            self._update_safe_range()
        mm = notional * self.mmr[:n]
        mm -= self.ded[:n]
        if self._lev_mode == 0:
            im = notional * self.imr[:n]
        elif self._lev_mode == 1:
            im = notional / self.lev[:n]
        else:
            im = np.where(np.isnan(self.lev[:n]), notional * self.imr[:n], notional / self.lev[:n])
        for r in self._slow:
            model = self.legs[r].model
            assert model is not None
            x, s = float(notional[r]), float(size[r])
            mm[r] = model.maintenance(x, s)
            im[r] = model.initial(x, s, self.legs[r].leverage)
        d_upnl = upnl - self.upnl[:n]
        d_mm = mm - self.mm[:n]
        d_im = im - self.im[:n]
        d_notional = notional - self.notional[:n]
        self.upnl[:n] = upnl
        self.mm[:n] = mm
        self.im[:n] = im
        self.notional[:n] = notional
        if not self._all_cross:
            cross = self.crossf[:n]
            d_upnl *= cross
            d_mm *= cross
            d_im *= cross
            d_notional *= cross
        return TickDeltas(
            self.account[:n],
            d_upnl,
            d_mm,
            d_im,
            d_notional,
            self._touched,
            self._max_rows,
        )

    def row_figures(self, r: int) -> tuple[float, float, float, float]:
        """(notional, upnl, mm, im) of one row."""
        return (
            self.notional.item(r),
            self.upnl.item(r),
            self.mm.item(r),
            self.im.item(r),
        )

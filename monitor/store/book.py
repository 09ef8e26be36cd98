"""Per-instrument columns of position legs: the rows the tick kernels move.

One :class:`InstrumentBook` per ``(venue, symbol)`` holds every *active* leg on that instrument in
numpy float64 columns (rows ``0..n-1``, swap-remove on close, amortised doubling on growth), the
cached :class:`~rules.types.Piece` of each row (``lo, hi, mm_rate, mm_deduction, im_rate``) and
the derived caches the kernels of :mod:`monitor.store.kernels` read (safe mark range, touched
accounts, leverage mode). A mark moves the rows only through those kernels; this module changes
rows (add, remove, re-piece, re-price) with the same float operations as
:func:`rules.account.position_figures`, so every per-leg figure is bit-identical to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rules.model import MarginModel
from rules.size_linear import SizeLinearModel
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
    "crossf",  # 1.0 cross, 0.0 isolated: masks deltas out of the account sums
)
# The per-row figures live stacked in ``fig`` (rows below) so one ufunc call covers all four;
# the order matches the account table's first four rows (see monitor.store.accounts).
FIG_UPNL, FIG_MM, FIG_IM, FIG_NOTIONAL = 0, 1, 2, 3  # tick_small's python copy uses this order
N_FIG = 4
_SCRATCH = ("w_tmp",)
_SCRATCH_BOOL = ("w_b1", "w_b2")
# Relative margin by which the safe mark range is shrunk, far above the rounding of size·mark.
_SAFE_EPS = 1e-9
# Books with at most this many rows tick in python scalars (monitor.store.kernels.tick_small).
SMALL_ROWS = 8
# One row of a python tick: (account, ΔuPnL, ΔMM, ΔIM, Δnotional, w = Σ|Δ|, (k + 1)·w) where k is
# the book's most rows per account: the last is the row's charge to its account's lazy bound.
RowDeltas = tuple[int, float, float, float, float, float, float]
# The python tick's copy of one row: account, qcs, size, entry, lo, hi, mmr, ded, imr, lev, crossf.
PyRow = tuple[int, float, float, float, float, float, float, float, float, float, float]


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
    """Per-row changes of one tick, for the cross rows' accounts (isolated rows carry zeros).

    ``block`` is (6, n), C-contiguous scratch of the book (valid until its next tick): rows
    uPnL, MM, IM, notional deltas, the row's error weight ``Σ|delta|``, then a row of −1 (the
    account table's update counter).
    """

    accounts: I64
    block: F64
    flat_index: Callable[[int, tuple[int, ...]], I64]
    touched: I64  # unique account indices holding a row on the instrument
    max_rows_per_account: int


class InstrumentBook:
    """The active legs of one instrument as numpy columns, plus the instrument's inputs.

    A book nobody holds (no active or held leg) is *idle*: a mark moves nothing but the mark.
    The book keeps itself in ``idle_index`` (its venue's symbol → idle book map, shared with the
    store) exactly while it is idle, so the store records a venue's idle marks with one lookup
    each; hence held legs change only through :meth:`hold` and :meth:`release`.
    """

    def __init__(
        self, venue: str, symbol: str, idle_index: dict[str, InstrumentBook] | None = None
    ) -> None:
        self.venue = venue
        self.symbol = symbol
        self.kind: ContractKind | None = None
        self.contract_size: float | None = None
        self.settle_asset: str | None = None
        self.model: MarginModel | None = None  # venue-symbol default; accounts may override
        self.mark: float | None = None
        self.mark_recv_ms: int | None = None
        self.legs: list[Leg] = []  # aligned with rows
        self.held: set[Leg] = set()  # legs waiting for kind, model or mark (read-only here)
        self._idle_index = {} if idle_index is None else idle_index
        self._idle_index[symbol] = self
        self.n = 0
        self._cap = 0
        self.account = np.zeros(0, dtype=np.int64)
        for name in (*_FLOAT_COLUMNS, *_SCRATCH):
            setattr(self, name, np.zeros(0))
        for name in _SCRATCH_BOOL:
            setattr(self, name, np.zeros(0, dtype=np.bool_))
        self.fig_now = np.zeros((N_FIG, 0))  # read through ``fig`` (see there)
        self.fig_alt = np.zeros((N_FIG, 0))  # the other figure buffer (swapped with fig per tick)
        # Kernel state (monitor.store.kernels writes it; the structure methods below reset it).
        # The python tick's copy of the figures, one [uPnL, MM, IM, notional] per row: valid
        # while ``mirror_ok``; newer than ``fig_now`` while ``fig_dirty`` (written back on read).
        self.mirror: list[list[float]] = []
        self.mirror_ok = False
        self.fig_dirty = False
        self.delta_buf = np.zeros(0)  # scratch: deltas + weight, flat 5·cap
        self._flat_index: dict[tuple[int, tuple[int, ...]], I64] = {}
        self.qcs: F64
        self.size: F64
        self.entry: F64
        self.lo: F64
        self.hi: F64
        self.mmr: F64
        self.ded: F64
        self.imr: F64
        self.lev: F64
        self.crossf: F64
        self.w_tmp: F64
        self.w_b1: BoolA
        self.w_b2: BoolA
        self.slow: set[int] = set()  # rows whose model is evaluated in python
        self.derived_ok = False
        self.touched = np.zeros(0, dtype=np.int64)
        self.max_rows = 1
        self.all_cross = True
        self.lev_mode = 0  # 0: no row has leverage, 1: all rows, 2: mixed
        self.safe = (math.inf, -math.inf)  # (lo, hi) mark range where no row leaves its piece
        # Bumped whenever a static column (rows, pieces, leverage, cross flag) may change: the
        # frame pass and the python tick (monitor.store.kernels) keep copies keyed on it.
        self.version = 0
        self.py_rows: list[PyRow] = []  # the python tick's copy of the columns
        self.py_linear = False
        self.py_version = -1

    # --- inputs ------------------------------------------------------------------------------

    def ready(self) -> bool:
        return self.kind is not None and self.mark is not None

    def hold(self, leg: Leg) -> None:
        """Keep ``leg`` waiting for the instrument's inputs (the book is no longer idle)."""
        self.held.add(leg)
        self._idle_index.pop(self.symbol, None)

    def release(self, leg: Leg) -> None:
        self.held.discard(leg)
        self._reidle()

    def _reidle(self) -> None:
        if self.n == 0 and not self.held:
            self._idle_index[self.symbol] = self
        else:
            self._idle_index.pop(self.symbol, None)

    def small(self) -> bool:
        """Whether the book ticks in python (:func:`~monitor.store.kernels.tick_small`): some
        rows, few of them."""
        return 0 < self.n <= SMALL_ROWS

    def fusable(self) -> bool:
        """Whether the frame pass may tick this book: linear, every row a pure linear piece."""
        return self.kind is ContractKind.LINEAR and not self.slow and not self.held

    # --- structure ---------------------------------------------------------------------------

    def _grow(self) -> None:
        self.sync_fig()
        cap = max(16, self._cap * 2)
        for name in ("account", *_FLOAT_COLUMNS):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        for name in _SCRATCH:
            setattr(self, name, np.zeros(cap))
        for name in _SCRATCH_BOOL:
            setattr(self, name, np.zeros(cap, dtype=np.bool_))
        fig = np.zeros((N_FIG, cap))
        fig[:, : self.n] = self.fig_now[:, : self.n]
        self.fig_now = fig
        self.fig_alt = np.zeros((N_FIG, cap))
        self.delta_buf = np.zeros((N_FIG + 2) * cap)
        self._cap = cap

    @property
    def fig(self) -> F64:
        """The (4, cap) figures, rows ``FIG_*``. Reading it writes back the python tick's
        newer figures first; since the caller may write into it, the python copy is rebuilt
        on the next python tick."""
        if self.fig_dirty:
            n = self.n
            self.fig_now[:, :n] = np.array(self.mirror[:n], dtype=np.float64).reshape(n, N_FIG).T
            self.fig_dirty = False
        self.mirror_ok = False
        return self.fig_now

    def sync_fig(self) -> None:
        """Before rows move (add, remove, growth): figures written back, python copy dropped."""
        _ = self.fig

    # Views of the current figure buffer, formed on access: binding four views on every tick
    # (the buffers swap) cost more than the few reads outside the tick.
    @property
    def upnl(self) -> F64:
        row: F64 = self.fig[FIG_UPNL]
        return row

    @property
    def mm(self) -> F64:
        row: F64 = self.fig[FIG_MM]
        return row

    @property
    def im(self) -> F64:
        row: F64 = self.fig[FIG_IM]
        return row

    @property
    def notional(self) -> F64:
        row: F64 = self.fig[FIG_NOTIONAL]
        return row

    def add(self, leg: Leg, model: MarginModel) -> None:
        """Activate ``leg`` (kind and mark must be known) and compute its figures at the mark."""
        assert self.kind is not None and self.contract_size is not None and self.mark is not None
        self.sync_fig()
        if self.n == self._cap:
            self._grow()
        r = self.n
        self.n += 1
        self._idle_index.pop(self.symbol, None)
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
            self.slow.add(r)
        self.notional[r] = self._notional_at(r, self.mark)
        self.repiece(r)
        self.refresh_row(r)
        self.derived_ok = False
        self.version += 1

    def remove(self, leg: Leg) -> None:
        """Deactivate ``leg``: swap the last row into its place."""
        self.sync_fig()
        r = leg.row
        last = self.n - 1
        if r != last:
            moved = self.legs[last]
            for name in ("account", *_FLOAT_COLUMNS):
                col = getattr(self, name)
                col[r] = col[last]
            self.fig[:, r] = self.fig[:, last]
            self.legs[r] = moved
            moved.row = r
            if last in self.slow:
                self.slow.discard(last)
                self.slow.add(r)
            else:
                self.slow.discard(r)
        else:
            self.slow.discard(r)
        self.legs.pop()
        self.n = last
        leg.row = -1
        self._reidle()
        self.derived_ok = False
        self.version += 1

    def _notional_at(self, r: int, mark: float) -> float:
        size = float(self.size[r])
        return size * mark if self.kind is ContractKind.LINEAR else size / mark

    def repiece(self, r: int, notional: float | None = None) -> None:
        """Look the row's piece up at ``notional`` (default: its stored one) — a tier crossing,
        new model or size. A tick passes the new notional: the stored figures are the old ones,
        still needed for the tick's deltas."""
        model = self.legs[r].model
        assert model is not None
        x = float(self.notional[r]) if notional is None else notional
        p: Piece = model.piece(x, float(self.size[r]))
        self.lo[r], self.hi[r], self.mmr[r] = p.lo, p.hi, p.mm_rate
        self.ded[r], self.imr[r] = p.mm_deduction, p.im_rate
        self.safe = (math.inf, -math.inf)  # recomputed lazily on the next tick
        self.version += 1

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
            self.slow.discard(r)
        else:
            self.slow.add(r)
        self.repiece(r)
        self.refresh_row(r)

    def set_leverage(self, leg: Leg, leverage: float | None) -> None:
        leg.leverage = leverage
        if leg.row >= 0:
            self.lev[leg.row] = math.nan if leverage is None else leverage
            self.refresh_row(leg.row)
            self.derived_ok = False
            self.version += 1

    # --- derived caches, rebuilt after structural changes --------------------------------------

    def derive(self) -> None:
        n = self.n
        acc = self.account[:n]
        self.touched, counts = np.unique(acc, return_counts=True)
        self.max_rows = int(counts.max()) if n else 1
        self.all_cross = bool((self.crossf[:n] == 1.0).all())
        has_lev = ~np.isnan(self.lev[:n])
        self.lev_mode = 1 if has_lev.all() else (2 if has_lev.any() else 0)
        self.update_safe_range()
        self._flat_index.clear()
        self.delta_buf[(N_FIG + 1) * n : (N_FIG + 2) * n] = -1.0  # the block's constant row
        self.derived_ok = True

    def update_safe_range(self) -> None:
        n = self.n
        if n == 0:
            self.safe = (math.inf, -math.inf)
            return
        size, lo, hi = self.size[:n], self.lo[:n], self.hi[:n]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind is ContractKind.LINEAR:
                lo_m, hi_m = float((lo / size).max()), float((hi / size).min())
            else:  # notional = size/mark falls as mark rises
                lo_m, hi_m = float((size / hi).max()), float((size / lo).min())
        self.safe = (lo_m * (1.0 + _SAFE_EPS), hi_m * (1.0 - _SAFE_EPS))

    def flat_index(self, stride: int, rows: tuple[int, ...]) -> I64:
        """Indices into an account table flattened as ``row·stride + account``: block row ``j``
        goes to table row ``rows[j]`` (cached until the next structural change)."""
        key = (stride, rows)
        idx = self._flat_index.get(key)
        if idx is None:
            acc = self.account[: self.n]
            idx = np.concatenate([acc + row * stride for row in rows])
            self._flat_index[key] = idx
        return idx

    def row_figures(self, r: int) -> tuple[float, float, float, float]:
        """(notional, upnl, mm, im) of one row."""
        return (
            self.notional.item(r),
            self.upnl.item(r),
            self.mm.item(r),
            self.im.item(r),
        )

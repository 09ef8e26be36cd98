"""Tiered maintenance margin: one :class:`TierTable` per symbol.

Two families share the table type:

* **Deduction tiers** ("tax brackets"): Binance USDⓈ-M ``cum``, Binance COIN-M (in coin),
  Bybit v5 ``mmDeduction``, Hyperliquid ``maintenance_deduction``. ``MM = notional·mmr − deduction``
  of the tier holding the notional; the deduction follows the recurrence
  ``d_n = floor_n·(mmr_n − mmr_{n−1}) + d_{n−1}``, ``d_1 = 0``, which makes MM continuous.
* **No-deduction tiers** (OKX, ``deduction=False``): the whole notional at its tier's rate, so MM
  jumps at every tier floor.

Lookup is lower-bound inclusive (Binance's and freqtrade's rule). A notional at or above the last
tier's cap keeps the last tier: the last cap is treated as +inf, because a venue never stops
charging margin and the last tier's rate is the best available figure.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from rules.errors import TierTableError
from rules.types import Piece

# Published deductions are exact decimals, recomputed in float64 they differ by ulps; anything
# beyond this relative tolerance (of the tier's floor·mmr) is a genuinely inconsistent table.
DEDUCTION_REL_TOL = 1e-9
DEDUCTION_ABS_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class TierSpec:
    """One tier as published: ``[floor, cap)`` of notional, its rate and deduction.

    ``deduction=None`` derives it from the recurrence; a given deduction is checked against it.
    ``max_leverage`` gives the tier's initial margin rate ``1/max_leverage``.
    """

    floor: float
    cap: float
    mmr: float
    deduction: float | None = None
    max_leverage: float | None = None


class TierTable:
    """A validated tier table of one symbol; implements :class:`rules.model.MarginModel`."""

    __slots__ = ("_floors", "_pieces", "has_deduction", "symbol")

    def __init__(self, symbol: str, pieces: tuple[Piece, ...], *, has_deduction: bool) -> None:
        # Use from_tiers(): this constructor trusts that pieces are validated and contiguous.
        self.symbol = symbol
        self.has_deduction = has_deduction
        self._pieces = pieces
        self._floors = tuple(p.lo for p in pieces)

    @classmethod
    def from_tiers(
        cls, symbol: str, tiers: Sequence[TierSpec], *, deduction: bool = True
    ) -> TierTable:
        """Validate ``tiers`` (sorted, contiguous from 0, consistent deductions); build the table.

        Raises :class:`TierTableError` naming the symbol and the 1-based tier number.
        """
        if not tiers:
            raise TierTableError(f"{symbol}: tier table is empty")
        pieces: list[Piece] = []
        prev_mmr = 0.0
        prev_ded = 0.0
        for n, t in enumerate(tiers, start=1):
            where = f"{symbol}: tier {n}"
            for name, value in (("floor", t.floor), ("mmr", t.mmr)):
                if not math.isfinite(value):
                    raise TierTableError(f"{where}: {name} must be finite")
            if math.isnan(t.cap) or (math.isinf(t.cap) and n < len(tiers)):
                raise TierTableError(f"{where}: cap must be finite (only the last may be open)")
            if n == 1 and t.floor != 0.0:
                raise TierTableError(f"{where}: floor must be 0, got {t.floor:g}")
            if n > 1:
                prev_cap = tiers[n - 2].cap
                if not math.isclose(t.floor, prev_cap, rel_tol=1e-12, abs_tol=0.0):
                    what = "gap" if t.floor > prev_cap else "overlap"
                    raise TierTableError(
                        f"{where}: floor {t.floor:g} != previous cap {prev_cap:g} ({what})"
                    )
            if not t.cap > t.floor:
                raise TierTableError(f"{where}: cap {t.cap:g} must be > floor {t.floor:g}")
            if not 0.0 < t.mmr <= 1.0:
                raise TierTableError(f"{where}: mmr {t.mmr:g} must be in (0, 1]")
            if t.max_leverage is None:
                raise TierTableError(f"{where}: max_leverage is missing")
            if not (math.isfinite(t.max_leverage) and t.max_leverage >= 1.0):
                raise TierTableError(f"{where}: max_leverage {t.max_leverage:g} must be >= 1")
            if deduction:
                expected = 0.0 if n == 1 else t.floor * (t.mmr - prev_mmr) + prev_ded
                ded = expected if t.deduction is None else t.deduction
                tol = DEDUCTION_REL_TOL * t.floor * t.mmr + DEDUCTION_ABS_TOL
                if not math.isfinite(ded) or abs(ded - expected) > tol:
                    raise TierTableError(
                        f"{where}: deduction {ded:g} inconsistent with the recurrence "
                        f"(expected {expected:.10g})"
                    )
            else:
                if t.deduction not in (None, 0.0):
                    raise TierTableError(f"{where}: deduction must be absent or 0 for this venue")
                ded = 0.0
            pieces.append(Piece(t.floor, t.cap, t.mmr, ded, 1.0 / t.max_leverage))
            prev_mmr, prev_ded = t.mmr, ded
        last = pieces[-1]
        pieces[-1] = Piece(last.lo, math.inf, last.mm_rate, last.mm_deduction, last.im_rate)
        return cls(symbol, tuple(pieces), has_deduction=deduction)

    # --- MarginModel -------------------------------------------------------------------------

    def piece(self, notional: float, size: float = 0.0) -> Piece:
        i = bisect.bisect_right(self._floors, notional) - 1
        return self._pieces[i if i > 0 else 0]

    def maintenance(self, notional: float, size: float = 0.0) -> float:
        return self.piece(notional, size).mm(notional)

    def initial(self, notional: float, size: float, leverage: float | None) -> float:
        if leverage is not None:
            return notional / leverage
        return notional * self.piece(notional, size).im_rate

    @property
    def rounding_quantum(self) -> float:
        return 0.0

    # --- inspection --------------------------------------------------------------------------

    @property
    def pieces(self) -> tuple[Piece, ...]:
        """The tiers as pieces, the last one open-ended (``hi = inf``)."""
        return self._pieces

    def __repr__(self) -> str:
        kind = "deduction" if self.has_deduction else "no-deduction"
        return f"TierTable({self.symbol!r}, {len(self._pieces)} {kind} tiers)"


def hyperliquid_table(symbol: str, tiers: Sequence[tuple[float, float]]) -> TierTable:
    """Hyperliquid margin table from ``[(lower_bound, max_leverage), ...]``.

    ``mmr = 1/(2·max_leverage)`` and deductions by the recurrence (Hyperliquid "Margin tiers").
    The last tier is open-ended.
    """
    specs: list[TierSpec] = []
    for n, (floor, max_lev) in enumerate(tiers):
        if not (math.isfinite(max_lev) and max_lev >= 1.0):
            raise TierTableError(f"{symbol}: tier {n + 1}: max_leverage {max_lev:g} must be >= 1")
        cap = tiers[n + 1][0] if n + 1 < len(tiers) else math.inf
        specs.append(TierSpec(floor, cap, 1.0 / (2.0 * max_lev), None, max_lev))
    return TierTable.from_tiers(symbol, specs)

"""dYdX v4 margin: IMF × MF with open-interest scaling of the IMF and rounding up.

From ``dydxprotocol/v4-chain`` (``liquidity_tier.go``, ``perpetuals/lib/lib.go``):

* ``EffectiveIMF = min(IMF + max(scaling·(1 − IMF), 0), 1)`` with
  ``scaling = (open_notional − lower_cap)/(upper_cap − lower_cap)``; none when ``upper_cap == 0``
  or ``open_notional <= lower_cap``; 100% at or above ``upper_cap``. Integer ppm, floored.
* ``IM = ceil(|notional|·EffectiveIMF)``, ``MM = ceil(ceil(|notional|·IMF_base)·MF)``: maintenance
  uses the *base* IMF, never the OI-scaled one.

The chain counts USDC in quote quantums (6 decimals), so here every amount is in USD and rounds up
to ``QUANTUM = 1e-6``. ``open_interest`` and the caps are taken as open *notional* in USD
(OI × oracle price) at the time of the snapshot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from rules.errors import ModelInputError
from rules.types import WHOLE_LINE_HI, Piece

QUANTUM = 1e-6
PPM = 1_000_000
# A product that lands within this relative distance of a whole quantum is that quantum: float
# noise (0.3/1e-6 = 299999.99999999994) must not round a dYdX integer up by one.
_SNAP_REL = 1e-9


def _ppm(name: str, fraction: float) -> int:
    if not (math.isfinite(fraction) and 0.0 < fraction <= 1.0):
        raise ModelInputError(f"{name}: must be in (0, 1], got {fraction!r}")
    return round(fraction * PPM)


def ceil_quantums(x: float) -> float:
    """``ceil(x)`` for a non-negative count of quantums, immune to float noise at integers."""
    r = round(x)
    if abs(x - r) <= _SNAP_REL * max(1.0, abs(x)):
        return float(r)
    return float(math.ceil(x))


def adjusted_imf_ppm(imf_ppm: int, lower_cap: float, upper_cap: float, open_notional: float) -> int:
    """``GetAdjustedInitialMarginPpm``: the OI-scaled IMF in ppm (exact rational arithmetic)."""
    if upper_cap == 0.0 or open_notional <= lower_cap:
        return imf_ppm
    if open_notional >= upper_cap:
        return PPM
    scaling = (Fraction(open_notional) - Fraction(lower_cap)) / (
        Fraction(upper_cap) - Fraction(lower_cap)
    )
    adjusted = imf_ppm + scaling * (PPM - imf_ppm)
    return min(math.floor(adjusted), PPM)


@dataclass(frozen=True, slots=True)
class ImfMfModel:
    """Implements :class:`rules.model.MarginModel` for one dYdX v4 perpetual (USD notional)."""

    imf: float
    mf: float
    oi_lower_cap: float = 0.0
    oi_upper_cap: float = 0.0
    open_interest: float = 0.0
    imf_ppm: int = field(init=False)
    mf_ppm: int = field(init=False)
    effective_imf_ppm: int = field(init=False)

    def __post_init__(self) -> None:
        for name in ("oi_lower_cap", "oi_upper_cap", "open_interest"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ModelInputError(f"{name}: must be a finite number >= 0, got {value!r}")
        if self.oi_upper_cap != 0.0 and self.oi_upper_cap <= self.oi_lower_cap:
            raise ModelInputError("oi_upper_cap: must be > oi_lower_cap (or 0 for no scaling)")
        imf_ppm = _ppm("imf", self.imf)
        object.__setattr__(self, "imf_ppm", imf_ppm)
        object.__setattr__(self, "mf_ppm", _ppm("mf", self.mf))
        eff = adjusted_imf_ppm(imf_ppm, self.oi_lower_cap, self.oi_upper_cap, self.open_interest)
        object.__setattr__(self, "effective_imf_ppm", eff)

    @property
    def mmf_ppm(self) -> int:
        """``GetMaintenanceMarginPpm``: IMF × MF in ppm."""
        return self.imf_ppm * self.mf_ppm // PPM

    def piece(self, notional: float, size: float) -> Piece:
        # The unrounded line; maintenance() adds at most two quanta of rounding on top.
        mm_rate = self.imf_ppm * self.mf_ppm / (PPM * PPM)
        return Piece(0.0, WHOLE_LINE_HI, mm_rate, 0.0, self.effective_imf_ppm / PPM)

    def maintenance(self, notional: float, size: float) -> float:
        q = notional / QUANTUM
        base_im = ceil_quantums(q * self.imf_ppm / PPM)
        return ceil_quantums(base_im * self.mf_ppm / PPM) * QUANTUM

    def initial(self, notional: float, size: float, leverage: float | None) -> float:
        if leverage is not None:
            return notional / leverage
        return ceil_quantums(notional / QUANTUM * self.effective_imf_ppm / PPM) * QUANTUM

    @property
    def rounding_quantum(self) -> float:
        return QUANTUM

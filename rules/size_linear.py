"""Deribit standard margin for linear perpetuals: rates linear in position size.

support.deribit.com "Linear Perpetual": ``MM% = mm_base + size·k`` and ``IM% = im_base + size·k``
with ``size`` the absolute position in coin (BTC_USDC: 1% / 2% + size·0.005%). MM is therefore
quadratic in size but, for a fixed position, linear in price: one piece over the whole line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rules.errors import ModelInputError
from rules.types import WHOLE_LINE_HI, Piece


@dataclass(frozen=True, slots=True)
class SizeLinearModel:
    """Implements :class:`rules.model.MarginModel`; ``size`` is ``|qty|·contract_size`` in coin."""

    mm_base: float
    im_base: float
    k: float

    def __post_init__(self) -> None:
        for name in ("mm_base", "im_base", "k"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ModelInputError(f"{name}: must be a finite number >= 0, got {value!r}")
        if self.mm_base == 0.0 and self.k == 0.0:
            raise ModelInputError("mm_base: must be > 0 (or k > 0)")

    def mm_rate(self, size: float) -> float:
        return self.mm_base + size * self.k

    def im_rate(self, size: float) -> float:
        return self.im_base + size * self.k

    def piece(self, notional: float, size: float) -> Piece:
        return Piece(0.0, WHOLE_LINE_HI, self.mm_rate(size), 0.0, self.im_rate(size))

    def maintenance(self, notional: float, size: float) -> float:
        return notional * self.mm_rate(size)

    def initial(self, notional: float, size: float, leverage: float | None) -> float:
        if leverage is not None:
            return notional / leverage
        return notional * self.im_rate(size)

    @property
    def rounding_quantum(self) -> float:
        return 0.0

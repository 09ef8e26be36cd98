"""The per-instrument margin model protocol every venue's rules implement.

The state store calls these per position and per tick, so they take plain floats and return
plain floats or a cached :class:`~rules.types.Piece`; no account-wide work happens here.
"""

from __future__ import annotations

from typing import Protocol

from rules.types import Piece


class MarginModel(Protocol):
    """Maintenance and initial margin of one position of one instrument.

    ``notional`` is the absolute notional at the price being evaluated (see
    :mod:`rules.types`); ``size`` is ``|qty|·contract_size`` — the absolute position size in the
    contract's unit, constant while only the price moves (Deribit's rate depends on it).
    """

    def piece(self, notional: float, size: float) -> Piece:
        """The linear piece of the MM function holding at ``notional`` (lower bound inclusive)."""
        ...

    def maintenance(self, notional: float, size: float) -> float:
        """Exact maintenance margin, including any venue rounding (dYdX rounds up to 1e-6)."""
        ...

    def initial(self, notional: float, size: float, leverage: float | None) -> float:
        """Initial margin: ``notional / leverage`` with a user leverage, else the model's rate."""
        ...

    @property
    def rounding_quantum(self) -> float:
        """0.0 when ``maintenance == piece.mm(notional)`` exactly; else MM's rounding quantum."""
        ...

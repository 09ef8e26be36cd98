"""Small value types shared by every margin model, the state store and the connectors.

Conventions (used everywhere in the engine):

* ``qty`` is the signed number of contracts (negative = short). ``contract_size`` converts
  contracts to the unit of the contract: base currency for linear contracts (e.g. 0.01 BTC for
  OKX ``ctVal``; 1 for Binance USDⓈ-M), USD for inverse contracts (e.g. 100 USD for BTCUSD).
* Linear: ``notional = |qty|·contract_size·mark`` (quote currency, usually USD[T]);
  ``upnl = qty·contract_size·(mark − entry)``.
* Inverse: ``notional = |qty|·contract_size/mark`` (coin);
  ``upnl = qty·contract_size·(1/entry − 1/mark)``.
* Every margin model is piecewise ``mm = notional·mm_rate − mm_deduction`` on pieces of notional
  (a tier, or the whole line for size-linear models). :class:`Piece` carries one such piece so the
  store can cache it per position and only re-look it up when the notional leaves ``[lo, hi)``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class ContractKind(enum.Enum):
    LINEAR = "linear"
    INVERSE = "inverse"


class Side(enum.Enum):
    """Position side as the venue books it: one-way (BOTH) or a hedge-mode leg."""

    BOTH = "both"
    LONG = "long"
    SHORT = "short"


class MarginMode(enum.Enum):
    CROSS = "cross"
    ISOLATED = "isolated"


@dataclass(frozen=True, slots=True)
class Piece:
    """One linear piece of a position's margin function of notional, valid on ``[lo, hi)``."""

    lo: float
    hi: float
    mm_rate: float
    mm_deduction: float
    im_rate: float

    def mm(self, notional: float) -> float:
        return notional * self.mm_rate - self.mm_deduction

    def contains(self, notional: float) -> bool:
        return self.lo <= notional < self.hi


WHOLE_LINE_HI = math.inf


def notional_of(kind: ContractKind, qty: float, contract_size: float, price: float) -> float:
    """Absolute notional at ``price`` (quote for linear, coin for inverse)."""
    if kind is ContractKind.LINEAR:
        return abs(qty) * contract_size * price
    return abs(qty) * contract_size / price


def upnl_of(
    kind: ContractKind, qty: float, contract_size: float, entry: float, price: float
) -> float:
    """Unrealised PnL at ``price`` in the settlement unit (quote for linear, coin for inverse)."""
    if kind is ContractKind.LINEAR:
        return qty * contract_size * (price - entry)
    if entry == 0.0:
        return 0.0
    return qty * contract_size * (1.0 / entry - 1.0 / price)

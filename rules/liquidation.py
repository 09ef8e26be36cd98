"""Liquidation prices and distance to liquidation, solved exactly across tier boundaries.

Both questions scale some marks by a factor ``w`` and ask where ``equity − MM`` reaches 0:

* **Liquidation price** of a cross position: only that symbol's marks move (all its legs
  together: in cross mode the long and short of a symbol share one liquidation price, Binance
  FAQ), every other position and all collateral stay at their marks. An isolated position has
  its own ``isolated_margin + upnl`` against its own MM.
* **Liquidation distance**: every cross mark, and the price of every non-stablecoin collateral
  asset in multi-assets mode, moves by the same ``(1 + s)``; ``w = 1 + s``.

Every leg is linear in ``w`` (linear contracts) or in ``1/w`` (inverse), piecewise between the
``w`` where its notional crosses a tier floor, so each segment is solved in closed form by
:mod:`rules.roots`; the tier in force at the solution decides, as Binance's FAQ requires.
Pieces are the models' unrounded lines, so with dYdX's round-up the solution can sit up to two
quanta (2e-6 USD) of MM away from the rounded figure.

The venue-published closed forms for isolated positions (Bybit, OKX, Hyperliquid) are kept as
small separate functions: they reproduce the venues' own figures, fees included.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from rules.account import (
    STABLECOINS,
    AccountInput,
    PositionInput,
    asset_price,
    collateral_value,
    position_figures,
)
from rules.errors import ModelInputError
from rules.model import MarginModel
from rules.roots import Coeffs, f_at, first_nonpositive
from rules.tiers import TierTable
from rules.types import ContractKind, MarginMode, Side

# Guard for a model whose pieces never reach +inf (a bug): tables are a dozen tiers at most.
_MAX_PIECES = 10_000
# Upward search cap for the distance: +1000%.
DISTANCE_UP_CAP = 10.0
# A "root" closer to price 0 than this fraction of the mark is float noise of an equity that
# reaches exactly 0 at price 0 (balance == qty·entry): no positive liquidation price exists.
MIN_SCALE = 1e-9


def _piece_floors(model: MarginModel, size: float) -> Iterator[float]:
    """Finite notional floors where ``model``'s piece changes (every tier floor above 0)."""
    piece = model.piece(0.0, size)
    for _ in range(_MAX_PIECES):
        if math.isinf(piece.hi):
            return
        yield piece.hi
        nxt = model.piece(piece.hi, size)
        if nxt.lo < piece.hi:
            raise ModelInputError("margin model pieces do not advance")
        piece = nxt
    raise ModelInputError("margin model has too many pieces")


def _leg_breakpoints(p: PositionInput, price_scale: float) -> Iterator[float]:
    """The ``w`` at which ``p``'s notional, with its mark scaled by ``w``, crosses a tier floor."""
    a = p.size
    if a == 0.0:
        return
    mark = p.mark_price * price_scale
    for floor in _piece_floors(p.model, a):
        if floor <= 0.0:
            continue
        yield floor / (a * mark) if p.kind is ContractKind.LINEAR else a / (mark * floor)


def _add_leg(acc: list[float], p: PositionInput, w: float) -> None:
    """Add ``upnl − MM`` of ``p`` with its mark scaled by ``w`` to ``acc = [α, β, γ]``."""
    a = p.size
    if a == 0.0:
        return
    signed = p.qty * p.contract_size
    mark = p.mark_price
    if p.kind is ContractKind.LINEAR:
        piece = p.model.piece(a * mark * w, a)
        acc[0] += signed * mark - a * mark * piece.mm_rate
        acc[1] += -signed * p.entry_price + piece.mm_deduction
    else:
        piece = p.model.piece(a / (mark * w), a)
        acc[2] += -signed / mark - a * piece.mm_rate / mark
        acc[1] += (signed / p.entry_price if p.entry_price != 0.0 else 0.0) + piece.mm_deduction


class _LegTerms:
    """One leg's ``_add_leg`` terms, cached while ``w`` stays inside the leg's current piece.

    A root search evaluates the coefficients once per segment between breakpoints — dozens of
    segments times every leg. For a :class:`~rules.tiers.TierTable` (lower-inclusive contiguous
    tiers: ``piece(x)`` is the tier whose ``[lo, hi)`` holds ``x``) the piece, and so the terms,
    only change when the notional leaves ``[lo, hi)``; they are the very floats ``_add_leg``
    computes, added in the same order, so the coefficients are bit-identical to it.
    """

    __slots__ = ("a", "am", "hi", "linear", "lo", "mark", "model", "p", "t0", "t1", "tiered")

    def __init__(self, p: PositionInput) -> None:
        self.p = p
        self.a = p.size
        self.mark = p.mark_price
        self.am = self.a * self.mark
        self.linear = p.kind is ContractKind.LINEAR
        self.model = p.model
        self.tiered = isinstance(p.model, TierTable)
        self.lo, self.hi = math.inf, -math.inf  # empty: the first call looks the piece up
        self.t0 = self.t1 = 0.0

    def add(self, acc: list[float], w: float) -> None:
        x = self.am * w if self.linear else self.a / (self.mark * w)
        if not (self.tiered and self.lo <= x < self.hi):
            piece = self.model.piece(x, self.a)
            self.lo, self.hi = piece.lo, piece.hi
            p = self.p
            signed = p.qty * p.contract_size
            if self.linear:
                self.t0 = signed * self.mark - self.a * self.mark * piece.mm_rate
                self.t1 = -signed * p.entry_price + piece.mm_deduction
            else:
                self.t0 = -signed / self.mark - self.a * piece.mm_rate / self.mark
                entry_term = signed / p.entry_price if p.entry_price != 0.0 else 0.0
                self.t1 = entry_term + piece.mm_deduction
        if self.linear:
            acc[0] += self.t0
        else:
            acc[2] += self.t0
        acc[1] += self.t1


def _nearest_crossing(
    base: float, legs: Sequence[PositionInput], fixed_alpha: float = 0.0
) -> float | None:
    """Scale factor ``w`` nearest 1 where ``base + Σ legs(w) = 0`` (equity meets MM), or None."""
    legs = [p for p in legs if p.size > 0.0]
    if not legs:
        return None
    terms = [_LegTerms(p) for p in legs]

    def coeffs(w: float) -> Coeffs:
        acc = [fixed_alpha, base, 0.0]
        for t in terms:
            t.add(acc, w)
        return acc[0], acc[1], acc[2]

    def negated(w: float) -> Coeffs:
        a, b, c = coeffs(w)
        return -a, -b, -c

    breaks = [w for p in legs for w in _leg_breakpoints(p, 1.0)]
    f1 = f_at(coeffs(1.0), 1.0)
    if f1 == 0.0:
        return 1.0
    # Already liquidatable: the nearest price at which equity climbs back to MM.
    fn = coeffs if f1 > 0.0 else negated
    found = [
        w
        for w in (
            first_nonpositive(fn, breaks, 1.0, 0.0),
            first_nonpositive(fn, breaks, 1.0, math.inf),
        )
        if w is not None and w > MIN_SCALE
    ]
    if not found:
        return None
    return min(found, key=lambda w: abs(math.log(w)))


def _cross_base_excluding(a: AccountInput, symbol: str) -> float:
    """Collateral + Σ (uPnL − MM) of every cross position not on ``symbol``, at marks."""
    terms = [collateral_value(a)]
    for p in a.positions:
        if p.margin_mode is MarginMode.CROSS and p.symbol != symbol:
            f = position_figures(p)
            terms.append(f.upnl - f.maintenance_margin)
    return math.fsum(terms)


def liquidation_prices(a: AccountInput) -> list[float | None]:
    """Liquidation price of every position, in input order; None where no positive price exists.

    Cross positions share one price per symbol (all legs of that symbol move together). If
    equity − MM is positive at the marks, the nearest price (either direction) where it reaches
    0; if the account is already liquidatable, the nearest price where it climbs back to 0.
    """
    by_symbol: dict[str, float | None] = {}
    out: list[float | None] = []
    for p in a.positions:
        if p.margin_mode is MarginMode.ISOLATED:
            if p.isolated_margin is None:
                raise ModelInputError(f"{p.symbol}: isolated position needs isolated_margin")
            w = _nearest_crossing(p.isolated_margin, [p])
        else:
            if p.symbol not in by_symbol:
                legs = [
                    q
                    for q in a.positions
                    if q.symbol == p.symbol and q.margin_mode is MarginMode.CROSS
                ]
                by_symbol[p.symbol] = _nearest_crossing(_cross_base_excluding(a, p.symbol), legs)
            w = by_symbol[p.symbol]
        out.append(None if w is None or p.size == 0.0 else p.mark_price * w)
    return out


def _collateral_split(a: AccountInput) -> tuple[float, float]:
    """Collateral value as ``α·w + β``: non-stable assets move with ``w`` in multi-assets mode."""
    if not a.multi_asset:
        return 0.0, collateral_value(a)
    moving: list[float] = []
    fixed: list[float] = []
    for asset, bal in a.balances.items():
        ratio = a.collateral_ratios.get(asset, 1.0) if bal > 0.0 else 1.0
        value = bal * asset_price(a, asset) * ratio
        (fixed if asset in STABLECOINS else moving).append(value)
    return math.fsum(moving), math.fsum(fixed)


def liquidation_distance(a: AccountInput) -> tuple[float | None, float | None]:
    """Smallest uniform relative move of all marks, ``(down, up)`` as positive fractions.

    ``down`` searches ``s`` in (−1, 0], ``up`` in [0, +10]; None where no move in that range
    brings equity to MM. Both are 0.0 when equity <= MM already.
    """
    legs = [p for p in a.positions if p.margin_mode is MarginMode.CROSS and p.size > 0.0]
    alpha0, beta0 = _collateral_split(a)
    terms = [_LegTerms(p) for p in legs]

    def coeffs(w: float) -> Coeffs:
        acc = [alpha0, beta0, 0.0]
        for t in terms:
            t.add(acc, w)
        return acc[0], acc[1], acc[2]

    if f_at(coeffs(1.0), 1.0) <= 0.0:
        return 0.0, 0.0
    breaks = [w for p in legs for w in _leg_breakpoints(p, 1.0)]
    w_down = first_nonpositive(coeffs, breaks, 1.0, 0.0)
    w_up = first_nonpositive(coeffs, breaks, 1.0, 1.0 + DISTANCE_UP_CAP)
    down = None if w_down is None or w_down <= MIN_SCALE else 1.0 - w_down
    up = None if w_up is None else w_up - 1.0
    return down, up


# --- venue closed forms for isolated positions ------------------------------------------------


def _sign(side: Side) -> float:
    if side is Side.BOTH:
        raise ModelInputError("side: must be long or short for a venue formula")
    return 1.0 if side is Side.LONG else -1.0


def bybit_isolated_liq_price(side: Side, entry: float, leverage: float, mmr: float) -> float:
    """Bybit isolated (help 000001067, as freqtrade): ``EP·(1 ∓ 1/lev ± mmr)``; no extra margin."""
    s = _sign(side)
    return entry * (1.0 - s / leverage + s * mmr)


def okx_isolated_liq_price(
    side: Side, entry: float, qty: float, wallet_balance: float, *, mmr: float, taker_fee: float
) -> float:
    """OKX isolated: ``(EP ∓ WB/qty) / (1 ∓ (mmr + fee))`` (freqtrade's dry-run formula)."""
    s = _sign(side)
    return (entry - s * wallet_balance / qty) / (1.0 - s * (mmr + taker_fee))


def hyperliquid_liq_price(
    side: Side, price: float, size: float, margin_available: float, max_leverage: float
) -> float:
    """Hyperliquid: ``price − side·margin_available/size/(1 − l·side)``, ``l = 1/(2·max_lev)``.

    ``margin_available`` is ``isolated_margin − MM`` (isolated) or ``account_value − MM`` (cross).
    """
    s = _sign(side)
    maint = 1.0 / (2.0 * max_leverage)
    return price - s * margin_available / size / (1.0 - maint * s)

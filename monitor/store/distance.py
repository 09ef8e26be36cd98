"""A tighter, sound screen for "the liquidation distance may be under its threshold".

The store's first screen (:meth:`StoreViews.distance_maybe_near`) bounds how fast equity − MM
can fall under a uniform move by ``DIST_SLOPE·(G + NC)``: three times the gross, which flags
most accounts of a hedged book after any jump. This second screen runs only on accounts the
first could not clear, on their legs, and is still a proof.

Claim. Let every cross leg be linear with a :class:`~rules.tiers.TierTable` or
:class:`~rules.size_linear.SizeLinearModel` model (else: not cleared). Scale every cross mark, and
the price of every non-stablecoin collateral asset, by ``w`` with ``|w − 1| <= T``. Then

    f(w) − f(1) >= −T·(|N| + Σ R_i·x_i + M) − Σ J_i

where ``f = equity − MM``, ``x_i`` is leg ``i``'s notional at the marks, ``N = Σ qcs_i·mark_i``
its signed net exposure, ``R_i`` the largest MM rate of its model's pieces, ``J_i`` the sum of
the jumps of its MM line at its tier floors, and ``M = Σ |value|`` of the moving collateral.

Proof. uPnL of a linear leg is ``qcs·(mark·w − entry)``: the sum moves by exactly
``(w − 1)·N``. A leg's MM is, as a function of its notional ``x·w``, piecewise linear with slopes
``<= R_i`` and jumps only at floors (none for tables with deductions, whose lines meet; OKX's
jump), so it moves by at most ``R_i·x_i·|w − 1| + J_i``. Moving collateral is ``α·w + β``
(:func:`rules.liquidation._collateral_split`) with ``|α| <= M``. ∎

So if ``f(1) − T·(|N| + ΣR·x + M) − ΣJ`` is positive (after a margin of 1e-9 of every
magnitude involved, far above the rounding of these sums and of the rules' own coefficient
sums), ``f(w) > 0`` on the whole ``[1 − T, 1 + T]``: :func:`rules.liquidation.liquidation_distance`
finds no crossing nearer than ``T`` either way, and a distance alert cannot be raised.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

from monitor.store.state import AccountState
from rules.account import STABLECOINS
from rules.model import MarginModel
from rules.size_linear import SizeLinearModel
from rules.tiers import TierTable
from rules.types import ContractKind

_MARGIN = 1e-9
_bounds: dict[int, tuple[TierTable, float, float]] = {}  # id -> (table kept alive, R, J)


def mm_bounds(model: MarginModel | None, size: float) -> tuple[float, float] | None:
    """``(R, J)``: the largest MM rate and the sum of MM jumps at floors; None if unknown."""
    if isinstance(model, SizeLinearModel):
        return model.mm_rate(size), 0.0  # one line through 0
    if not isinstance(model, TierTable) or model.rounding_quantum != 0.0:
        return None
    hit = _bounds.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1], hit[2]
    pieces = model.pieces
    rate = max(p.mm_rate for p in pieces)
    jumps = 0.0
    for p, q in itertools.pairwise(pieces):
        floor = q.lo
        # The jump as float lines compute it, plus their rounding at that floor.
        jumps += abs(p.mm(floor) - q.mm(floor)) + 1e-12 * (floor * rate + abs(p.mm_deduction))
    _bounds[id(model)] = (model, rate, jumps)
    return rate, jumps


def clear_of_threshold(
    st: AccountState, coll: float, prices: Mapping[str, float], threshold: float
) -> bool:
    """True proves the liquidation distance is at least ``threshold`` both ways (see above)."""
    if not (0.0 < threshold < 1.0) or not math.isfinite(coll):
        return False
    terms: list[float] = [coll]  # equity − MM terms
    net: list[float] = []
    slope: list[float] = []
    mags: list[float] = [abs(coll)]
    jumps = 0.0
    for leg in st.legs.values():
        r = leg.row
        if r < 0:
            return False
        if not leg.cross:
            continue
        book = leg.book
        if book.kind is not ContractKind.LINEAR or book.mark is None:
            return False
        x = book.notional.item(r)
        bounds = mm_bounds(leg.model, book.size.item(r))
        if bounds is None:
            return False
        upnl, mm = book.upnl.item(r), book.mm.item(r)
        terms.append(upnl)
        terms.append(-mm)
        net.append(book.qcs.item(r) * book.mark)
        slope.append(bounds[0] * x)
        jumps += bounds[1]
        mags.append(abs(upnl) + abs(mm) + x)
    moving = 0.0
    if st.multi_asset:
        for asset, bal in st.balances.items():
            if asset in STABLECOINS:
                continue
            price = prices.get(asset)
            if price is None:
                return False
            ratio = st.collateral_ratios.get(asset, 1.0) if bal > 0.0 else 1.0
            moving += abs(bal * price) * max(1.0, abs(ratio))
    f1 = math.fsum(terms)
    fall = threshold * (abs(math.fsum(net)) + math.fsum(slope) + moving) * (1.0 + _MARGIN)
    return f1 - fall - jumps * (1.0 + _MARGIN) > _MARGIN * (math.fsum(mags) + moving)

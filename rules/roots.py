"""Exact first-crossing search for piecewise ``f(w) = α·w + β + γ/w``.

Scaling a set of marks by ``w`` makes every margin function piecewise of this shape: linear
contracts contribute to ``α`` (notional ∝ w), inverse contracts to ``γ`` (notional ∝ 1/w), the
rest (balances, entry terms, deductions) to ``β``. Between two tier breakpoints the coefficients
are constant, so ``f(w) = 0`` is the quadratic ``α·w² + β·w + γ = 0``: solved in closed form, then
polished by Newton steps, with bisection as the fallback when float noise puts a root a hair
outside its segment. Discontinuities (OKX tiers have no deduction) are handled by checking each
segment's start from inside the segment.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable

Coeffs = tuple[float, float, float]
CoeffsAt = Callable[[float], Coeffs]

_BISECT_STEPS = 200


def f_at(c: Coeffs, w: float) -> float:
    alpha, beta, gamma = c
    return alpha * w + beta + gamma / w


def _quadratic_roots(c: Coeffs) -> list[float]:
    """Positive real roots of ``α·w² + β·w + γ`` (numerically stable form)."""
    alpha, beta, gamma = c
    if alpha == 0.0:
        if beta == 0.0:
            return []
        roots = [-gamma / beta]
    else:
        disc = beta * beta - 4.0 * alpha * gamma
        if disc < 0.0:
            # A tangent touch can come out a few ulps negative; treat it as a double root.
            if disc > -1e-12 * beta * beta:
                disc = 0.0
            else:
                return []
        q = -0.5 * (beta + math.copysign(math.sqrt(disc), beta))
        roots = [q / alpha]
        if q != 0.0:
            roots.append(gamma / q)
    return [r for r in roots if r > 0.0 and math.isfinite(r)]


def _polish(c: Coeffs, w: float, lo: float, hi: float) -> float:
    alpha, _, gamma = c
    for _ in range(3):
        d = alpha - gamma / (w * w)
        if d == 0.0:
            break
        nxt = w - f_at(c, w) / d
        if not (lo <= nxt <= hi) or nxt == w:
            break
        w = nxt
    return w


def _bisect(c: Coeffs, a: float, b: float) -> float:
    """Crossing of ``f`` from > 0 at ``a`` to <= 0 at ``b`` (either order)."""
    for _ in range(_BISECT_STEPS):
        m = 0.5 * (a + b)
        if m in (a, b):
            break
        if f_at(c, m) > 0.0:
            a = m
        else:
            b = m
    return b


def _representative(a: float, b: float) -> float:
    """A point strictly inside the segment between ``a`` and ``b`` (``b`` may be 0 or inf)."""
    if math.isinf(b):
        return 2.0 * a + 1.0
    return 0.5 * (a + b)


def first_nonpositive(
    coeffs_at: CoeffsAt, breakpoints: Iterable[float], start: float, end: float
) -> float | None:
    """The first ``w`` from ``start`` toward ``end`` where ``f(w) <= 0``, or None.

    ``coeffs_at(w)`` gives the coefficients valid on the open segment containing ``w``;
    ``breakpoints`` are where they may change. ``end`` is excluded when it is 0 or inf.
    """
    up = end > start
    inner = sorted(
        {b for b in breakpoints if (start < b < end if up else end < b < start)},
        reverse=not up,
    )
    bounds = [start, *inner, end]
    for a, b in itertools.pairwise(bounds):
        c = coeffs_at(_representative(a, b))
        if f_at(c, a) <= 0.0:
            return a
        lo, hi = (a, b) if up else (b, a)
        tol = 1e-12 * max(abs(lo), abs(hi) if math.isfinite(hi) else abs(lo))
        inside = [min(max(r, lo), hi) for r in _quadratic_roots(c) if lo - tol <= r <= hi + tol]
        inside = [r for r in inside if r > 0.0 and math.isfinite(r)]
        if inside:
            r = min(inside) if up else max(inside)
            return _polish(c, r, lo, hi)
        if math.isfinite(b) and b > 0.0 and f_at(c, b) <= 0.0:
            return _bisect(c, a, b)
    return None

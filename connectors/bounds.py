"""What a venue may tell us, in numbers: the edge's plausibility bounds, named once for all venues.

Every venue's wire schema (``connectors/<venue>/wire.py``) types its fields with the annotated
types below, so a value outside them is refused where the frame is decoded, per item, as
``bad_value`` (or the venue's own reason), and never reaches the store. A parser has no clock, so
event times are bounded by a fixed plausible window (2017-01-01 to 2100-01-01 UTC, in ms; every
venue we speak postdates 2017, and the window's end is far below 2^53, so a time is exact as a
float and fits every integer type downstream), not by "now". The other bounds are generous
beyond anything a venue lists (BTC is ~1e5, the largest contract count a few 1e10), and low
enough that sums and products of them stay finite in float64 (1e12 · 1e15 = 1e27).

Venues whose decimals arrive as strings and are converted by the parser (``sim``) check the
same bounds with the ``*_ok`` predicates, which say exactly what the annotated types say.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

EVENT_MS_MIN: Final = 1_483_228_800_000
"""2017-01-01T00:00:00Z in ms: no venue we speak sent an event before."""
EVENT_MS_END: Final = 4_102_444_800_000
"""2100-01-01T00:00:00Z in ms (exclusive): beyond it a time is garbage, not the future."""
PRICE_MIN: Final = 1e-12
"""Smallest plausible price or mark: far below any listed contract (venues rename a contract
``1000…`` long before its price gets near), far above the subnormal floats (5e-324) that,
divided into, overflow to inf in margin arithmetic."""
PRICE_MAX: Final = 1e12
"""Largest plausible price or mark (quote units per unit)."""
QTY_MIN: Final = 1e-12
"""Smallest plausible non-zero |quantity| (a quantity is 0 or at least this): the same reason."""
QTY_MAX: Final = 1e15
"""Largest plausible |quantity| of a position, fill or contract count."""
AMOUNT_MAX: Final = 1e15
"""Largest plausible |amount| of money: balances, uPnL, margins."""
LEVERAGE_MIN: Final = 1.0
LEVERAGE_MAX: Final = 1000.0
"""Leverage is in [1, 1000]: below 1 is not leverage (0 divides by zero downstream)."""
NAME_MAX: Final = 64
"""Longest symbol, asset or account name we take (Binance's longest symbol is ~20)."""

EventMs = Annotated[int, msgspec.Meta(ge=EVENT_MS_MIN, lt=EVENT_MS_END)]
"""An event time in ms inside the plausible window."""
Price = Annotated[float, msgspec.Meta(ge=PRICE_MIN, le=PRICE_MAX)]
"""A price or mark: finite, > 0 (NaN fails every comparison, so it fails here too)."""
PriceOrZero = Annotated[float, msgspec.Meta(ge=0.0, le=PRICE_MAX)]
"""A price a venue reports as 0 when there is none (a closed leg's entry, an unfilled order's
last price); the parser requires :func:`price_ok` where it reads one."""
Qty = Annotated[float, msgspec.Meta(ge=-QTY_MAX, le=QTY_MAX)]
"""A signed quantity (a constraint cannot say "0 or at least QTY_MIN": parsers check
:func:`qty_ok` too)."""
Size = Annotated[float, msgspec.Meta(ge=0.0, le=QTY_MAX)]
"""An unsigned quantity (a fill's size; parsers check :func:`qty_ok` too)."""
Amount = Annotated[float, msgspec.Meta(ge=-AMOUNT_MAX, le=AMOUNT_MAX)]
"""A signed amount of money."""
Margin = Annotated[float, msgspec.Meta(ge=0.0, le=AMOUNT_MAX)]
"""A margin requirement: never negative."""
Leverage = Annotated[float, msgspec.Meta(ge=LEVERAGE_MIN, le=LEVERAGE_MAX)]
"""A leverage setting."""
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX)]
"""A symbol, asset or account name: a non-empty string."""


def event_ms_ok(value: int) -> bool:
    return EVENT_MS_MIN <= value < EVENT_MS_END


def price_ok(value: float) -> bool:
    return PRICE_MIN <= value <= PRICE_MAX  # false for NaN


def qty_ok(value: float) -> bool:
    return value == 0.0 or QTY_MIN <= abs(value) <= QTY_MAX  # false for NaN


def amount_ok(value: float) -> bool:
    return -AMOUNT_MAX <= value <= AMOUNT_MAX


def leverage_ok(value: float) -> bool:
    return LEVERAGE_MIN <= value <= LEVERAGE_MAX


def name_ok(value: object) -> bool:
    return type(value) is str and 0 < len(value) <= NAME_MAX

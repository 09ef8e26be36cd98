"""Venue name → frame parser, so ``marginwatch decode`` and later venues plug in one way.

A parser takes one raw frame and returns domain events or raises
:class:`~connectors.errors.VenueDataError`. Entries are import paths resolved on first use, so
listing a venue costs nothing and a venue whose module is missing fails only when asked for.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

from connectors.events import Event

FrameParser = Callable[[bytes | str], list[Event]]

# venue -> (module, function, bind the venue label as the ``venue`` argument?)
_PARSERS: dict[str, tuple[str, str, bool]] = {
    "binance-usdm": ("connectors.binance.parse", "parse_any", True),
    "binance-coinm": ("connectors.binance.parse", "parse_any", True),
    "sim": ("connectors.sim.protocol", "parse", False),
}

DECODE_ACCOUNT = "decode"
"""Account label given to private events when frames are decoded outside a running feed."""


def venues() -> list[str]:
    return sorted(_PARSERS)


def frame_parser(venue: str) -> FrameParser:
    """The parser for ``venue``; ``KeyError`` for an unknown venue, ``ImportError`` if absent."""
    module_name, func_name, bind_venue = _PARSERS[venue]
    func = getattr(importlib.import_module(module_name), func_name)
    if bind_venue:
        return functools.partial(func, venue=venue)
    return func  # type: ignore[no-any-return]

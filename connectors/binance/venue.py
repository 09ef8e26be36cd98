"""Binance USDⓈ-M and COIN-M futures in the venue registry (:mod:`connectors.venues`)."""

from __future__ import annotations

import functools

from connectors.protocol import Feed
from connectors.venues import (
    FeedDefaults,
    FeedSettings,
    FrameParser,
    MarginRules,
    ModelFamily,
    VenueDescriptor,
)

# The mark stream pushes every second, so 15 s of silence means trouble; the user stream is
# quiet while nothing trades, so it is never "stale" (liveness comes from Binance's pings and
# the resync timer, which also heals drift every 5 minutes).
DEFAULTS = FeedDefaults(
    market_stale_after_s=15.0,
    market_resync_interval_s=300.0,
    account_stale_after_s=float("inf"),
    account_resync_interval_s=300.0,
)


def _parser(key: str) -> FrameParser:
    from connectors.binance.parse import parse_any  # noqa: PLC0415 - loaded when asked for

    return functools.partial(parse_any, venue=key)


def _feeds(settings: FeedSettings) -> list[Feed]:
    from connectors.binance.feeds import build_feeds  # noqa: PLC0415 - websockets only when run

    return build_feeds(settings)


DESCRIPTORS = {
    "binance-usdm": VenueDescriptor(
        key="binance-usdm",
        label="Binance USDⓈ-M",
        margin=MarginRules(ModelFamily.TIERS, "tiers", default_margin_asset="USDT"),
        parser=functools.partial(_parser, "binance-usdm"),
        build_feeds=_feeds,
        defaults=DEFAULTS,
        needs_credentials=True,
    ),
    "binance-coinm": VenueDescriptor(
        key="binance-coinm",
        label="Binance COIN-M",
        margin=MarginRules(ModelFamily.TIERS, "tiers", inverse=True),
        parser=functools.partial(_parser, "binance-coinm"),
        build_feeds=_feeds,
        defaults=DEFAULTS,
        needs_credentials=True,
    ),
}

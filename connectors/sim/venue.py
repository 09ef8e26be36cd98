"""The simulated venue ``sim`` in the venue registry (:mod:`connectors.venues`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from connectors.errors import SettingsError
from connectors.protocol import Feed
from connectors.venues import (
    FeedDefaults,
    FeedSettings,
    FrameParser,
    MarginRules,
    ModelFamily,
    VenueDescriptor,
)

# The sim's mark stream ticks several times a second; its private streams ping every 15 s.
DEFAULTS = FeedDefaults(
    market_stale_after_s=5.0,
    market_resync_interval_s=300.0,
    account_stale_after_s=60.0,
    account_resync_interval_s=120.0,
)


def _parser() -> FrameParser:
    from connectors.sim.protocol import parse  # noqa: PLC0415 - loaded when asked for

    return parse


def _feeds(settings: FeedSettings) -> list[Feed]:
    from connectors.sim.feed import SimAccountFeed, SimMarketFeed  # noqa: PLC0415 - when run

    url = settings.ws_url or settings.rest_url
    parts = urlsplit(url) if url else None
    if parts is None or parts.hostname is None or parts.port is None:
        raise SettingsError("ws_url", "the sim venue needs ws://HOST:PORT")
    host, port = parts.hostname, parts.port
    feeds: list[Feed] = [
        SimMarketFeed(
            host,
            port,
            stale_after_s=settings.stale_after_s,
            resync_interval_s=settings.resync_interval_s,
        )
    ]
    feeds.extend(
        SimAccountFeed(
            host,
            port,
            acc.name,
            stale_after_s=acc.stale_after_s,
            resync_interval_s=acc.resync_interval_s,
        )
        for acc in settings.accounts
    )
    return feeds


DESCRIPTORS = {
    "sim": VenueDescriptor(
        key="sim",
        label="the simulated venue",
        margin=MarginRules(ModelFamily.TIERS, "tiers"),
        parser=_parser,
        build_feeds=_feeds,
        defaults=DEFAULTS,
    ),
}

"""Venue registry: which :class:`connectors.protocol.Feed` objects a configured venue runs.

One market-data feed per venue and one private feed per account. Connector modules are imported
only when a venue of theirs is configured, so a deployment watching one venue never loads the
others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from connectors.protocol import Feed
from monitor.config import AccountConfig, Config, VenueConfig
from monitor.errors import UsageError

FeedFactory = Callable[[Config, VenueConfig, Sequence[AccountConfig]], list[Feed]]


def _sim_feeds(cfg: Config, venue: VenueConfig, accounts: Sequence[AccountConfig]) -> list[Feed]:
    from connectors.sim.feed import SimAccountFeed, SimMarketFeed  # noqa: PLC0415 - lazy by design

    url = venue.ws_url or venue.rest_url
    parts = urlsplit(url) if url else None
    if parts is None or parts.hostname is None or parts.port is None:
        raise UsageError(f"{cfg.path}: venues.sim.ws_url: the sim venue needs ws://HOST:PORT")
    host, port = parts.hostname, parts.port
    feeds: list[Feed] = [SimMarketFeed(host, port, **_intervals(venue))]
    feeds.extend(SimAccountFeed(host, port, acc.name, **_intervals(acc)) for acc in accounts)
    return feeds


def _intervals(c: VenueConfig | AccountConfig) -> dict[str, float]:
    """Only the intervals the config sets; the connector's defaults suit its streams otherwise."""
    out: dict[str, float] = {}
    if c.stale_after_s is not None:
        out["stale_after_s"] = c.stale_after_s
    if c.resync_interval_s is not None:
        out["resync_interval_s"] = c.resync_interval_s
    return out


# connectors.binance.feeds.build_feeds takes resolved intervals; these are its own defaults
# for the mark stream (busy) and the user stream's resync (it has no staleness: quiet is normal).
_BINANCE_MARKET_STALE_S = 15.0
_BINANCE_RESYNC_S = 300.0


def _binance_feeds(
    cfg: Config, venue: VenueConfig, accounts: Sequence[AccountConfig]
) -> list[Feed]:
    from connectors.binance.feeds import build_feeds as binance  # noqa: PLC0415 - lazy by design

    venue = dataclasses.replace(
        venue,
        stale_after_s=venue.stale_after_s or _BINANCE_MARKET_STALE_S,
        resync_interval_s=venue.resync_interval_s or _BINANCE_RESYNC_S,
    )
    resolved = [
        dataclasses.replace(a, resync_interval_s=a.resync_interval_s or _BINANCE_RESYNC_S)
        for a in accounts
    ]
    return binance(cfg, venue, resolved)  # type: ignore[arg-type]  # float | None resolved above


FACTORIES: dict[str, FeedFactory] = {
    "sim": _sim_feeds,
    "binance-usdm": _binance_feeds,
    "binance-coinm": _binance_feeds,
}


def build_feeds(cfg: Config) -> list[Feed]:
    """Every feed the config asks for: per venue, its market feed then one per account."""
    feeds: list[Feed] = []
    for venue in cfg.venues:
        accounts = [a for a in cfg.accounts if a.venue == venue.venue]
        feeds.extend(FACTORIES[venue.venue](cfg, venue, accounts))
    return feeds

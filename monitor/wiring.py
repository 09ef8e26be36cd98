"""Which :class:`connectors.protocol.Feed` objects a config runs, asked of the venue registry.

One market-data feed per venue and one private feed per account, built by the venue's own factory
(:func:`connectors.venues.venue_feeds`). This module names no venue: a venue the registry knows
is wired the same way as every other.
"""

from __future__ import annotations

from connectors import venues
from connectors.errors import SettingsError
from connectors.protocol import Feed
from monitor.config import Config
from monitor.errors import UsageError


def all_feeds(cfg: Config) -> list[Feed]:
    """Every feed the config asks for: per venue, its market feed then one per account."""
    feeds: list[Feed] = []
    for venue in cfg.venues:
        accounts = [a for a in cfg.accounts if a.venue == venue.venue]
        try:
            feeds.extend(venues.venue_feeds(venue.venue, venue, accounts))
        except SettingsError as exc:
            raise UsageError(f"{cfg.path}: venues.{venue.venue}.{exc}") from exc
    return feeds

"""The timing half of :class:`connectors.protocol.Feed`: one value, fixed when a feed is built.

Every venue's feeds answer the same questions to the driver (when is a silent feed stale, how
often to resync, how often to ping at application level and to do venue housekeeping, when to
renew the connection); they differ only in the numbers, so a feed holds one :class:`FeedTimes`
(``feed.times``) rather than inheriting the answers from a base class.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeedTimes:
    stale_after_s: float
    """No frame for this long means the feed is stale (the monitor is blind); ``inf`` for a
    stream that is quiet while nothing happens (a private stream)."""
    resync_interval_s: float
    """Re-take the snapshot this often even when nothing looks wrong (heals silent drift)."""
    app_ping_interval_s: float | None = None
    """Send the feed's ``app_ping()`` this often, for venues that expect client pings."""
    max_connection_age_s: float | None = None
    """Reconnect on purpose before the venue's own connection limit (Binance: 24 h)."""
    keepalive_interval_s: float | None = None
    """Run the feed's ``keepalive()`` this often while connected (e.g. a listenKey PUT)."""

"""The timing half of :class:`connectors.protocol.Feed`, fixed when a feed is built.

Every venue's feeds answer the same four questions to the driver (when is a silent feed stale,
how often to resync, how often to ping at application level, when to renew the connection);
they differ only in the numbers, so the answers live here once.
"""

from __future__ import annotations


class FeedTimes:
    def __init__(
        self,
        *,
        stale_after_s: float,
        resync_interval_s: float,
        app_ping_interval_s: float | None = None,
        max_connection_age_s: float | None = None,
    ) -> None:
        self._stale_after_s = stale_after_s
        self._resync_interval_s = resync_interval_s
        self._app_ping_interval_s = app_ping_interval_s
        self._max_connection_age_s = max_connection_age_s

    @property
    def stale_after_s(self) -> float:
        return self._stale_after_s

    @property
    def resync_interval_s(self) -> float:
        return self._resync_interval_s

    @property
    def app_ping_interval_s(self) -> float | None:
        return self._app_ping_interval_s

    @property
    def max_connection_age_s(self) -> float | None:
        return self._max_connection_age_s

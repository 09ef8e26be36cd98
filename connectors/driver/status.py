"""A feed's health as the consumer sees it: :class:`~connectors.events.FeedStatus` events in the
same stream as its data, one per change."""

from __future__ import annotations

from collections.abc import Callable

from connectors.events import Event, FeedState, FeedStatus
from connectors.protocol import Feed

Deliver = Callable[[list[Event], int], None]
"""The engine's sync entry point: ``deliver(events, recv_wall_ms)``."""

UP = (FeedState.CONNECTED, FeedState.RESYNCED)


class StatusReporter:
    def __init__(self, feed: Feed, deliver: Deliver, wall_ms: Callable[[], int]) -> None:
        self._feed = feed
        self._deliver = deliver
        self._wall_ms = wall_ms
        self.reported: FeedState | None = None
        """The last state delivered; ``None`` before the first."""

    def report(self, state: FeedState) -> None:
        if state is self.reported:
            return
        if state is FeedState.DISCONNECTED and self.reported is None:
            return  # never connected yet: nothing changed for the consumer
        self.reported = state
        now = self._wall_ms()
        feed = self._feed
        self._deliver([FeedStatus(feed.venue, feed.name, state, now, feed.account)], now)

    def synced(self) -> None:
        """The first snapshot of a connection is in: up again (``resynced`` after a stale
        spell, so a consumer can tell a recovery from a first connect)."""
        if self.reported not in UP:
            self.report(
                FeedState.RESYNCED if self.reported is FeedState.STALE else FeedState.CONNECTED
            )

"""The small protocol a venue plugs into the shared connection driver (:mod:`connectors.driver`).

A venue contributes one :class:`Feed` per websocket connection it needs (e.g. Binance: one
``/market`` feed for mark prices, one ``/private`` feed per account). The driver owns everything
generic: connect, subscribe, answer/send pings, reconnect with jittered exponential backoff,
snapshot-then-stream resync on every (re)connect and on a timer, staleness tracking. The feed
owns everything venue-specific, and its :meth:`Feed.parse` is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from connectors.events import Event


class Feed(Protocol):
    """One websocket connection's venue-specific behaviour."""

    @property
    def name(self) -> str:
        """Stable, bounded label, e.g. ``binance-usdm/market`` or ``binance-usdm/private/alice``."""
        ...

    @property
    def venue(self) -> str: ...

    @property
    def account(self) -> str | None:
        """The account a private feed serves; ``None`` for market-data feeds."""
        ...

    @property
    def stale_after_s(self) -> float:
        """No frame for this long means the feed is stale (the monitor is blind)."""
        ...

    @property
    def resync_interval_s(self) -> float:
        """Re-take the snapshot this often even when nothing looks wrong (heals silent drift)."""
        ...

    @property
    def app_ping_interval_s(self) -> float | None:
        """Send :meth:`app_ping` this often, for venues that expect client pings; else ``None``."""
        ...

    @property
    def max_connection_age_s(self) -> float | None:
        """Reconnect on purpose before the venue's own connection limit (Binance: 24 h)."""
        ...

    async def connect_url(self) -> str:
        """The URL to connect to now; may do REST first (e.g. obtain a listenKey)."""
        ...

    def subscribe_messages(self) -> Sequence[str]:
        """Text frames to send right after connecting (may be empty)."""
        ...

    def app_ping(self) -> str | None:
        """An application-level ping frame, for venues that expect one."""
        ...

    def parse(self, frame: bytes | str) -> list[Event]:
        """Pure decode of one frame. Raises :class:`connectors.errors.VenueDataError`."""
        ...

    async def snapshot(self) -> tuple[list[Event], int]:
        """REST snapshot of this feed's state and the venue time (ms) it was taken at.

        Buffered pushes with ``event_ms`` newer than that time are applied after it.
        """
        ...

    async def keepalive(self) -> None:
        """Periodic venue housekeeping while connected (e.g. listenKey PUT); may be a no-op."""
        ...

    @property
    def keepalive_interval_s(self) -> float | None: ...

    async def close(self) -> None:
        """Release REST sessions and credentials held by the feed."""
        ...

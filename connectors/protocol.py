"""What a venue plugs into the shared connection driver (:mod:`connectors.driver`), in full.

A venue contributes one :class:`Feed` per websocket connection it needs (e.g. Binance: one
``/market`` feed for mark prices, one ``/private`` feed per account). The driver owns everything
generic: connect, subscribe, answer/send pings, reconnect with jittered exponential backoff,
snapshot-then-stream resync on every (re)connect and on a timer, staleness tracking. The feed
owns everything venue-specific, and its :meth:`Feed.parse` is pure.

Every member the driver touches is declared here, optional paths included: a feed without a
batch decoder says so (``batch_parse`` is ``None``), a feed that never asks for a resync
returns ``None`` from :meth:`Feed.after_events`. The driver looks nothing up by name.

The driver reports flow to a :class:`DriverObserver` (the metrics layer implements it;
:class:`connectors.observers.NullObserver` is the default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from connectors.errors import VenueDataError
from connectors.events import Event
from connectors.feed_times import FeedTimes

BatchParse = Callable[[Sequence[bytes | str], list[Event]], list[VenueDataError]]
"""``batch_parse(frames, out) -> errors``: decode a batch of frames into ``out`` in one call,
returning one :class:`VenueDataError` per rejected frame or item (the good ones still go
through). Pure, like :meth:`Feed.parse`, and must agree with it frame by frame."""


@dataclass(frozen=True, slots=True)
class ResyncRequest:
    """A feed's request, made after seeing some events, for a snapshot soon (the driver bounds
    how soon: at most one forced resync per gap, so a garbage-sending venue is no REST storm)."""

    reason: str
    """Bounded label, e.g. ``new_symbol`` or ``collateral_mode``."""


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
        """The account a private feed serves; ``None`` for market-data feeds.

        Private streams carry absolute state, so the driver resyncs after a rejected private
        frame and stops at a :class:`connectors.events.StreamExpired`."""
        ...

    @property
    def times(self) -> FeedTimes:
        """Staleness, resync, ping, keepalive and connection-age intervals."""
        ...

    @property
    def batch_parse(self) -> BatchParse | None:
        """The feed's batch decoder (one call per received batch, no list per frame), or
        ``None``: the driver then calls :meth:`parse` frame by frame. A private feed has none,
        because a :class:`~connectors.events.StreamExpired` must end the batch where it is."""
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

    def after_events(self, events: Sequence[Event]) -> ResyncRequest | None:
        """Called once per received batch with the events parsed from it, before delivery.

        The one place a feed updates its own state from the stream (e.g. drop cached tier
        tables after a leverage change); answers a :class:`ResyncRequest` when the store cannot
        be right until a snapshot is taken."""
        ...

    async def snapshot(self) -> tuple[list[Event], int]:
        """REST snapshot of this feed's state and the venue time (ms) it was taken at.

        Buffered pushes with ``event_ms`` newer than that time are applied after it.
        """
        ...

    def snapshot_rejections(self) -> list[VenueDataError]:
        """Items the last :meth:`snapshot` skipped (one bad row or table, the rest delivered),
        drained: the driver counts each like a rejected frame."""
        ...

    async def keepalive(self) -> None:
        """Venue housekeeping every ``times.keepalive_interval_s`` while connected."""
        ...

    async def close(self) -> None:
        """Release REST sessions and credentials held by the feed."""
        ...


class DriverObserver(Protocol):
    """Flow counters the driver reports. Bounded labels: venue, feed name, reason."""

    def frames_received(self, venue: str, n: int) -> None:
        """``n`` frames arrived in one receive batch. Called once per batch, not per frame: a
        labelled Prometheus counter's ``labels(...).inc()`` costs ~2 µs, which would be 40 % of
        a frame's whole budget at 200k frames/s."""
        ...

    def frame_rejected(self, venue: str, reason: str) -> None:
        """A frame, an item of one, or a snapshot item was rejected and dropped."""
        ...

    def reconnect(self, feed: str, reason: str) -> None:
        """The connection ended for ``reason`` and will be re-opened."""
        ...

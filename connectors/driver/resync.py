"""Snapshot-then-stream: how the store comes to hold the venue's state, and keeps holding it.

Per connection: pushes are held from the first frame → ``snapshot()`` → the snapshot is
delivered, then the held pushes newer than it (events without a venue time are kept) → live.
The same resync runs on ``resync_interval_s``, when data returns after a stale spell, and when
asked (a rejected private frame, a feed's :class:`~connectors.protocol.ResyncRequest`), without
disconnecting: pushes are held again while the snapshot is in flight. Private streams carry no
sequence numbers on any venue, so this is the only way to be sure the store is right.

Many feeds share one venue's REST budget (:mod:`connectors.ratelimit`), so snapshots take turns:
a connection's first snapshot asks at :attr:`~connectors.ratelimit.Priority.UNSYNCED`, a resync
the stream asked for at ``REPAIR``, a timer resync at ``ROUTINE``; the timer is jittered so
feeds that synced together drift apart; time queued for a turn does not count against the
snapshot timeout. A later resync the venue refuses (429 pauses, a 418 ban) does not end a live
connection: the held pushes are delivered and the resync is tried again after the pause. A ban
is reported once per feed as a :class:`~connectors.events.RestBan` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from connectors.driver.control import Restart
from connectors.driver.status import Deliver, StatusReporter
from connectors.events import Event, FeedState, Instrument, MarkRun, RestBan
from connectors.protocol import DriverObserver, Feed
from connectors.ratelimit import PRIORITY, Priority, RateLimited, RestBanned, queue_time_exempt

_LOG = logging.getLogger(__name__)

MAX_BUFFERED = 500_000  # pushes held while a snapshot is in flight before giving up on it
FORCED_RESYNC_GAP_S = 5.0
"""At most one resync a feed asks for (a rejected private frame, an unknown symbol) per this
many seconds: a venue sending garbage must not turn into a REST storm."""
RESYNC_JITTER = 0.2
"""Each timer resync comes after the interval ± this fraction, drawn anew each time."""


class ResyncGate:
    """At most one forced resync per ``gap_s``: ``delay(now)`` is how long to wait before the
    next one may run, ``taken(now)`` records that it ran."""

    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s
        self._last: float | None = None

    def delay(self, now: float) -> float:
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.gap_s - now)

    def taken(self, now: float) -> None:
        self._last = now


class BanReport:
    """Delivers a :class:`RestBan` the first time this feed meets each ban."""

    def __init__(self, feed: Feed, deliver: Deliver, wall_ms: Callable[[], int]) -> None:
        self._feed = feed
        self._deliver = deliver
        self._wall_ms = wall_ms
        self._last: tuple[int, int] | None = None

    def __call__(self, exc: BaseException) -> None:
        if not isinstance(exc, RestBanned):
            return
        key = (exc.since_ms, exc.until_ms)
        if key == self._last:
            return
        self._last = key
        feed, now = self._feed, self._wall_ms()
        ban = RestBan(feed.venue, feed.name, exc.since_ms, exc.until_ms, now, feed.account)
        self._deliver([ban], now)


def newer_than(events: list[Event], snapshot_ms: int) -> list[Event]:
    """The pushes a snapshot taken at ``snapshot_ms`` does not contain (events without a time
    are kept); a batch of marks is filtered mark by mark."""
    kept: list[Event] = []
    for ev in events:
        if isinstance(ev, MarkRun):
            newer = ev.newer_than(snapshot_ms)
            if newer is not None:
                kept.append(newer)
        elif isinstance(ev, Instrument) or ev.event_ms == 0 or ev.event_ms > snapshot_ms:
            kept.append(ev)
    return kept


class Resync:
    """One feed's snapshots and the pushes held around them. Lives as long as the feed; the
    session calls :meth:`begin` at each connection attempt."""

    def __init__(
        self,
        feed: Feed,
        deliver: Deliver,
        observer: DriverObserver,
        status: StatusReporter,
        *,
        clock: Callable[[], float],
        wall_ms: Callable[[], int],
        snapshot_timeout_s: float,
        max_buffered: int,
        gate: ResyncGate,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._feed = feed
        self._deliver = deliver
        self._observer = observer
        self._status = status
        self._clock = clock
        self._wall_ms = wall_ms
        self._snapshot_timeout_s = snapshot_timeout_s
        self._max_buffered = max_buffered
        self._gate = gate
        self._rng = rng
        self.report_ban = BanReport(feed, deliver, wall_ms)
        self.buffer: list[tuple[list[Event], int]] | None = None
        """Pushes held while a snapshot is in flight (``None``: deliver at once)."""
        self._buffered = 0  # frames behind the held batches
        self._wanted = asyncio.Event()
        self._forced = False  # a resync was asked for: gated
        self._recovering = False  # data came back after a stale spell: not gated
        self.synced_at: float | None = None
        """When this connection's first snapshot was delivered (``None``: not yet)."""

    def begin(self) -> None:
        """A new connection: hold pushes from its first frame until its snapshot is in."""
        self.synced_at = None
        self.buffer = []
        self._buffered = 0
        self._wanted = asyncio.Event()

    def hold(self, batch: list[Event], recv_ms: int, frames: int) -> None:
        """Deliver now, or hold while a snapshot is in flight (bounded by frames held)."""
        buffer = self.buffer
        if buffer is None:
            self._deliver(batch, recv_ms)
            return
        buffer.append((batch, recv_ms))
        self._buffered += frames
        if self._buffered > self._max_buffered:
            raise Restart("resync_overflow", immediate=False)

    def request(self, reason: str) -> None:
        """Resync soon (bounded by the gate): the store may hold a wrong state now."""
        _LOG.debug("feed %s: resync requested (%s)", self._feed.name, reason)
        self._forced = True
        self._wanted.set()

    def recover(self) -> None:
        """Data is back after a stale spell: resync now, then report ``resynced``."""
        self._recovering = True
        self._wanted.set()

    async def run(self) -> None:
        """The connection's first snapshot, then one per interval or request, until cancelled."""
        PRIORITY.set(Priority.UNSYNCED)  # this task's own context: its REST calls go first
        await self._resync()
        self.synced_at = self._clock()
        self._status.synced()
        _LOG.info("feed %s: synced", self._feed.name)
        interval = self._feed.times.resync_interval_s
        while True:
            wait_s = interval * (1.0 + RESYNC_JITTER * (2.0 * self._rng() - 1.0))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wanted.wait()
            self._wanted.clear()
            recovering = self._recovering
            forced = self._forced
            if forced and not recovering:
                delay = self._gate.delay(self._clock())
                if delay > 0.0:
                    await asyncio.sleep(delay)
                self._gate.taken(self._clock())
            self._forced = False
            PRIORITY.set(Priority.REPAIR if forced or recovering else Priority.ROUTINE)
            try:
                await self._resync()
            except RateLimited as exc:
                # The stream is still good: keep it, and try again once the venue lets us.
                self.report_ban(exc)
                _LOG.debug("feed %s: resync refused by the venue's rate limit; retry in %.0f s",
                           self._feed.name, exc.retry_after_s)  # fmt: skip
                self._release_held()
                self._forced = self._forced or forced
                self._recovering = self._recovering or recovering
                await asyncio.sleep(max(exc.retry_after_s, 1.0))
                self._wanted.set()
                continue
            if recovering:
                self._recovering = False
                self._status.report(FeedState.RESYNCED)

    def _release_held(self) -> None:
        """A resync failed on a live connection: deliver what was held, in order."""
        held, self.buffer = self.buffer, None
        for evs, recv_ms in held or ():
            self._deliver(evs, recv_ms)

    async def _resync(self) -> None:
        if self.buffer is None:
            self.buffer = []
            self._buffered = 0
        async with asyncio.timeout(self._snapshot_timeout_s) as deadline:
            with queue_time_exempt(deadline):
                events, snapshot_ms = await self._feed.snapshot()
        # Items the snapshot skipped (one bad row or table, the rest delivered) are counted
        # like rejected frames.
        for exc in self._feed.snapshot_rejections():
            self._observer.frame_rejected(exc.venue, exc.reason)
        # From here to the end no await: the reader cannot interleave, so the snapshot and the
        # newer held pushes reach the store as one ordered sequence.
        held = self.buffer
        self.buffer = None
        deliver = self._deliver
        deliver(events, self._wall_ms())
        for evs, recv_ms in held:
            kept = newer_than(evs, snapshot_ms)
            if kept:
                deliver(kept, recv_ms)

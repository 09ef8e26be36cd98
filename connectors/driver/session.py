"""Keep one feed connected: :func:`run_feed`.

Per connection: ``connect_url()`` → websocket connect → send ``subscribe_messages()`` → run the
connection's tasks under one ``TaskGroup`` — the reader (:mod:`~connectors.driver.reader`),
the snapshot-then-stream resync (:mod:`~connectors.driver.resync`), the watchdog
(:mod:`~connectors.driver.watchdog`), application pings and venue keepalive — until one of them
ends it.

Failure policy: connection-level trouble (OSError, timeouts, websocket errors, venue rejections,
a bad snapshot) → reconnect with jittered exponential backoff; planned reconnects (stream
expired, connection age, long silence) go at once after a healthy connection; a venue whose REST
is closed to us (:class:`~connectors.ratelimit.RateLimited`: a 418 ban) is retried no sooner
than its ``Retry-After``, and a ban is reported once per feed
(:class:`~connectors.events.RestBan`). ``AuthError`` and anything that is not a connector/network
error (a bug in ``deliver``, say) propagate to the owner's TaskGroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from connectors.backoff import Backoff
from connectors.clock import wall_ms
from connectors.driver.control import Restart, Stopped
from connectors.driver.reader import Reader
from connectors.driver.resync import FORCED_RESYNC_GAP_S, MAX_BUFFERED, Resync, ResyncGate
from connectors.driver.status import Deliver, StatusReporter
from connectors.driver.watchdog import Liveness, watch
from connectors.driver.wslog import WS_LOG
from connectors.errors import AuthError, ConnectorError, VenueDataError
from connectors.events import FeedState
from connectors.observers import NULL_OBSERVER
from connectors.protocol import DriverObserver, Feed
from connectors.ratelimit import RateLimited

_LOG = logging.getLogger(__name__)

MAX_FRAME_BYTES = 4 * 1024 * 1024  # largest venue frame we accept (batch mark arrays fit easily)
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


async def run_feed(
    feed: Feed,
    deliver: Deliver,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_ms: Callable[[], int] = wall_ms,
    backoff: Backoff | None = None,
    observer: DriverObserver | None = None,
    stop: asyncio.Event | None = None,
    snapshot_timeout_s: float = 30.0,
    open_timeout_s: float = 10.0,
    max_buffered: int = MAX_BUFFERED,
    forced_resync_gap_s: float = FORCED_RESYNC_GAP_S,
    rng: Callable[[], float] = random.random,
) -> None:
    """Keep ``feed`` connected and its state delivered until ``stop`` is set (or cancelled).

    ``deliver(events, recv_wall_ms)`` is the engine's sync entry point. Raises ``AuthError``
    (and any non-connector exception) to the owner; returns when ``stop`` is set.
    """
    observer = observer or NULL_OBSERVER
    status = StatusReporter(feed, deliver, wall_ms)
    resync = Resync(
        feed,
        deliver,
        observer,
        status,
        clock=clock,
        wall_ms=wall_ms,
        snapshot_timeout_s=snapshot_timeout_s,
        max_buffered=max_buffered,
        gate=ResyncGate(forced_resync_gap_s),
        rng=rng,
    )
    session = _Session(
        feed,
        observer=observer,
        status=status,
        resync=resync,
        reader=Reader(feed, deliver, observer, resync, wall_ms),
        clock=clock,
        backoff=backoff or Backoff(),
        stop=stop or asyncio.Event(),
        open_timeout_s=open_timeout_s,
    )
    await session.run()


def retryable(exc: BaseException) -> bool:
    """Worth reconnecting for: the network, the venue, a frame or snapshot we could not use."""
    if isinstance(exc, AuthError):
        return False
    return isinstance(exc, OSError | TimeoutError | WebSocketException | ConnectorError | EOFError)


def _is_fatal(exc: BaseException) -> bool:
    return not retryable(exc) and not isinstance(exc, Restart | Stopped)


def _is_stop(exc: BaseException) -> bool:
    return isinstance(exc, Stopped)


def _is_restart(exc: BaseException) -> bool:
    return isinstance(exc, Restart)


def pick(exc: BaseException) -> BaseException:
    """The leaf of a TaskGroup's exception group that decides what happens next."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        elif not isinstance(e, asyncio.CancelledError):
            leaves.append(e)
    if not leaves:
        return exc
    # Fatal first (bugs, auth), then the owner's stop, then planned restarts, then the rest.
    for rank in (_is_fatal, _is_stop, _is_restart):
        for leaf in leaves:
            if rank(leaf):
                return leaf
    return leaves[0]


class _Session:
    def __init__(
        self,
        feed: Feed,
        *,
        observer: DriverObserver,
        status: StatusReporter,
        resync: Resync,
        reader: Reader,
        clock: Callable[[], float],
        backoff: Backoff,
        stop: asyncio.Event,
        open_timeout_s: float,
    ) -> None:
        self._feed = feed
        self._observer = observer
        self._status = status
        self._resync = resync
        self._reader = reader
        self._clock = clock
        self._backoff = backoff
        self._stop = stop
        self._open_timeout_s = open_timeout_s
        self._pause_s = 0.0
        """How long the venue asked us to stay away (429/418 ``Retry-After``) last time."""

    async def run(self) -> None:
        feed = self._feed
        _LOG.info("feed %s: starting", feed.name)
        try:
            while not self._stop.is_set():
                reason, immediate = await self._one_connection()
                if self._stop.is_set():
                    break
                self._observer.reconnect(feed.name, reason)
                if not immediate:
                    self._status.report(FeedState.DISCONNECTED)
                    delay = self._backoff.next_delay()
                    if self._pause_s > delay:
                        # The venue's REST is closed to us for a while: come back when it
                        # opens, spread over the backoff so the feeds do not return as one.
                        delay += self._pause_s
                    self._pause_s = 0.0
                    _LOG.info("feed %s: %s; reconnecting in %.2f s", feed.name, reason, delay)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._stop.wait()
                else:
                    _LOG.info("feed %s: %s; reconnecting now", feed.name, reason)
        finally:
            _LOG.info("feed %s: stopped", feed.name)

    async def _one_connection(self) -> tuple[str, bool]:
        """Run one connection to its end; return (reason, immediate) for the reconnect."""
        self._resync.begin()
        try:
            url = await self._feed.connect_url()
            host = urlsplit(url).hostname or ""
            async with connect(
                url,
                open_timeout=self._open_timeout_s,
                max_size=MAX_FRAME_BYTES,
                compression=None,
                # Deep queue: at high frame rates the default (16) pauses the transport
                # every few frames, which costs more than the memory it saves.
                max_queue=4096,
                close_timeout=2.0,
                proxy=None if host in _LOOPBACK else True,
                user_agent_header="marginwatch",
                logger=WS_LOG,
            ) as ws:
                connected_at = self._clock()
                for message in self._feed.subscribe_messages():
                    await ws.send(message)
                await self._serve(ws, connected_at)
        except BaseException as exc:  # noqa: BLE001 - classified: retry, stop or re-raise
            return self._classify(pick(exc))
        finally:
            synced_at = self._resync.synced_at
            healthy = 0.0 if synced_at is None else self._clock() - synced_at
            self._backoff.connection_ended(healthy)
        return "closed", False  # pragma: no cover - _serve only ends by raising

    def _classify(self, exc: BaseException) -> tuple[str, bool]:
        if isinstance(exc, Stopped):
            return "stopped", True
        if isinstance(exc, Restart):
            # Planned reconnects are immediate only after a healthy connection, so a venue
            # that keeps expiring us at once still gets backed off.
            return exc.reason, exc.immediate and self._resync.synced_at is not None
        if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
            raise AuthError(
                self._feed.venue, exc.response.status_code, "websocket handshake refused"
            ) from exc
        if not retryable(exc):
            raise exc
        if isinstance(exc, RateLimited):
            self._resync.report_ban(exc)
            self._pause_s = exc.retry_after_s
            return "rate_limited", False
        if isinstance(exc, VenueDataError):  # a snapshot we could not decode
            self._observer.frame_rejected(exc.venue, exc.reason)
            return "bad_snapshot", False
        if isinstance(exc, WebSocketException) and not isinstance(exc, InvalidStatus):
            return "connection_closed", False
        if isinstance(exc, ConnectorError):
            return "venue_error", False
        return "connect_failed", False

    async def _serve(self, ws: ClientConnection, connected_at: float) -> None:
        feed, times = self._feed, self._feed.times
        live = Liveness()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._reader.read(ws, live))
            tg.create_task(self._resync.run())
            tg.create_task(watch(feed, live, self._status, self._clock, connected_at))
            tg.create_task(self._wait_stop())
            if times.app_ping_interval_s:
                tg.create_task(self._app_pings(ws, times.app_ping_interval_s))
            if times.keepalive_interval_s:
                tg.create_task(self._keepalive(times.keepalive_interval_s))

    async def _app_pings(self, ws: ClientConnection, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            message = self._feed.app_ping()
            if message is not None:
                await ws.send(message)

    async def _keepalive(self, interval: float) -> None:
        delay = interval
        while True:
            await asyncio.sleep(delay)
            try:
                await self._feed.keepalive()
                delay = interval
            except RateLimited as exc:
                # The venue's REST is closed to us for now (a ban): the stream itself is fine,
                # so keep it and try the keepalive again when REST reopens.
                self._resync.report_ban(exc)
                delay = max(exc.retry_after_s, 1.0)

    async def _wait_stop(self) -> None:
        await self._stop.wait()
        raise Stopped

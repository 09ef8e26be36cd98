"""The one connection driver every venue runs through: :func:`run_feed`.

Per connection: ``connect_url()`` → websocket connect → send ``subscribe_messages()`` → buffer
parsed pushes → ``snapshot()`` → deliver the snapshot, then the buffered events newer than it
(events without a venue time, ``event_ms == 0``, are kept) → stream live. The same resync runs on
``resync_interval_s`` and after a stale spell, without disconnecting (pushes are buffered while
the snapshot is in flight). Private streams carry no sequence numbers on any venue, so this
snapshot-then-stream dance is the only way to be sure the state store holds the venue's state.

Failure policy: connection-level trouble (OSError, timeouts, websocket errors, venue rejections,
a bad snapshot) → reconnect with jittered exponential backoff. ``AuthError`` and anything that is
not a connector/network error (a bug in ``deliver``, say) propagate to the owner's TaskGroup.
Bad frames never end a connection: they are counted (``observer.frame_rejected``) and dropped.

The hot path (recv → parse → deliver) does no logging, creates no tasks and calls no clock except
the wall clock stamp handed to ``deliver``; staleness is tracked by a frame counter that a
watchdog task samples.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.frames import Opcode

from connectors.backoff import Backoff
from connectors.clock import wall_ms
from connectors.errors import AuthError, ConnectorError, VenueDataError
from connectors.events import Event, FeedState, FeedStatus, MarkRun, StreamExpired
from connectors.observers import NullObserver
from connectors.protocol import Feed

_LOG = logging.getLogger(__name__)


class _RedactSecrets(logging.Filter):
    """Blank credentials that ride in URLs (Binance's ``listenKey=…``) in a record's text."""

    _SECRET = re.compile(r"(listenKey=)[^&\s]+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = self._SECRET.sub(r"\1<redacted>", text)
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


def _websocket_logger() -> logging.Logger:
    """The logger handed to websockets. Its own DEBUG output prints the request line (with a
    private stream's listenKey) and every frame (payloads), so it is held at INFO whatever the
    root level is; the filter redacts what an INFO line could still carry."""
    logger = logging.getLogger(f"{__name__}.websockets")
    logger.setLevel(logging.INFO)
    if not any(isinstance(f, _RedactSecrets) for f in logger.filters):
        logger.addFilter(_RedactSecrets())
    return logger


_WS_LOG = _websocket_logger()

Deliver = Callable[[list[Event], int], None]

MAX_FRAME_BYTES = 4 * 1024 * 1024  # largest venue frame we accept (batch mark arrays fit easily)
MAX_BUFFERED = 500_000  # pushes held while a snapshot is in flight before giving up on it
# Frames taken per batch at most: bounds how long the first frame of a batch waits for the
# last one's parse before delivery (about a millisecond of work).
MAX_BATCH_FRAMES = 512
FORCED_RESYNC_GAP_S = 5.0
"""At most one resync a feed asks for (a rejected private frame, an unknown symbol) per this
many seconds: a venue sending garbage must not turn into a REST storm."""
SILENT_RECONNECT_FACTOR = 4.0  # stale for this many stale_after_s → reconnect and resubscribe
_UP = (FeedState.CONNECTED, FeedState.RESYNCED)
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class DriverObserver(Protocol):
    """Flow counters. ``frame`` runs once per received frame: keep it O(1) (an int += 1).

    An observer may also define ``frames_received(venue, n)``: the driver then calls that once
    per batch of ``n`` frames instead of ``frame`` per frame (a labelled Prometheus counter's
    ``labels(...).inc()`` costs ~2 µs, which is 40 % of a frame's whole budget at 200k/s).
    """

    def frame(self, venue: str) -> None: ...

    def frame_rejected(self, venue: str, reason: str) -> None: ...

    def reconnect(self, feed: str, reason: str) -> None: ...


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


class _Restart(Exception):  # noqa: N818 - a control-flow signal, not an error
    """End this connection; ``immediate`` skips the backoff delay (planned reconnects)."""

    def __init__(self, reason: str, *, immediate: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.immediate = immediate


class _Stopped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The owner set ``stop``."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, AuthError):
        return False
    return isinstance(exc, OSError | TimeoutError | WebSocketException | ConnectorError | EOFError)


def _is_fatal(exc: BaseException) -> bool:
    return not _retryable(exc) and not isinstance(exc, _Restart | _Stopped)


def _is_stop(exc: BaseException) -> bool:
    return isinstance(exc, _Stopped)


def _is_restart(exc: BaseException) -> bool:
    return isinstance(exc, _Restart)


def _pick(exc: BaseException) -> BaseException:
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


TakeReady = Callable[[list[bytes], int], None]
ParseMany = Callable[[list[bytes], list[Event]], list[VenueDataError]]


def ready_taker(ws: object) -> TakeReady:
    """``take(out, limit)``: append messages ``ws`` already holds, complete, without awaiting.

    websockets (14+, asyncio) has no public non-blocking receive; its connection keeps the
    frames that arrived in ``recv_messages`` (an ``Assembler``) whose ``frames.queue`` is a
    deque. This is the one place that reads those internals. Only complete, unfragmented
    text/binary messages are taken (a fragmented one, or anything odd, is left for ``recv``,
    which owns reassembly and errors), the reader is resumed like ``Assembler.get`` does, and
    ``out`` never grows past ``limit``. If the internals are not what we expect (another
    websockets version), the taker takes nothing: one frame per ``recv``, as before.
    """
    assembler = getattr(ws, "recv_messages", None)
    queue = getattr(getattr(assembler, "frames", None), "queue", None)
    resume = getattr(assembler, "maybe_resume", None)
    if not isinstance(queue, collections.deque) or resume is None or assembler is None:
        return _take_nothing
    popleft = queue.popleft
    data_opcodes = (Opcode.TEXT, Opcode.BINARY)

    def take(out: list[bytes], limit: int) -> None:
        if not queue or assembler.get_in_progress:
            return
        room = limit - len(out)
        while queue and room > 0:
            frame = queue[0]
            if not frame.fin or frame.opcode not in data_opcodes:
                break
            popleft()
            data = frame.data
            out.append(data if type(data) is bytes else bytes(data))
            room -= 1
        resume()

    return take


def _take_nothing(out: list[bytes], limit: int) -> None:
    return None


def _newer(events: list[Event], snapshot_ms: int) -> list[Event]:
    """The pushes a snapshot taken at ``snapshot_ms`` does not contain (events without a time
    are kept); a batch of marks is filtered mark by mark."""
    kept: list[Event] = []
    for ev in events:
        if isinstance(ev, MarkRun):
            newer = ev.newer_than(snapshot_ms)
            if newer is not None:
                kept.append(newer)
            continue
        ms: int = getattr(ev, "event_ms", 0)
        if ms == 0 or ms > snapshot_ms:
            kept.append(ev)
    return kept


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
) -> None:
    """Keep ``feed`` connected and its state delivered until ``stop`` is set (or cancelled).

    ``deliver(events, recv_wall_ms)`` is the engine's sync entry point. Raises ``AuthError``
    (and any non-connector exception) to the owner; returns when ``stop`` is set.
    """
    driver = _FeedDriver(
        feed,
        deliver,
        clock=clock,
        wall_ms=wall_ms,
        backoff=backoff or Backoff(),
        observer=observer or NullObserver(),
        stop=stop or asyncio.Event(),
        snapshot_timeout_s=snapshot_timeout_s,
        open_timeout_s=open_timeout_s,
        max_buffered=max_buffered,
        forced_resync_gap_s=forced_resync_gap_s,
    )
    await driver.run()


class _FeedDriver:
    def __init__(
        self,
        feed: Feed,
        deliver: Deliver,
        *,
        clock: Callable[[], float],
        wall_ms: Callable[[], int],
        backoff: Backoff,
        observer: DriverObserver,
        stop: asyncio.Event,
        snapshot_timeout_s: float,
        open_timeout_s: float,
        max_buffered: int,
        forced_resync_gap_s: float = FORCED_RESYNC_GAP_S,
    ) -> None:
        self.feed = feed
        self._deliver = deliver
        self._clock = clock
        self._wall_ms = wall_ms
        self._backoff = backoff
        self._observer = observer
        self._stop = stop
        self._snapshot_timeout_s = snapshot_timeout_s
        self._open_timeout_s = open_timeout_s
        self._max_buffered = max_buffered
        self._gate = ResyncGate(forced_resync_gap_s)
        self._reported: FeedState | None = None
        # Per-connection state, reset in _serve.
        self.frames = 0
        self._buffer: list[tuple[list[Event], int]] | None = None
        self._buffered = 0  # frames behind the held batches
        self._stale = False
        self._recovering = False
        self._forced = False  # a resync was asked for (rejected private frame, feed request)
        self._resync_wanted = asyncio.Event()
        self._connected_at = 0.0
        self._synced_at: float | None = None
        self._parser_bug_logged = False

    # --- reconnect loop ----------------------------------------------------------------------

    async def run(self) -> None:
        feed = self.feed
        _LOG.info("feed %s: starting", feed.name)
        try:
            while not self._stop.is_set():
                reason, immediate = await self._one_connection()
                if self._stop.is_set():
                    break
                self._observer.reconnect(feed.name, reason)
                if not immediate:
                    self._status(FeedState.DISCONNECTED)
                    delay = self._backoff.next_delay()
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
        self._synced_at = None
        try:
            url = await self.feed.connect_url()
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
                logger=_WS_LOG,
            ) as ws:
                self._connected_at = self._clock()
                for message in self.feed.subscribe_messages():
                    await ws.send(message)
                await self._serve(ws)
        except BaseException as exc:
            return self._classify(_pick(exc))
        finally:
            healthy = 0.0 if self._synced_at is None else self._clock() - self._synced_at
            self._backoff.connection_ended(healthy)
        return "closed", False  # pragma: no cover - _serve only ends by raising

    def _classify(self, exc: BaseException) -> tuple[str, bool]:
        if isinstance(exc, _Stopped):
            return "stopped", True
        if isinstance(exc, _Restart):
            # Planned reconnects are immediate only after a healthy connection, so a venue
            # that keeps expiring us at once still gets backed off.
            return exc.reason, exc.immediate and self._synced_at is not None
        if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
            raise AuthError(
                self.feed.venue, exc.response.status_code, "websocket handshake refused"
            ) from exc
        if not _retryable(exc):
            raise exc
        if isinstance(exc, VenueDataError):  # a snapshot we could not decode
            self._observer.frame_rejected(exc.venue, exc.reason)
            return "bad_snapshot", False
        if isinstance(exc, WebSocketException) and not isinstance(exc, InvalidStatus):
            return "connection_closed", False
        if isinstance(exc, ConnectorError):
            return "venue_error", False
        return "connect_failed", False

    # --- one connection ----------------------------------------------------------------------

    async def _serve(self, ws: ClientConnection) -> None:
        self.frames = 0
        self._buffer = []  # buffer from the first push until the snapshot is applied
        self._buffered = 0
        self._stale = False
        self._resync_wanted = asyncio.Event()
        feed = self.feed
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._read(ws))
            tg.create_task(self._sync_loop())
            tg.create_task(self._watchdog())
            tg.create_task(self._wait_stop())
            if feed.app_ping_interval_s:
                tg.create_task(self._app_pings(ws, feed.app_ping_interval_s))
            if feed.keepalive_interval_s:
                tg.create_task(self._keepalive(feed.keepalive_interval_s))

    async def _read(self, ws: ClientConnection) -> None:
        # Hot path: locals for everything touched per frame. One await per *batch*: after a
        # frame arrives, every message websockets has already assembled is taken without
        # suspending (take_ready), parsed, and delivered as ONE list, so the engine applies a
        # run of marks together and the await/recv machinery is paid once per batch.
        recv = ws.recv
        take = ready_taker(ws)
        parse = self.feed.parse
        # A feed may offer parse_many(frames, out) -> [VenueDataError per bad frame]: one call
        # per batch, no list per frame. Private feeds stay frame by frame (StreamExpired).
        parse_many: ParseMany | None = (
            None if self.feed.account is not None else getattr(self.feed, "parse_many", None)
        )
        deliver = self._deliver
        wall_ms = self._wall_ms
        on_frame = self._observer.frame
        on_frames: Callable[[str, int], None] | None = getattr(
            self._observer, "frames_received", None
        )
        rejected = self._observer.frame_rejected
        venue = self.feed.venue
        private = self.feed.account is not None
        # A private feed may ask for a resync after a frame (e.g. it named a symbol its cached
        # contract facts do not know); it answers once per request.
        feed_wants_resync: Callable[[], bool] | None = (
            getattr(self.feed, "take_resync_request", None) if private else None
        )
        max_buffered = self._max_buffered
        batch_max = MAX_BATCH_FRAMES
        frames: list[bytes] = []
        while True:
            frames.append(await recv(False))  # bytes: parsers decode JSON straight from UTF-8
            take(frames, batch_max)
            self.frames += len(frames)
            if on_frames is not None:
                on_frames(venue, len(frames))
            else:
                for _ in frames:
                    on_frame(venue)
            if self._stale:
                self._data_after_stale()
            batch: list[Event] = []
            if parse_many is not None:
                try:
                    errors = parse_many(frames, batch)
                except Exception:  # a parser bug: redo this batch frame by frame (counts it)
                    batch = self._parse_each(frames)
                else:
                    for exc in errors:
                        rejected(venue, exc.reason)
                if batch:
                    if self._buffer is None:
                        deliver(batch, wall_ms())
                    else:
                        self._push(batch, wall_ms(), len(frames), max_buffered)
                frames.clear()
                continue
            for frame in frames:
                try:
                    events = parse(frame)
                except VenueDataError as exc:
                    rejected(venue, exc.reason)
                    if private:
                        # A lost private push (absolute balances/positions) leaves the store
                        # wrong until the next timer resync: take a snapshot soon instead.
                        self._request_resync()
                    continue
                except Exception:  # a parser bug must not blind the monitor: count, log once
                    self._parser_failed()
                    if private:
                        self._request_resync()
                    continue
                if private:
                    for ev in events:
                        if type(ev) is StreamExpired:
                            # What came before the expiry still counts; the rest is dropped
                            # with the connection, as it would be frame by frame.
                            if batch:
                                self._push(batch, wall_ms(), len(frames), max_buffered)
                            raise _Restart("stream_expired", immediate=True)
                batch += events
            if feed_wants_resync is not None and feed_wants_resync():
                self._request_resync()
            if batch:
                if self._buffer is None:
                    deliver(batch, wall_ms())
                else:
                    self._push(batch, wall_ms(), len(frames), max_buffered)
            frames.clear()

    def _parse_each(self, frames: list[bytes]) -> list[Event]:
        """The market path's fallback after a parser bug: frame by frame, each bug counted."""
        batch: list[Event] = []
        for frame in frames:
            try:
                batch += self.feed.parse(frame)
            except VenueDataError as exc:
                self._observer.frame_rejected(self.feed.venue, exc.reason)
            except Exception:
                self._parser_failed()
        return batch

    def _push(self, batch: list[Event], recv_ms: int, frames: int, max_buffered: int) -> None:
        """Deliver now, or hold while a snapshot is in flight (bounded by frames held)."""
        buffer = self._buffer
        if buffer is None:
            self._deliver(batch, recv_ms)
            return
        buffer.append((batch, recv_ms))
        self._buffered += frames
        if self._buffered > max_buffered:
            raise _Restart("resync_overflow", immediate=False)

    def _parser_failed(self) -> None:
        self._observer.frame_rejected(self.feed.venue, "parser_error")
        if not self._parser_bug_logged:
            self._parser_bug_logged = True
            _LOG.exception("feed %s: parser raised a non-venue error (bug)", self.feed.name)

    async def _sync_loop(self) -> None:
        await self._resync()
        self._synced_at = self._clock()
        if self._reported not in _UP:
            up = FeedState.RESYNCED if self._reported is FeedState.STALE else FeedState.CONNECTED
            self._status(up)
        _LOG.info("feed %s: synced", self.feed.name)
        interval = self.feed.resync_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._resync_wanted.wait()
            self._resync_wanted.clear()
            recovering = self._recovering
            if self._forced and not recovering:
                delay = self._gate.delay(self._clock())
                if delay > 0.0:
                    await asyncio.sleep(delay)
                self._gate.taken(self._clock())
            self._forced = False
            await self._resync()
            if recovering:
                self._recovering = False
                self._status(FeedState.RESYNCED)

    async def _resync(self) -> None:
        if self._buffer is None:
            self._buffer = []
            self._buffered = 0
        async with asyncio.timeout(self._snapshot_timeout_s):
            events, snapshot_ms = await self.feed.snapshot()
        # Items a snapshot skipped (one bad row or table, the rest delivered) are counted
        # like rejected frames, through an optional feed hook.
        skipped: Callable[[], list[VenueDataError]] | None = getattr(
            self.feed, "snapshot_rejections", None
        )
        if skipped is not None:
            for exc in skipped():
                self._observer.frame_rejected(exc.venue, exc.reason)
        # From here to the end no await: the reader cannot interleave, so the snapshot and the
        # newer buffered pushes reach the store as one ordered sequence.
        buffered = self._buffer
        self._buffer = None
        deliver = self._deliver
        deliver(events, self._wall_ms())
        for evs, recv_ms in buffered:
            kept = _newer(evs, snapshot_ms)
            if kept:
                deliver(kept, recv_ms)

    def _request_resync(self) -> None:
        """Resync soon (bounded by the gate): the store may hold a wrong state now."""
        self._forced = True
        self._resync_wanted.set()

    def _data_after_stale(self) -> None:
        self._stale = False
        self._recovering = True
        self._resync_wanted.set()

    async def _watchdog(self) -> None:
        feed = self.feed
        stale_after = feed.stale_after_s
        max_age = feed.max_connection_age_s
        interval = max(0.005, min(stale_after / 4.0, 1.0))
        if max_age is not None:
            interval = min(interval, max(0.005, max_age / 4.0))
        last_frames = self.frames
        last_change = self._clock()
        while True:
            await asyncio.sleep(interval)
            now = self._clock()
            if self.frames != last_frames:
                last_frames = self.frames
                last_change = now
            elif not self._stale and now - last_change >= stale_after:
                self._stale = True
                self._status(FeedState.STALE)
                _LOG.warning("feed %s: stale (no frame for %.1f s)", feed.name, now - last_change)
            elif self._stale and now - last_change >= stale_after * SILENT_RECONNECT_FACTOR:
                raise _Restart("silent", immediate=True)
            if max_age is not None and now - self._connected_at >= max_age:
                raise _Restart("max_age", immediate=True)

    async def _app_pings(self, ws: ClientConnection, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            message = self.feed.app_ping()
            if message is not None:
                await ws.send(message)

    async def _keepalive(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.feed.keepalive()

    async def _wait_stop(self) -> None:
        await self._stop.wait()
        raise _Stopped

    def _status(self, state: FeedState) -> None:
        if state is self._reported:
            return
        if state is FeedState.DISCONNECTED and self._reported is None:
            return  # never connected yet: nothing changed for the consumer
        self._reported = state
        now = self._wall_ms()
        feed = self.feed
        self._deliver([FeedStatus(feed.venue, feed.name, state, now, feed.account)], now)


__all__ = ["DriverObserver", "ResyncGate", "run_feed"]

"""Hot path: receive a batch of frames, parse it, deliver it (or hold it while a snapshot is in
flight).

One await per *batch*: after a frame arrives, every message websockets has already received is
taken without suspending (:mod:`connectors.driver.ready`), parsed, and delivered as ONE list,
so the engine applies a run of marks together and the await/recv machinery is paid once per
batch. No logging, no tasks, no clock but the wall-clock stamp handed to ``deliver``.

Bad frames never end a connection: they are counted (``observer.frame_rejected``) and dropped.
A parser that raises anything but :class:`~connectors.errors.VenueDataError` has a bug: the
frame is counted as ``parser_error``, logged once, and the monitor stays up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn

from websockets.asyncio.client import ClientConnection

from connectors.driver.control import Restart
from connectors.driver.ready import ready_taker
from connectors.driver.resync import Resync
from connectors.driver.status import Deliver
from connectors.driver.watchdog import Liveness
from connectors.errors import VenueDataError
from connectors.events import Event, StreamExpired
from connectors.protocol import DriverObserver, Feed, ResyncRequest

_LOG = logging.getLogger(__name__)

# Frames taken per batch at most: bounds how long the first frame of a batch waits for the
# last one's parse before delivery (about a millisecond of work).
MAX_BATCH_FRAMES = 512
_FEED_BUG = ResyncRequest("parser_error")


class Reader:
    """Reads one feed's connections, one at a time (:meth:`read`)."""

    def __init__(
        self,
        feed: Feed,
        deliver: Deliver,
        observer: DriverObserver,
        resync: Resync,
        wall_ms: Callable[[], int],
    ) -> None:
        self._feed = feed
        self._deliver = deliver
        self._observer = observer
        self._resync = resync
        self._wall_ms = wall_ms
        self._private = feed.account is not None
        if self._private and feed.batch_parse is not None:
            # The frame-by-frame path is where a private stream's expiry ends the batch and a
            # rejected push asks for a resync; a batch decoder would skip both.
            raise ValueError(f"feed {feed.name}: a private feed must not have a batch_parse")
        self._parser_bug_logged = False

    async def read(self, ws: ClientConnection, live: Liveness) -> None:
        """Until the connection fails (raises) or the batch asks for a restart."""
        # Locals for everything touched per batch.
        recv = ws.recv
        take = ready_taker(ws)
        feed = self._feed
        batch_parse = feed.batch_parse
        after_events = feed.after_events
        deliver = self._deliver
        wall_ms = self._wall_ms
        received = self._observer.frames_received
        rejected = self._observer.frame_rejected
        venue = feed.venue
        resync = self._resync
        batch_max = MAX_BATCH_FRAMES
        frames: list[bytes] = []
        while True:
            frames.append(await recv(False))  # bytes: parsers decode JSON straight from UTF-8
            take(frames, batch_max)
            n = len(frames)
            live.frames += n
            received(venue, n)
            if live.stale:
                live.stale = False
                resync.recover()
            batch: list[Event]
            if batch_parse is not None:
                batch = []
                try:
                    errors = batch_parse(frames, batch)
                except Exception:  # noqa: BLE001 - a parser bug: redo the batch frame by frame
                    batch = self._parse_each(frames)
                else:
                    for exc in errors:
                        rejected(venue, exc.reason)
            else:
                batch = self._parse_each(frames)
            try:
                request = after_events(batch)
            except Exception:  # noqa: BLE001 - a feed bookkeeping bug: count, log once, resync
                self._parser_failed()
                request = _FEED_BUG
            if request is not None:
                resync.request(request.reason)
            if batch:
                if resync.buffer is None:
                    deliver(batch, wall_ms())
                else:
                    resync.hold(batch, wall_ms(), n)
            frames.clear()

    def _parse_each(self, frames: list[bytes]) -> list[Event]:
        """Frame by frame: feeds without a batch decoder, and a batch decoder's bug."""
        feed = self._feed
        parse = feed.parse
        private = self._private
        batch: list[Event] = []
        for frame in frames:
            try:
                events = parse(frame)
            except VenueDataError as exc:
                self._observer.frame_rejected(feed.venue, exc.reason)
                if private:
                    # A lost private push (absolute balances/positions) leaves the store wrong
                    # until the next timer resync: take a snapshot soon instead.
                    self._resync.request("rejected_frame")
                continue
            except Exception:  # noqa: BLE001 - a parser bug must not blind the monitor: count, log once
                self._parser_failed()
                if private:
                    self._resync.request("parser_error")
                continue
            if private:
                for ev in events:
                    if type(ev) is StreamExpired:
                        self._expired(batch, events, len(frames))
            batch += events
        return batch

    def _expired(self, before: list[Event], frame_events: list[Event], frames: int) -> NoReturn:
        """The stream ended: what came before the expiry still counts; the rest is dropped with
        the connection (the reconnect resyncs)."""
        try:
            self._feed.after_events(before + frame_events)  # the feed sees all it parsed
        except Exception:  # noqa: BLE001 - counted; the request is moot: the reconnect resyncs
            self._parser_failed()
        if before:
            self._resync.hold(before, self._wall_ms(), frames)
        raise Restart("stream_expired", immediate=True)

    def _parser_failed(self) -> None:
        self._observer.frame_rejected(self._feed.venue, "parser_error")
        if not self._parser_bug_logged:
            self._parser_bug_logged = True
            _LOG.exception("feed %s: parser raised a non-venue error (bug)", self._feed.name)

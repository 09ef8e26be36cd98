"""The daemon: feeds → engine → sinks, plus the probe/metrics HTTP server, under one TaskGroup.

Lifecycle::

    build     sinks, store, engine, metrics, feeds (a bad path or port: UsageError, exit 2)
    run       one task per feed (the shared driver), the engine's timer, one task per sink,
              the HTTP server, the shutdown watcher — all children of one asyncio.TaskGroup
    stop      SIGTERM/SIGINT (or the ``stop`` event) → feeds cancelled (no new input), the
              engine drained, every sink closed (flushed) within SINK_CLOSE_TIMEOUT_S → exit 0
    fail      any task raising ends the group; the traceback is logged at ERROR, sinks are
              still flushed, exit 1. Nothing is swallowed.

A second signal while draining gives up waiting on the sinks (their spools keep what they hold).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from connectors.clock import wall_ms
from connectors.driver import run_feed
from connectors.events import Event, FeedState, FeedStatus
from connectors.protocol import Feed
from monitor.config import Config
from monitor.engine import Engine
from monitor.http import HttpServer
from monitor.metrics import Metrics
from monitor.readiness import FeedHealth
from monitor.sinks.base import Sink
from monitor.sinks.build import build_sinks
from monitor.sinks.config_types import SINK_CLOSE_TIMEOUT_S
from monitor.sinks.trouble import DeliveryTrouble
from monitor.store import Store
from monitor.wiring import all_feeds

log = logging.getLogger(__name__)

TIMER_INTERVAL_S = 0.25
FEED_CANCEL_TIMEOUT_S = 5.0
_SYNCED = frozenset({FeedState.CONNECTED, FeedState.RESYNCED})


def configure_logging(level: str) -> None:
    """One line per record on stderr (tracebacks follow their record), level from the config."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class Daemon:
    """Everything the running daemon holds; built by :func:`run_daemon`, visible to the demo."""

    def __init__(
        self,
        cfg: Config,
        extra_sinks: Sequence[Sink] = (),
        *,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.store = Store()
        self.metrics = Metrics(store=self.store, top_positions=cfg.daemon.metrics_top_positions)
        # Delivery trouble becomes an alert on every *other* sink (monitor/sinks/trouble.py).
        self.trouble = DeliveryTrouble(
            clock,
            count_alert=self.metrics.alert,
            spool_limit_bytes=cfg.sinks.kafka.spool.max_bytes if cfg.sinks.kafka else 0,
        )
        self.sinks: list[Sink] = [
            *build_sinks(
                cfg,
                observer=self.metrics,
                on_spool_full=self.trouble.on_spool_full,
                on_delivery_failing=self.trouble.on_delivery_failing,
                on_delivery_resumed=self.trouble.on_delivery_resumed,
            ),
            *extra_sinks,
        ]
        self.trouble.attach(self.sinks)
        self.engine = Engine(
            self.store,
            lambda key: cfg.alert_config_for(*key),
            self.sinks,
            clock,
            observer=self.metrics,
        )
        self.feeds: list[Feed] = all_feeds(cfg)
        started = clock()
        for acc in cfg.accounts:  # staleness clocks start now: a feed that never syncs alerts
            self.engine.watch(acc.venue, acc.name, started)
        self.health = FeedHealth()
        for feed in self.feeds:
            self.health.register(feed.name)
        self.metrics.register_venues(v.venue for v in cfg.venues)
        self.metrics.register_feeds(f.name for f in self.feeds)
        self.metrics.register_sinks(s.name for s in self.sinks)
        self.metrics.register_alert_kinds()
        self.metrics.bind_levels(self.engine.levels)
        self.metrics.bind_feed_states(self.health.states)
        # Feeds whose first snapshot has not been delivered yet; see _first_sync.
        self._unsynced: set[str] = {f.name for f in self.feeds}
        # Set when the engine has deferred evaluations queued; the drain task works them off
        # over the next loop turns (bounded per turn) instead of waiting for the timer.
        self.work_pending = asyncio.Event()
        self.heap_frozen = False
        self.http = HttpServer(
            cfg.daemon.http.host,
            cfg.daemon.http.port,
            readiness=self.health.not_ready,
            where=cfg.daemon.http.source,
            # The pieces, not render_metrics: joining a 10k-account exposition (~8 MB) into one
            # buffer costs several ms of page faults in a single loop step.
            metrics=self.metrics.render_metrics_pieces,
        )

    def _first_sync(self, name: str) -> None:
        """``name`` delivered its first snapshot; after the last feed's, freeze the heap.

        The accounts, positions and tier tables loaded by the initial snapshots live as long as
        the daemon. Moved out of the collector's reach (gc.freeze), full collections stop
        traversing them: otherwise every gen-2 collection provoked by a scrape's garbage or a
        burst of ticks walks the whole book, a pause of tens of ms on the alert path.
        """
        self._unsynced.discard(name)
        if self._unsynced or self.heap_frozen:
            return
        self.heap_frozen = True
        gc.collect()
        gc.freeze()
        log.info("daemon: initial snapshots loaded; %d objects frozen", gc.get_freeze_count())

    def deliver_for(self, feed: Feed) -> Callable[[list[Event], int], None]:
        name = feed.name
        observe = self.health.observe
        handle = self.engine.handle
        feed_event = self.metrics.feed_event
        unsynced = self._unsynced
        first_sync = self._first_sync
        pending_work = self.engine.pending_work
        work_pending = self.work_pending

        def deliver(events: list[Event], recv_ms: int) -> None:
            observe(name, events)
            handle(events, recv_ms)
            if pending_work():
                work_pending.set()
            feed_event(name, recv_ms / 1000.0)  # O(1): the age gauge is computed at scrape time
            # The driver reports `connected` right after delivering the first snapshot, alone
            # in its batch: a cheap test, and only until this feed's first one.
            if name in unsynced and len(events) == 1:
                ev = events[0]
                if type(ev) is FeedStatus and ev.state in _SYNCED:
                    first_sync(name)

        return deliver


async def run_daemon(
    cfg: Config,
    *,
    stop: asyncio.Event | None = None,
    extra_sinks: Sequence[Sink] = (),
    handle_signals: bool = True,
    on_started: Callable[[Daemon], None] | None = None,
) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT); 0 after a clean drain, 1 if a task failed.

    ``on_started`` is called once the HTTP server listens and every task is running (the demo
    and tests read the bound port and the store from it).
    """
    stop = asyncio.Event() if stop is None else stop
    daemon = Daemon(cfg, extra_sinks)
    await daemon.http.start()  # a busy port is a UsageError before anything else starts
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    main_task = asyncio.current_task()
    forced = False

    def on_signal(signum: int) -> None:
        nonlocal forced
        if not stop.is_set():
            log.info("daemon: %s received, draining", signal.Signals(signum).name)
            stop.set()
        elif main_task is not None and not forced:
            forced = True
            log.warning("daemon: second signal, not waiting for the sinks any longer")
            main_task.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    status = 0
    try:
        log.info(
            "daemon: %d feeds, %d sinks, http on %s:%d",
            len(daemon.feeds),
            len(daemon.sinks),
            cfg.daemon.http.host,
            daemon.http.port,
        )
        try:
            async with asyncio.TaskGroup() as tg:
                feed_tasks = [
                    tg.create_task(
                        run_feed(feed, daemon.deliver_for(feed), observer=daemon.metrics),
                        name=f"feed {feed.name}",
                    )
                    for feed in daemon.feeds
                ]
                background = [
                    tg.create_task(_timers(daemon), name="engine timers"),
                    tg.create_task(_drain_pending(daemon), name="engine queue"),
                    tg.create_task(daemon.http.serve(), name="http"),
                    *(tg.create_task(s.run(), name=f"sink {s.name}") for s in daemon.sinks),
                ]
                if on_started is not None:
                    on_started(daemon)
                await stop.wait()
                log.info("daemon: stopping feeds")
                for task in feed_tasks:
                    task.cancel()
                await asyncio.wait(feed_tasks, timeout=FEED_CANCEL_TIMEOUT_S)
                status = await _flush(daemon)
                for task in background:
                    task.cancel()
        except* Exception as group:
            for exc in group.exceptions:
                log.error(
                    "daemon: task failed: %s",
                    _describe(exc),
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
            # Whatever the engine already handed over is still worth delivering.
            await _flush(daemon)
            status = 1
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await daemon.http.close()
        await asyncio.gather(*(f.close() for f in daemon.feeds), return_exceptions=True)
        if daemon.heap_frozen:
            gc.unfreeze()  # an embedding process (the tests) gets its collector back
    log.info("daemon: stopped (status %d)", status)
    return status


async def _timers(daemon: Daemon) -> None:
    """Time-driven policy (cooldowns, staleness) even when no tick arrives."""
    while True:
        await asyncio.sleep(TIMER_INTERVAL_S)
        daemon.engine.tick_timers(daemon.clock())
        if daemon.engine.pending_work():
            daemon.work_pending.set()


async def _drain_pending(daemon: Daemon) -> None:
    """Work off the engine's deferred evaluations, one bounded slice per loop turn, so feeds
    and sinks run between slices and the queue empties within a few turns."""
    engine = daemon.engine
    wake = daemon.work_pending
    while True:
        await wake.wait()
        wake.clear()
        while engine.pending_work():
            engine.drain_pending()
            await asyncio.sleep(0)  # yield the loop between slices, not a wait


async def _flush(daemon: Daemon) -> int:
    """Drain the engine, then close every sink concurrently, each within the timeout."""
    daemon.engine.drain()

    async def close(sink: Sink) -> bool:
        try:
            async with asyncio.timeout(SINK_CLOSE_TIMEOUT_S):
                await sink.close()
        except TimeoutError:
            log.error(
                "daemon: sink %s did not flush within %.0f s; %d alerts pending",
                sink.name,
                SINK_CLOSE_TIMEOUT_S,
                sink.pending(),
            )
            return False
        except Exception:
            log.exception(
                "daemon: sink %s failed to close; %d alerts pending", sink.name, sink.pending()
            )
            return False
        return True

    results = await asyncio.gather(*(close(s) for s in daemon.sinks))
    return 0 if all(results) else 1


def _describe(exc: BaseException) -> str:
    with contextlib.suppress(Exception):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__

"""Kafka sink: alerts to ``marginwatch.alerts``, account states to the compacted state topic.

Tick path: :meth:`KafkaSink.submit` appends to a deque and wakes the run task; nothing awaits a
broker. The run task sends in *rounds* (see :mod:`monitor.sinks.kafka_batch`): up to
``ROUND_MAX`` alerts cut into per-partition record batches (``acks=all``, ``max_batch_bytes``)
and handed to the producer. Up to ``ROUNDS_IN_FLIGHT`` rounds are in flight; they are retired
strictly in submission order, so what is acknowledged is always a prefix of what was sent.
When any round fails (broker gone, request timeout) the sink stops handing over, waits for every
round in flight to be answered (so none can land after the replay), and writes every
unretired round and the queue to the spool, in order. Until the spool is empty every new alert
goes behind it on disk, so each account's alerts leave in the order they were submitted. After
a backoff the sink makes a new producer, sets up the topics (a broker may come back empty) and
replays the spool first, also a few rounds at a time; a replay round's records leave the spool
when it is retired.

Delivery is at-least-once: a failed round, and any round after it, is spooled whole and sent
again (even if some of its batches were acknowledged); consumers drop duplicates by alert id.
A spool that cannot be written (disk full, I/O error) loses nothing either: the records stay in
the spool's in-memory overflow, in order, and the sink reports ``spool_full``; the spool writes
them to disk once it can.

State documents are latest-wins per account: they wait in a dict (a newer one replaces an
unsent older one) and are not spooled; the engine republishes state on start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from connectors.backoff import Backoff
from monitor.errors import DeliveryError
from monitor.sinks.config_types import KafkaConfig
from monitor.sinks.delivery import (
    Envelope,
    EnvelopeError,
    FailingReport,
    await_stopped,
    pause,
)
from monitor.sinks.kafka_admin import TopicSetupError, client_options, ensure_topics
from monitor.sinks.kafka_batch import (
    ROUND_MAX,
    ROUNDS_IN_FLIGHT,
    CachedPartitioner,
    Round,
    alert_records,
    envelope_records,
    send_round,
)
from monitor.sinks.observer import NULL_OBSERVER, DeliveryObserver
from monitor.sinks.spool import Spool
from rules.alert_doc import Alert, StateDocument

log = logging.getLogger(__name__)

_STOP_PRODUCER_S = 5.0
_T = TypeVar("_T")

# Failures that mean "the broker cannot take it now": spool and retry. Anything else is a bug
# and propagates (run fails visibly; what was in memory is spooled on the way out).
_RETRYABLE = (KafkaError, OSError, TimeoutError, DeliveryError)


class KafkaSink:
    """At-least-once alert delivery to Kafka with a durable spool. See the module docstring."""

    def __init__(
        self,
        cfg: KafkaConfig,
        *,
        observer: DeliveryObserver = NULL_OBSERVER,
        on_spool_full: Callable[[str, int], None] | None = None,
        on_delivery_failing: Callable[[str, str], None] | None = None,
        on_delivery_resumed: Callable[[str], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._cfg = cfg
        self._observer = observer
        self._on_spool_full = on_spool_full
        self._backoff = backoff or Backoff(
            initial_s=cfg.backoff_initial_s, max_s=cfg.backoff_max_s, floor=0.5
        )
        self._report = FailingReport(
            self.name,
            observer,
            self._backoff,
            on_delivery_failing,
            log,
            on_resumed=on_delivery_resumed,
        )
        self._spool_failing = False  # the last spool write failed (logged once per episode)
        self._full_depth: int | None = None  # set by the spool (maybe in a worker thread)
        self._spool = Spool(
            cfg.spool.directory,
            max_bytes=cfg.spool.max_bytes,
            max_records=cfg.spool.max_records,
            fsync=cfg.spool.fsync,
            on_full=self._note_spool_full,
        )
        self._queue: deque[Alert] = deque()
        #: Rounds handed to the producer and not yet retired, oldest first.
        self._rounds: deque[Round] = deque()
        self._inflight = 0  # alerts in direct (not spooled) rounds of ``_rounds``
        self._states: dict[bytes, StateDocument] = {}
        self._wake = asyncio.Event()
        #: Set while a producer is connected and the topics are set up (readiness probes).
        self.connected = asyncio.Event()
        self._stopped = asyncio.Event()
        self._spool_op: asyncio.Future[Any] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._running = False
        self._stopping = False
        self._closed = False
        self._last_setup_error = ""
        self._partitioner = CachedPartitioner()
        self._failed_count = 0  # alerts in the rounds that were in flight when sending failed
        #: Alerts acknowledged by the broker since start (including spool replays).
        self.delivered = 0
        observer.spool_depth(self.name, self._spool.depth())

    # -- the Sink protocol -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "kafka"

    def submit(self, alert: Alert) -> None:
        if self._closed:
            raise DeliveryError(f"kafka: alert {alert.id} submitted after close")
        self._queue.append(alert)
        self._wake.set()

    def submit_state(self, state: StateDocument) -> None:
        self._states[state.key()] = state
        self._wake.set()

    def pending(self) -> int:
        return len(self._queue) + self._inflight + self._spool.depth()

    def spool_depth(self) -> int:
        return self._spool.depth()

    def spool_usage(self) -> tuple[int, int]:
        """(bytes of unacknowledged records on disk, the configured bound)."""
        return self._spool.disk_bytes(), self._spool.max_bytes

    @property
    def rounds_in_flight(self) -> int:
        """Rounds handed to the producer and not yet retired (diagnostics and tests)."""
        return len(self._rounds)

    async def run(self) -> None:
        if self._running or self._closed:
            raise RuntimeError("kafka: run() is already running or the sink is closed")
        self._running = True
        self._stopped.clear()
        self._task = asyncio.current_task()
        try:
            await self._connect_loop()
        finally:
            if self._spool_op is not None and not self._spool_op.done():
                await asyncio.wait([self._spool_op])  # a spool write in a thread must finish
            self._spool_memory_now()
            self._running = False
            self._stopped.set()

    async def close(self) -> None:
        """Deliver what is queued (bounded by ``close_timeout_s``), spool the rest, release."""
        if self._closed:
            return
        self._stopping = True
        self._wake.set()
        if self._running:
            await await_stopped(
                self._stopped, self._task, self._cfg.close_timeout_s, self._warn_close_timeout
            )
        else:
            self._spool_memory_now()
        self._closed = True
        self._spool.close()

    def _warn_close_timeout(self) -> None:
        log.warning("kafka: close timed out; spooling %d alerts", self.pending())

    # -- connection lifecycle --------------------------------------------------------------------

    async def _connect_loop(self) -> None:
        while True:
            producer: AIOKafkaProducer | None = None
            try:
                producer = await self._connect()
                self.connected.set()
                await self._pump(producer)
                return  # stopping, and everything reached the broker
            except _RETRYABLE as exc:
                await self._outage(exc)
            finally:
                self.connected.clear()
                if producer is not None:
                    await self._stop_producer(producer)
            if self._stopping:
                return  # the rest stays in the spool for the next start
            await self._pause(self._backoff.next_delay())

    async def _connect(self) -> AIOKafkaProducer:
        try:
            await ensure_topics(self._cfg)
        except TopicSetupError as exc:
            if str(exc) != self._last_setup_error:
                self._last_setup_error = str(exc)
                log.error("%s", exc)
            raise
        cfg = self._cfg
        producer = AIOKafkaProducer(
            **client_options(cfg),
            acks="all",
            # Alerts go in closed batches the sink cuts itself (no linger: what piled up while
            # the previous batches were on the wire goes at once); linger applies to states.
            linger_ms=cfg.linger_ms,
            max_batch_size=cfg.max_batch_bytes,
            # Idempotence would need a broker with producer-id support. Per-account order comes
            # from aiokafka (one request per broker in flight, batches of a partition in order)
            # and from retiring rounds in order; duplicates are dropped by alert id.
            enable_idempotence=False,
            compression_type=cfg.compression,
            partitioner=self._partitioner,
        )
        try:
            await producer.start()
        except BaseException:
            await self._stop_producer(producer)
            raise
        return producer

    async def _stop_producer(self, producer: AIOKafkaProducer) -> None:
        # Every round is answered before the pump returns or raises, so stop has nothing to
        # flush; the bound only guards against a wedged connection (or a cancelled pump).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), _STOP_PRODUCER_S)

    async def _outage(self, exc: BaseException) -> None:
        reason = type(exc).__name__
        await self._to_spool(self._take_memory())
        failed, self._failed_count = self._failed_count, 0
        self._report.outage(
            reason,
            failed,
            "kafka: broker unreachable (%s); alerts spool to %s",
            reason,
            self._cfg.spool.directory,
        )

    async def _pause(self, seconds: float) -> None:
        """Back off, spooling new alerts as they arrive (so they are on disk, in order)."""
        await pause(seconds, self._wake, lambda: self._stopping, self._spool_queued)

    async def _spool_queued(self) -> None:
        if self._queue:
            await self._to_spool(self._take_memory())

    # -- delivery --------------------------------------------------------------------------------

    async def _pump(self, producer: AIOKafkaProducer) -> None:
        rounds = self._rounds
        spool_ahead = 0  # spool records in replay rounds in flight (peeked, not yet acked)
        while True:
            self._wake.clear()  # rounds being answered set it too
            if any(r.error is not None for r in rounds):
                # Stop handing over; raise once every round is answered, so nothing of ours
                # can land after the replay that follows.
                if all(r.done for r in rounds):
                    self._failed_count = sum(r.count for r in rounds)
                    raise next(r.error for r in rounds if r.error is not None)
                await self._wake.wait()
                continue
            while rounds and rounds[0].done:
                done = rounds[0]
                await self._retire(done)
                rounds.popleft()
                spool_ahead -= done.spooled
            if len(rounds) < ROUNDS_IN_FLIGHT:
                nxt = await self._next_round(spool_ahead)
                if nxt is not None:
                    spool_ahead += nxt[0].spooled
                    await self._hand_over(producer, *nxt)
                    continue
            if not rounds and self._stopping:
                return
            await self._wake.wait()

    async def _next_round(self, spool_ahead: int) -> tuple[Round, list[bytes]] | None:
        """The next round to hand over (with its spool records): spool first, queue, states."""
        if self._spool.depth():
            if self._queue:
                # New alerts queue up behind the spooled ones: one FIFO, per-account order kept.
                await self._to_spool(self._take_queue())
            if self._spool.depth() > spool_ahead:
                peeked = await self._spool_call(self._spool.peek, spool_ahead + ROUND_MAX)
                raws = peeked[spool_ahead:]
                return Round(self._wake, spooled=len(raws)), raws
        elif self._queue:
            queue = self._queue
            alerts = [queue.popleft() for _ in range(min(len(queue), ROUND_MAX))]
            self._inflight += len(alerts)
            return Round(self._wake, alerts=alerts), []
        if self._states:
            return Round(self._wake), []
        return None

    async def _hand_over(self, producer: AIOKafkaProducer, rnd: Round, raws: list[bytes]) -> None:
        """Give ``rnd`` (and the pending states) to the producer; failures land in ``rnd``."""
        self._rounds.append(rnd)
        states, self._states = self._states, {}
        rnd.states = list(states.items())
        try:
            if rnd.spooled:
                envelopes = self._decode(raws)
                rnd.count = len(envelopes)
                records = envelope_records(envelopes)
            else:
                records = alert_records(rnd.alerts)
            if rnd.count:
                await send_round(producer, self._cfg.alerts_topic, self._partitioner, records, rnd)
            for key, doc in rnd.states:
                rnd.watch(await producer.send(self._cfg.state_topic, doc.to_json(), key=key))
        except _RETRYABLE as exc:
            rnd.submitted(exc)
        else:
            rnd.submitted()

    def _decode(self, raws: list[bytes]) -> list[Envelope]:
        envelopes: list[Envelope] = []
        for raw in raws:
            try:
                envelopes.append(Envelope.decode(raw))
            except EnvelopeError:
                # It passed the CRC, so we wrote it: a format bug, not a broker problem. It
                # cannot be sent, so it is lost: say so loudly (a delivery alert elsewhere).
                self._report.fault(
                    "EnvelopeError",
                    1,
                    "kafka: undecodable spooled record skipped (%d bytes)",
                    len(raw),
                )
        return envelopes

    async def _retire(self, rnd: Round) -> None:
        """The oldest round is acknowledged in full: forget it (from the spool, for a replay)."""
        if rnd.spooled:
            await self._spool_call(self._spool.ack, rnd.spooled)
            self._observer.spool_depth(self.name, self._spool.depth())
        else:
            self._inflight -= len(rnd.alerts)
        self._delivered(rnd.count)

    def _delivered(self, n: int) -> None:
        self.delivered += n
        if n:
            self._observer.delivered(self.name, n)
        if self._report.delivered():
            log.info("kafka: delivering again; %d alerts still spooled", self._spool.depth())

    # -- spool -----------------------------------------------------------------------------------

    def _take_queue(self) -> list[Envelope]:
        taken = [Envelope.of_alert(a) for a in self._queue]
        self._queue.clear()
        return taken

    def _take_memory(self) -> list[Envelope]:
        """Everything not yet acknowledged and not on disk, oldest first; the rounds are dropped.

        Replay rounds are still in the spool (unacked) and stay there, ahead of the rest; their
        state documents, and those of direct rounds, go back to wait for the next producer.
        """
        taken: list[Envelope] = []
        for rnd in self._rounds:
            taken.extend(rnd.envelopes())
            for key, doc in rnd.states:
                self._states.setdefault(key, doc)  # unless a newer one arrived meanwhile
        self._rounds.clear()
        self._inflight = 0
        taken.extend(self._take_queue())
        return taken

    async def _to_spool(self, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        raws = [e.encode() for e in envelopes]
        self._after_spool_write(await self._spool_call(self._spool_write, raws), len(raws))

    def _spool_write(self, raws: list[bytes]) -> OSError | None:
        """To disk, or, if the disk fails, into the spool's memory: the records the caller took
        out of memory are in the spool (still FIFO) whatever happens. Runs in a worker thread;
        returns the write error instead of raising it."""
        try:
            self._spool.append(raws)
        except OSError as exc:
            self._spool.hold(raws)
            return exc
        except BaseException:
            self._spool.hold(raws)  # never lose them, even to a bug; the bug still propagates
            raise
        return None

    async def _spool_call(self, fn: Callable[..., _T], *args: Any) -> _T:
        # File I/O (fsync) stays off the event loop. Shielded: once a write has started, a
        # cancellation must not leave the records neither in memory nor on disk.
        fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self._spool_op = fut
        return await asyncio.shield(fut)

    def _spool_memory_now(self) -> None:
        """Shutdown path: write what is in memory to the spool synchronously."""
        envelopes = self._take_memory()
        if envelopes and not self._closed:
            error = self._spool_write([e.encode() for e in envelopes])
            log.info("kafka: %d undelivered alerts spooled for the next start", len(envelopes))
            self._after_spool_write(error, len(envelopes))

    def _note_spool_full(self, depth: int) -> None:
        self._full_depth = depth  # may run in a worker thread: only record it

    def _after_spool_write(self, error: OSError | None = None, n: int = 0) -> None:
        if error is not None:
            # Bounded label: the errno's name (ENOSPC, EIO), not the message.
            code = errno.errorcode.get(error.errno or 0, type(error).__name__)
            self._observer.failed(self.name, n, f"spool_{code}")
            if not self._spool_failing:
                log.error(
                    "kafka: cannot write the spool %s (%s); %d alerts wait in memory",
                    self._cfg.spool.directory,
                    error.strerror or code,
                    self._spool.overflow_depth(),
                )
            self._spool_failing = True
        elif self._spool_failing and not self._spool.disk_failing:
            self._spool_failing = False
            log.info("kafka: spool %s writable again", self._cfg.spool.directory)
        self._observer.spool_depth(self.name, self._spool.depth())
        depth, self._full_depth = self._full_depth, None
        if depth is not None and self._on_spool_full is not None:
            self._on_spool_full(self.name, depth)

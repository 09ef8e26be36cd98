"""Kafka sink: alerts to ``marginwatch.alerts``, account states to the compacted state topic.

Tick path: :meth:`KafkaSink.submit` appends to a deque and wakes the run task; nothing awaits a
broker. The run task sends in *rounds*: up to ``ROUND_MAX`` alerts go to the producer with
``send`` (batched by aiokafka: ``acks=all``, ``linger_ms``, ``max_batch_size``), then the round's
acks are awaited together. A round that fails (broker gone, request timeout) is written to the
spool in order, and until the spool is empty every new alert goes behind it on disk, so each
account's alerts leave in the order they were submitted. After a backoff the sink makes a new
producer, sets up the topics (a broker may come back empty) and replays the spool first.

Delivery is at-least-once: a round that failed half-way is spooled whole and sent again;
consumers drop duplicates by alert id. State documents are latest-wins per account: they wait in
a dict (a newer one replaces an unsent older one) and are not spooled; the engine republishes
state on start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from monitor.errors import DeliveryError
from monitor.sinks.config_types import KafkaConfig
from monitor.sinks.delivery import Backoff, Envelope, EnvelopeError
from monitor.sinks.kafka_admin import TopicSetupError, client_options, ensure_topics
from monitor.sinks.observer import NULL_OBSERVER, DeliveryObserver
from monitor.spool import Spool
from rules.alert_doc import Alert, StateDocument

log = logging.getLogger(__name__)

#: Alerts per send round: large enough to fill batches, small enough to bound a re-send.
ROUND_MAX = 4096
_STOP_PRODUCER_S = 5.0
_T = TypeVar("_T")

# Failures that mean "the broker cannot take it now": spool and retry. Anything else is a bug
# and propagates (run fails visibly; what was in memory is spooled on the way out).
_RETRYABLE = (KafkaError, OSError, TimeoutError, DeliveryError)


class CachedPartitioner:
    """Kafka's default key partitioner (murmur2, as the Java client), memoised per key.

    aiokafka computes murmur2 in pure Python for every message; alert keys repeat (one per
    account), so the answer is cached per (key, partition list). Same partition as any other
    producer of the same key.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._cache: dict[tuple[bytes, tuple[int, ...]], int] = {}
        self._max_keys = max_keys

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        slot = (key, tuple(all_partitions))
        partition = self._cache.get(slot)
        if partition is None:
            if len(self._cache) >= self._max_keys:
                self._cache.clear()
            partition = int(DefaultPartitioner()(key, all_partitions, available))
            self._cache[slot] = partition
        return partition


class KafkaSink:
    """At-least-once alert delivery to Kafka with a durable spool. See the module docstring."""

    def __init__(
        self,
        cfg: KafkaConfig,
        *,
        observer: DeliveryObserver = NULL_OBSERVER,
        on_spool_full: Callable[[str, int], None] | None = None,
        on_delivery_failing: Callable[[str, str], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._cfg = cfg
        self._observer = observer
        self._on_spool_full = on_spool_full
        self._on_delivery_failing = on_delivery_failing
        self._backoff = backoff or Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        self._full_depth: int | None = None  # set by the spool (maybe in a worker thread)
        self._spool = Spool(
            cfg.spool.directory,
            max_bytes=cfg.spool.max_bytes,
            max_records=cfg.spool.max_records,
            fsync=cfg.spool.fsync,
            on_full=self._note_spool_full,
        )
        self._queue: deque[Alert] = deque()
        self._inflight: list[Envelope] = []
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
        self._failing = False
        self._last_setup_error = ""
        self._round_size = 0  # alerts in the round being sent (for the failure count)
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
        return len(self._queue) + len(self._inflight) + self._spool.depth()

    def spool_depth(self) -> int:
        return self._spool.depth()

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
            try:
                await asyncio.wait_for(self._stopped.wait(), self._cfg.close_timeout_s)
            except TimeoutError:
                log.warning("kafka: close timed out; spooling %d alerts", self.pending())
                if self._task is not None:
                    self._task.cancel()
                await self._stopped.wait()
        else:
            self._spool_memory_now()
        self._closed = True
        self._spool.close()

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
            await self._pause(self._backoff.delay())

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
            linger_ms=cfg.linger_ms,
            max_batch_size=cfg.max_batch_bytes,
            # Idempotence would need a broker with producer-id support; per-account order comes
            # from one round in flight and the spool, duplicates are dropped by alert id.
            enable_idempotence=False,
            compression_type=cfg.compression,
            partitioner=CachedPartitioner(),
        )
        try:
            await producer.start()
        except BaseException:
            await self._stop_producer(producer)
            raise
        return producer

    async def _stop_producer(self, producer: AIOKafkaProducer) -> None:
        # Every round's futures are resolved before we get here, so stop has nothing to flush;
        # the bound only guards against a wedged connection.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), _STOP_PRODUCER_S)

    async def _outage(self, exc: BaseException) -> None:
        reason = type(exc).__name__
        await self._to_spool(self._take_memory())
        self._observer.failed(self.name, self._round_size, reason)
        self._round_size = 0
        if not self._failing:
            self._failing = True
            log.warning(
                "kafka: broker unreachable (%s); alerts spool to %s",
                reason,
                self._cfg.spool.directory,
            )
            if self._on_delivery_failing is not None:
                self._on_delivery_failing(self.name, reason)

    async def _pause(self, seconds: float) -> None:
        """Back off, spooling new alerts as they arrive (so they are on disk, in order)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stopping:
            self._wake.clear()
            if self._queue:
                await self._to_spool(self._take_memory())
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    # -- delivery --------------------------------------------------------------------------------

    async def _pump(self, producer: AIOKafkaProducer) -> None:
        while True:
            self._wake.clear()
            if self._spool.depth():
                await self._replay_round(producer)
            elif self._queue:
                await self._direct_round(producer)
            elif self._states:
                await self._send_round(producer, [])
            elif self._stopping:
                return
            else:
                await self._wake.wait()

    async def _replay_round(self, producer: AIOKafkaProducer) -> None:
        if self._queue:
            # New alerts queue up behind the spooled ones: one FIFO, per-account order kept.
            await self._to_spool(self._take_memory())
        raws = await self._spool_call(self._spool.peek, ROUND_MAX)
        envelopes: list[Envelope] = []
        for raw in raws:
            try:
                envelopes.append(Envelope.decode(raw))
            except EnvelopeError:
                # It passed the CRC, so we wrote it: a format bug, not a broker problem.
                log.error("kafka: undecodable spooled record skipped (%d bytes)", len(raw))
                self._observer.failed(self.name, 1, "EnvelopeError")
        await self._send_round(producer, envelopes)
        await self._spool_call(self._spool.ack, len(raws))
        self._observer.spool_depth(self.name, self._spool.depth())

    async def _direct_round(self, producer: AIOKafkaProducer) -> None:
        n = min(len(self._queue), ROUND_MAX)
        self._inflight = [Envelope.of_alert(self._queue.popleft()) for _ in range(n)]
        await self._send_round(producer, self._inflight)
        self._inflight = []

    async def _send_round(self, producer: AIOKafkaProducer, envelopes: Sequence[Envelope]) -> None:
        """Send alerts (and pending states), await all acks; raise the first failure."""
        states, self._states = self._states, {}
        self._round_size = len(envelopes)
        futures: list[asyncio.Future[Any]] = []
        state_futures: list[tuple[bytes, StateDocument, asyncio.Future[Any]]] = []
        first_error: BaseException | None = None
        try:
            topic = self._cfg.alerts_topic
            for env in envelopes:
                fut = await producer.send(topic, env.value, key=env.key, headers=list(env.headers))
                futures.append(fut)
            for key, doc in states.items():
                fut = await producer.send(self._cfg.state_topic, doc.to_json(), key=key)
                state_futures.append((key, doc, fut))
        except _RETRYABLE as exc:
            first_error = exc
        # Wait for whatever was handed over, even after a failure, so no send of this round can
        # land after the replay that follows it.
        results = await asyncio.gather(*futures, return_exceptions=True)
        state_results = await asyncio.gather(
            *(f for _, _, f in state_futures), return_exceptions=True
        )
        sent_states = {key for key, _, _ in state_futures}
        for (key, doc, _), result in zip(state_futures, state_results, strict=True):
            if isinstance(result, BaseException):
                self._states.setdefault(key, doc)  # unless a newer one arrived meanwhile
        for key, doc in states.items():
            if key not in sent_states:
                self._states.setdefault(key, doc)
        for result in (*results, *state_results):
            if isinstance(result, BaseException) and first_error is None:
                first_error = result
        if first_error is not None:
            raise first_error
        self._delivered(len(envelopes))

    def _delivered(self, n: int) -> None:
        self.delivered += n
        if n:
            self._observer.delivered(self.name, n)
        if self._failing:
            self._failing = False
            self._backoff.reset()
            log.info("kafka: delivering again; %d alerts still spooled", self._spool.depth())

    # -- spool -----------------------------------------------------------------------------------

    def _take_memory(self) -> list[Envelope]:
        """Everything not yet acknowledged and not on disk, oldest first."""
        taken = self._inflight
        self._inflight = []
        taken.extend(Envelope.of_alert(a) for a in self._queue)
        self._queue.clear()
        return taken

    async def _to_spool(self, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        await self._spool_call(self._spool.append, [e.encode() for e in envelopes])
        self._after_spool_write()

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
            self._spool.append([e.encode() for e in envelopes])
            log.info("kafka: %d undelivered alerts spooled for the next start", len(envelopes))
            self._after_spool_write()

    def _note_spool_full(self, depth: int) -> None:
        self._full_depth = depth  # may run in a worker thread: only record it

    def _after_spool_write(self) -> None:
        self._observer.spool_depth(self.name, self._spool.depth())
        depth, self._full_depth = self._full_depth, None
        if depth is not None and self._on_spool_full is not None:
            self._on_spool_full(self.name, depth)

"""Kafka sink: alerts to ``marginwatch.alerts``, account states to the compacted state topic.

Write-ahead: :meth:`KafkaSink.submit` encodes the alert on its own (the kernel in
:mod:`monitor.sinks.alert_json`; one that does not encode is repaired, see
:mod:`monitor.sinks.encode`) and appends it to the durable spool before anything else, one
``write`` on the tick path and no fsync, so from the moment ``submit`` returns the alert is in
the kernel's page cache and survives the process being killed at any moment. Nothing on the
tick path awaits a broker. The run task makes what was appended durable as the spool's fsync
policy says (one fsync in a worker thread per round, before the round leaves) and sends it; a
record leaves the spool when the broker has acknowledged it. After a crash, whatever the spool
still holds is sent first on the next start (at-least-once: the alert id is stable and
consumers drop duplicates by it).

Rounds (see :mod:`monitor.sinks.kafka_batch`): up to ``ROUND_MAX`` records cut into
per-partition record batches (``acks=all``, ``max_batch_bytes``) and handed to the producer, up
to ``ROUNDS_IN_FLIGHT`` at a time, retired strictly in order, so what is acknowledged is always
the head of the spool: retiring a round acks its records there. Records appended in this run go
out from an in-memory mirror of the spool's tail (no read-back); after a restart or an outage
the spool is *replayed* (read back from its head) until every record in it is in flight, then
the mirror takes over again. One FIFO for everything keeps each account's alerts in order.

An outage is noticed by the first of: a failed round (connection lost, batch expired) or a round
unanswered for ``request_timeout_ms`` (the sink's own watchdog: aiokafka alone can take twice
that). Either reports ``delivery_failing`` once per outage. After a failed round the sink stops
handing over, waits for every round in flight to be answered (so none can land after the
replay), drops them (their records are still in the spool), and after a backoff makes a new
producer, sets up the topics (a broker may come back empty) and replays the spool.

A spool that cannot be written (disk full, I/O error) or is past its bound loses nothing while
the process lives: the records wait in the spool's in-memory overflow, in order, and the sink
reports ``spool_full`` (that state is not durable against kill -9, hence the alert); the spool
writes them to disk once it can. State documents are latest-wins per account: they wait in a dict (a
newer one replaces an unsent older one) and are not spooled; the engine republishes state on
start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from connectors.backoff import Backoff
from monitor.errors import DeliveryError
from monitor.sinks.alert_json import alert_json
from monitor.sinks.config_types import KafkaConfig
from monitor.sinks.delivery import Envelope, EnvelopeError, FailingReport, await_stopped, pause
from monitor.sinks.encode import encoded, state_json
from monitor.sinks.kafka_admin import TopicSetupError, client_options, ensure_topics
from monitor.sinks.kafka_batch import (
    ROUND_MAX,
    ROUNDS_IN_FLIGHT,
    CachedPartitioner,
    Record,
    RecordCache,
    Round,
    RoundWatchdog,
    envelope_records,
    send_round,
)
from monitor.sinks.observer import NULL_OBSERVER, DeliveryObserver
from monitor.sinks.spool import Spool
from rules.alert_doc import Alert, StateDocument

log = logging.getLogger(__name__)

_STOP_PRODUCER_S = 5.0

# Failures that mean "the broker cannot take it now": replay from the spool later. Anything
# else is a bug and propagates (run fails visibly; every alert is in the spool already).
_RETRYABLE = (KafkaError, OSError, TimeoutError, DeliveryError)


class KafkaSink:
    """At-least-once, write-ahead alert delivery to Kafka. See the module docstring."""

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
        self._full_depth: int | None = None
        self._spool = Spool(
            cfg.spool.directory,
            max_bytes=cfg.spool.max_bytes,
            max_records=cfg.spool.max_records,
            fsync=cfg.spool.fsync,
            on_full=self._note_spool_full,
        )
        #: The spool's tail appended in this run and not yet handed over, as it goes on the wire.
        self._mirror: deque[Record] = deque()
        #: The spool holds records ahead of the mirror (recovered, or left by an outage).
        self._replaying = self._spool.depth() > 0
        #: Rounds handed to the producer and not yet retired, oldest first.
        self._rounds: deque[Round] = deque()
        self._ahead = 0  # spool records covered by the rounds in ``_rounds``
        self._records = RecordCache()
        self._states: dict[bytes, StateDocument] = {}
        self._wake = asyncio.Event()
        #: Set while a producer is connected and the topics are set up (readiness probes).
        self.connected = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._watchdog = RoundWatchdog(self._rounds, cfg.request_timeout_ms / 1000, self._overdue)
        self._running = False
        self._stopping = False
        self._closed = False
        self._last_setup_error = ""
        self._reported_depth = -1
        self._partitioner = CachedPartitioner()
        self._failed_count = 0  # alerts in the rounds that were in flight when sending failed
        #: Alerts acknowledged by the broker since start (including spool replays).
        self.delivered = 0
        #: Alerts that did not encode as they were and were spooled repaired.
        self.repaired = 0
        #: Start-up problems with the topics that do not stop delivery (partition counts).
        self.topic_problems: list[str] = []
        observer.spool_depth(self.name, self._spool.depth())

    # -- the Sink protocol -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "kafka"

    def submit(self, alert: Alert) -> None:
        if self._closed:
            raise DeliveryError(f"kafka: alert {alert.id} submitted after close")
        try:
            value = alert_json(alert)  # the kernel; its plain path is alert.to_json()
        except Exception:  # noqa: BLE001 - the alert's values: plain path, else repaired
            alert, value, repaired = encoded(alert, self.name)
            if repaired:
                self.repaired += 1
                self._observer.repaired(self.name, 1)
        key, headers, prefix = self._records.of(alert)
        raw = prefix + value
        # Write-ahead, on the tick path: one write() into the page cache (no fsync here), so a
        # kill -9 right after submit returns cannot lose the alert.
        error: OSError | None = None
        try:
            self._spool.append_one(raw)
        except OSError as exc:
            self._spool.hold((raw,))  # in memory, in order; written to disk once it can be
            error = exc
        if not self._replaying:
            self._mirror.append((key, value, headers))
        if error is not None or self._full_depth is not None or self._spool_failing:
            self._after_spool_write(error, 1)
        self._wake.set()

    def submit_state(self, state: StateDocument) -> None:
        self._states[state.key()] = state
        self._wake.set()

    def pending(self) -> int:
        """Alerts not yet acknowledged: every one of them is in the spool."""
        return self._spool.depth()

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
            self._drop_rounds()
            self._running = False
            self._stopped.set()

    async def close(self) -> None:
        """Deliver what is queued (bounded by ``close_timeout_s``); the rest stays spooled."""
        if self._closed:
            return
        self._stopping = True
        self._wake.set()
        if self._running:
            await await_stopped(
                self._stopped, self._task, self._cfg.close_timeout_s, self._warn_close_timeout
            )
        self._closed = True
        depth = self._spool.depth()
        self._spool.close()  # fsyncs what was appended since the last sync
        if depth:
            log.info("kafka: %d undelivered alerts stay spooled for the next start", depth)

    def _warn_close_timeout(self) -> None:
        log.warning("kafka: close timed out; %d alerts stay spooled", self.pending())

    # -- connection lifecycle --------------------------------------------------------------------

    async def _connect_loop(self) -> None:
        while True:
            producer: AIOKafkaProducer | None = None
            try:
                producer = await self._connect()
                self.connected.set()
                await self._pump(producer)
            except _RETRYABLE as exc:
                self._outage(exc)
            else:
                return  # stopping, and everything reached the broker
            finally:
                self.connected.clear()
                if producer is not None:
                    await self._stop_producer(producer)
            if self._stopping:
                return  # the rest stays in the spool for the next start
            await pause(
                self._backoff.next_delay(), self._wake, lambda: self._stopping, self._on_pause_wake
            )

    async def _on_pause_wake(self) -> None:
        self._report_depth()

    async def _connect(self) -> AIOKafkaProducer:
        try:
            problems = await ensure_topics(self._cfg)
        except TopicSetupError as exc:
            if str(exc) != self._last_setup_error:
                self._last_setup_error = str(exc)
                log.error("%s", exc)
            raise
        for problem in problems:
            if problem not in self.topic_problems:  # once per distinct problem, not per connect
                self.topic_problems.append(problem)
                log.error("%s", problem)
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

    def _outage(self, exc: BaseException) -> None:
        reason = type(exc).__name__
        self._drop_rounds()
        failed, self._failed_count = self._failed_count, 0
        self._report.outage(
            reason,
            failed,
            "kafka: broker unreachable (%s); alerts stay in the spool %s",
            reason,
            self._cfg.spool.directory,
        )
        self._report_depth()

    def _drop_rounds(self) -> None:
        """Forget the rounds in flight: their records are still at the head of the spool and
        go again by a replay; their state documents go back to wait for the next producer."""
        for rnd in self._rounds:
            for key, doc in rnd.states:
                self._states.setdefault(key, doc)  # unless a newer one arrived meanwhile
        self._rounds.clear()
        self._ahead = 0
        self._mirror.clear()
        self._replaying = self._spool.depth() > 0
        self._watchdog.cancel()

    def _overdue(self, rnd: Round) -> None:
        self._report.outage(
            "RequestTimedOut",
            rnd.count,
            "kafka: no acknowledgement within request_timeout_ms (%d ms); "
            "alerts stay in the spool %s",
            self._cfg.request_timeout_ms,
            self._cfg.spool.directory,
        )

    # -- delivery --------------------------------------------------------------------------------

    async def _pump(self, producer: AIOKafkaProducer) -> None:
        rounds = self._rounds
        while True:
            self._wake.clear()  # rounds being answered set it too
            self._report_depth()
            if any(r.error is not None for r in rounds):
                # Stop handing over; raise once every round is answered, so nothing of ours
                # can land after the replay that follows.
                if all(r.done for r in rounds):
                    self._failed_count = sum(r.count for r in rounds)
                    raise next(r.error for r in rounds if r.error is not None)
                await self._wake.wait()
                continue
            while rounds and rounds[0].done:
                self._retire(rounds.popleft())
            self._watchdog.arm()
            if len(rounds) < ROUNDS_IN_FLIGHT:
                nxt = await self._next_round()
                if nxt is not None:
                    await self._hand_over(producer, *nxt)
                    continue
            if not rounds and self._stopping:
                return
            await self._wake.wait()

    async def _next_round(self) -> tuple[Round, list[Record]] | None:
        """The next round to hand over: the spool's head (replay) first, then the mirror."""
        if self._replaying:
            if self._spool.depth() > self._ahead:
                # Read back on the loop: the spool has one owner thread (the fsync job aside).
                raws = self._spool.peek(self._ahead + ROUND_MAX)[self._ahead :]
                await self._sync()
                envelopes = self._decode(raws)
                rnd = Round(self._wake, spooled=len(raws), count=len(envelopes))
                return rnd, list(envelope_records(envelopes))
            self._replaying = False  # all of the spool is in flight: new alerts use the mirror
        if self._mirror:
            n = min(len(self._mirror), ROUND_MAX)
            await self._sync()  # covers these n: they were appended before it started
            records = [self._mirror.popleft() for _ in range(n)]
            return Round(self._wake, spooled=n, count=n), records
        if self._states:
            return Round(self._wake), []
        return None

    async def _sync(self) -> None:
        """Make every record appended so far durable (fsync policy ``batch``), off the loop."""
        job = self._spool.sync_job()
        if job is None:
            return
        try:
            # Shielded: a started fsync finishes (and closes its descriptors) even if we stop.
            await asyncio.shield(asyncio.get_running_loop().run_in_executor(None, job))
        except OSError as exc:
            # Sent anyway: the broker may still take them; a power cut now could lose them.
            self._after_spool_write(exc, 0)

    async def _hand_over(
        self, producer: AIOKafkaProducer, rnd: Round, records: list[Record]
    ) -> None:
        """Give ``rnd`` (and the pending states) to the producer; failures land in ``rnd``."""
        rnd.handed_at = asyncio.get_running_loop().time()
        self._rounds.append(rnd)
        self._ahead += rnd.spooled
        self._watchdog.arm()
        states, self._states = self._states, {}
        rnd.states = list(states.items())
        try:
            if records:
                await send_round(producer, self._cfg.alerts_topic, self._partitioner, records, rnd)
            for key, doc in rnd.states:
                payload = state_json(doc, self.name)
                if payload is not None:
                    rnd.watch(await producer.send(self._cfg.state_topic, payload, key=key))
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

    def _retire(self, rnd: Round) -> None:
        """The oldest round is acknowledged in full: its records leave the spool's head."""
        self._spool.ack(rnd.spooled)
        self._ahead -= rnd.spooled
        self._report_depth()
        self.delivered += rnd.count
        if rnd.count:
            self._observer.delivered(self.name, rnd.count)
        if self._report.delivered():
            log.info("kafka: delivering again; %d alerts still spooled", self._spool.depth())

    # -- spool bookkeeping -----------------------------------------------------------------------

    def _report_depth(self) -> None:
        depth = self._spool.depth()
        if depth != self._reported_depth:
            self._reported_depth = depth
            self._observer.spool_depth(self.name, depth)

    def _note_spool_full(self, depth: int) -> None:
        self._full_depth = depth  # may run inside a spool call: only record it

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
        depth, self._full_depth = self._full_depth, None
        if depth is not None and self._on_spool_full is not None:
            self._on_spool_full(self.name, depth)

"""The Kafka sink's send path: alerts grouped into rounds, rounds into per-partition batches.

A *round* is up to ``ROUND_MAX`` spooled alerts handed to the producer together. The sink
keeps a few rounds in flight and retires them strictly in submission order, so "everything up
to here is acknowledged" is always a prefix of the spool: retiring a round ``ack``s its records
at the spool's head, and after a failure the spool from its head is exactly what is owed.
A watchdog (:class:`RoundWatchdog`) notices the oldest round going unanswered for the request
timeout.

Alerts do not go through ``producer.send`` (one future, one partitioner call, one size estimate
and one ``RecordMetadata`` per message): each round is cut into record batches per partition
with ``producer.create_batch()`` and handed over with ``send_batch``, one future per batch.
Batches are closed before hand-over, so they leave without lingering; batching comes from the
queue itself (whatever piled up while the previous batches were on the wire goes out together).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from monitor.errors import DeliveryError
from monitor.sinks.delivery import Envelope
from rules.alert_doc import Alert, StateDocument

#: Alerts per round: large enough to fill a batch per partition, small enough to bound a re-send.
ROUND_MAX = 4096
#: Rounds handed over and not yet retired. ``send_batch`` already holds the sink back while the
#: producer is busy; this bounds memory and what one failure re-sends (ROUND_MAX x this).
ROUNDS_IN_FLIGHT = 4

Headers = list[tuple[str, bytes]]
Record = tuple[bytes, bytes, Headers]  # key, value, headers: as they go on the wire


class CachedPartitioner:
    """Kafka's default key partitioner (murmur2, as the Java client), memoised per key.

    aiokafka computes murmur2 in pure Python for every message; alert keys repeat (one per
    account), so the answer is cached per key for one partition list (a new list, e.g. a topic
    re-created with another partition count, starts a new cache). Same partition as any other
    producer of the same key.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._partitions: tuple[int, ...] = ()
        self._cache: dict[bytes, int] = {}
        self._max_keys = max_keys

    def table(self, partitions: tuple[int, ...]) -> dict[bytes, int]:
        """The key -> partition cache for ``partitions`` (sorted); fill misses with ``of``."""
        if partitions != self._partitions or len(self._cache) >= self._max_keys:
            self._partitions = partitions
            self._cache = {}
        return self._cache

    def of(self, key: bytes, partitions: tuple[int, ...]) -> int:
        cache = self.table(partitions)
        partition = cache.get(key)
        if partition is None:
            partition = int(DefaultPartitioner()(key, list(partitions), list(partitions)))
            cache[key] = partition
        return partition

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        """The producer's ``partitioner`` hook (state documents go through ``send``)."""
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        return self.of(key, tuple(sorted(all_partitions)))


class Round:
    """Spool records (and state documents) handed to the producer together, retired as one.

    ``spooled`` counts the spool records the round covers (the oldest unacknowledged ones after
    the rounds ahead of it: acked when it retires), ``count`` the alerts among them that were
    sent (for counters; an undecodable replayed record is skipped). Done once every batch
    handed over has an answer; ``error`` is the first failure. ``handed_at`` (loop time) lets
    the sink notice a round the broker has not answered within the request timeout.
    """

    __slots__ = (
        "_pending",
        "_submitted",
        "_wake",
        "count",
        "error",
        "handed_at",
        "overdue",
        "spooled",
        "states",
    )

    def __init__(self, wake: asyncio.Event, *, spooled: int = 0, count: int = 0) -> None:
        self.spooled = spooled
        self.count = count
        self.states: list[tuple[bytes, StateDocument]] = []
        self.error: BaseException | None = None
        self.handed_at = 0.0
        self.overdue = False  # reported as unanswered past the request timeout
        self._pending = 0
        self._submitted = False
        self._wake = wake

    @property
    def done(self) -> bool:
        return self._submitted and self._pending == 0

    def watch(self, fut: asyncio.Future[Any]) -> None:
        self._pending += 1
        fut.add_done_callback(self._answered)

    def submitted(self, error: BaseException | None = None) -> None:
        """Nothing more will be handed over for this round (``error``: the hand-over failed)."""
        if error is not None and self.error is None:
            self.error = error
        self._submitted = True
        self._wake.set()

    def _answered(self, fut: asyncio.Future[Any]) -> None:
        self._pending -= 1
        if fut.cancelled():
            exc: BaseException | None = asyncio.CancelledError()
        else:
            exc = fut.exception()
        if exc is not None and self.error is None:
            self.error = exc
        if self._pending == 0 or exc is not None:
            self._wake.set()


class RoundWatchdog:
    """Notices the oldest round in flight going unanswered for ``timeout_s`` and calls
    ``on_overdue`` with it, once per round: the sink reports the outage then, instead of when
    aiokafka gives up on the batches (which can take about twice the request timeout).
    ``arm`` after each hand-over and retirement; ``cancel`` when the rounds are dropped."""

    def __init__(
        self, rounds: deque[Round], timeout_s: float, on_overdue: Callable[[Round], None]
    ) -> None:
        self._rounds = rounds
        self._timeout_s = timeout_s
        self._on_overdue = on_overdue
        self._handle: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        if self._handle is not None or not self._rounds or self._rounds[0].overdue:
            return
        deadline = self._rounds[0].handed_at + self._timeout_s
        self._handle = asyncio.get_running_loop().call_at(deadline, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        if not self._rounds or self._rounds[0].done:
            return  # answered: the pump retires it and arms again for the next one
        oldest = self._rounds[0]
        if asyncio.get_running_loop().time() - oldest.handed_at < self._timeout_s:
            self.arm()  # armed for an older round that has retired since
            return
        oldest.overdue = True
        self._on_overdue(oldest)


class RecordCache:
    """What alerts of one account and (kind, level, schema) share on the wire and in the
    spool: the key, the headers (building them costs a sixth of ``to_json``) and the spool
    envelope's prefix (key and headers encoded). Built once per combination; the producer only reads
    the headers. Bounded: cleared when it reaches ``max_entries``."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: dict[tuple[str, str, str, int, int], tuple[bytes, Headers, bytes]] = {}
        self._max = max_entries

    def of(self, alert: Alert) -> tuple[bytes, Headers, bytes]:
        """(key, headers, envelope prefix) of ``alert``."""
        slot = (alert.venue, alert.account, alert.kind, alert.level, alert.schema_version)
        entry = self._entries.get(slot)
        if entry is None:
            if len(self._entries) >= self._max:
                self._entries.clear()
            key, headers = alert.key(), alert.headers()
            entry = self._entries[slot] = (key, headers, Envelope.prefix(key, headers))
        return entry


def envelope_records(envelopes: Iterable[Envelope]) -> Iterator[Record]:
    for env in envelopes:
        yield env.key, env.value, list(env.headers)


async def send_round(
    producer: AIOKafkaProducer,
    topic: str,
    partitioner: CachedPartitioner,
    records: Iterable[Record],
    rnd: Round,
) -> None:
    """Cut ``records`` into batches per partition and hand them over; ``rnd`` watches each.

    Within a partition the batches go in record order (so each account's alerts keep theirs);
    across partitions they are handed over round-robin, because the producer sends one request
    per broker carrying at most one batch per partition: the next request should have a batch
    for every partition. ``send_batch`` waits while a partition already has a batch queued.
    """
    partitions = tuple(sorted(await producer.partitions_for(topic)))
    table = partitioner.table(partitions)
    stamp = int(time.time() * 1000)  # create time: when the round was handed to the producer
    groups: dict[int, list[Any]] = {}
    for key, value, headers in records:
        partition = table.get(key)
        if partition is None:
            partition = partitioner.of(key, partitions)
        builders = groups.get(partition)
        if builders is None:
            builders = groups[partition] = [producer.create_batch()]
        if builders[-1].append(timestamp=stamp, key=key, value=value, headers=headers) is None:
            builder = producer.create_batch()  # full: an empty batch always takes one record
            builder.append(timestamp=stamp, key=key, value=value, headers=headers)
            builders.append(builder)
    depth = max((len(b) for b in groups.values()), default=0)
    for level in range(depth):
        for partition, builders in groups.items():
            if level < len(builders):
                builders[level].close()  # closed: no linger, nothing else joins it
                try:
                    fut = await producer.send_batch(builders[level], topic, partition=partition)
                except AssertionError as exc:
                    # aiokafka asserts that the partition is in its metadata; a refresh while
                    # the broker goes away (or comes back re-created) can drop it between
                    # partitions_for and here. The broker's state, not our bug: retryable.
                    raise DeliveryError(f"kafka: {topic} partition {partition} vanished") from exc
                rnd.watch(fut)

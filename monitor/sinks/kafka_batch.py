"""The Kafka sink's send path: alerts grouped into rounds, rounds into per-partition batches.

A *round* is up to ``ROUND_MAX`` alerts handed to the producer together. The sink keeps a few
rounds in flight and retires them strictly in submission order, so "everything up to here is
acknowledged" is always a prefix of what was sent: that is what lets a failure spool exactly
the unacknowledged tail, in order, and lets spool replays ``ack`` the spool FIFO.

Alerts do not go through ``producer.send`` (one future, one partitioner call, one size estimate
and one ``RecordMetadata`` per message): each round is cut into record batches per partition
with ``producer.create_batch()`` and handed over with ``send_batch``, one future per batch.
Batches are closed before hand-over, so they leave without lingering; batching comes from the
queue itself (whatever piled up while the previous batches were on the wire goes out together).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

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
    """Alerts (and state documents) handed to the producer together, retired as one.

    ``alerts`` are kept for a direct round (they go to the spool if the round fails);
    ``spooled`` counts the spool records a replay round covers (acked when it succeeds).
    Done once every batch handed over has an answer; ``error`` is the first failure.
    """

    __slots__ = ("_pending", "_submitted", "_wake", "alerts", "count", "error", "spooled", "states")

    def __init__(
        self,
        wake: asyncio.Event,
        *,
        alerts: list[Alert] | None = None,
        spooled: int = 0,
        count: int = 0,
    ) -> None:
        self.alerts = alerts or []
        self.spooled = spooled
        self.count = count or len(self.alerts)  # alerts in the round (for counters)
        self.states: list[tuple[bytes, StateDocument]] = []
        self.error: BaseException | None = None
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

    def envelopes(self) -> Iterator[Envelope]:
        """A direct round's alerts as spool records (the same bytes it sent)."""
        return (Envelope.of_alert(a) for a in self.alerts)


def alert_records(alerts: Iterable[Alert]) -> Iterator[Record]:
    """Wire form of direct alerts. Headers depend on (kind, level, schema) only: built once per
    combination and shared, since building them (enum labels, encodes) costs a sixth of
    ``to_json`` per alert; the producer only reads them."""
    headers: dict[tuple[str, int, int], Headers] = {}
    for alert in alerts:
        slot = (alert.kind, alert.level, alert.schema_version)
        h = headers.get(slot)
        if h is None:
            h = headers[slot] = alert.headers()
        yield alert.key(), alert.to_json(), h


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
                rnd.watch(await producer.send_batch(builders[level], topic, partition=partition))

"""KafkaSink against a real Kafka-protocol broker (Tansu, in-memory storage)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from delivery_helpers import RecordingObserver, make_alert, make_state
from services import Service

from monitor.sinks.config_types import KafkaConfig, SpoolConfig
from monitor.sinks.delivery import Envelope
from monitor.sinks.kafka import KafkaSink
from monitor.sinks.kafka_admin import topic_config
from monitor.sinks.kafka_batch import ROUND_MAX, ROUNDS_IN_FLIGHT
from monitor.sinks.spool import Spool

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
ALERTS = "marginwatch.alerts"
STATE = "marginwatch.state"


def config(bootstrap: str, spool_dir: Path, **overrides: Any) -> KafkaConfig:
    settings: dict[str, Any] = {
        "bootstrap": bootstrap,
        "spool": SpoolConfig(spool_dir),
        # Short timeouts so an outage is noticed within a test's patience.
        "request_timeout_ms": 1500,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "close_timeout_s": 5.0,
    }
    settings.update(overrides)
    return KafkaConfig(**settings)


def bootstrap_of(service: Service) -> str:
    return f"127.0.0.1:{service.port}"


@contextlib.asynccontextmanager
async def running(sink: KafkaSink, *, connected: bool = True) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(sink.run())
    try:
        # Tansu creates a topic on a metadata request for it: let the sink create them first.
        if connected:
            await sink.connected.wait()
        yield task
    finally:
        await sink.close()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Collector:
    """A consumer that reads a topic from the beginning into a list, waking waiters per batch."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.messages: list[Any] = []
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=500,
        )
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        # A consumer whose broker died can end its stop() with an internal CancelledError: run it
        # as its own task so that never reads as a cancellation of the test.
        stop = asyncio.create_task(self._consumer.stop())
        await asyncio.wait([stop], timeout=5)
        if stop.done() and not stop.cancelled():
            stop.exception()
        else:
            # That CancelledError comes from the fetcher, before stop() reaches the client: its
            # metadata task lives on and would connect to the next broker on the same port (an
            # unclosed connection). Close the client as stop() would have.
            close = asyncio.create_task(self._consumer._client.close())
            await asyncio.wait([close], timeout=5)
            if close.done() and not close.cancelled():
                close.exception()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                self.messages.extend(records)
            if batches:
                self._changed.set()

    def ids(self) -> list[str]:
        return [orjson.loads(m.value)["id"] for m in self.messages]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()


async def test_alerts_arrive_with_key_headers_and_schema_1_value(
    tansu: Service, tmp_path: Path
) -> None:
    sink = KafkaSink(config(bootstrap_of(tansu), tmp_path / "spool"))
    sent = [make_alert(i, account=f"acct-{i % 3}") for i in range(30)]
    async with asyncio.timeout(DEADLINE_S), running(sink):
        for alert in sent:
            sink.submit(alert)
        async with Collector(bootstrap_of(tansu), ALERTS) as collector:
            await collector.wait_for(lambda: len(collector.messages) >= 30)
    assert len(collector.messages) == 30
    by_id = {a.id: a for a in sent}
    for msg in collector.messages:
        value = orjson.loads(msg.value)
        alert = by_id[value["id"]]
        assert msg.key == f"binance:{alert.account}".encode()
        assert list(msg.headers) == [
            ("kind", b"margin_level"),
            ("level", b"danger"),
            ("schema_version", b"1"),
        ]
        assert value["schema_version"] == 1
        assert value["kind"] == "margin_level"
        assert value["venue"] == "binance"
        assert value["account"] == alert.account
        assert value["level"] == "danger"
        assert value["previous_level"] == "warning"
        assert value["figures"]["equity"] == 10_500.0
        assert value["figures"]["maintenance_margin"] == 9_000.0
        assert value["figures"]["liquidation_distance"] == {"down": 0.041, "up": None}
        assert value["top_positions"][0]["symbol"] == "BTCUSDT"
        assert value["event_time_ms"] == alert.event_time_ms
        assert msg.value == alert.to_json()
    # One account's alerts share a partition and keep their order.
    for account in ("acct-0", "acct-1", "acct-2"):
        mine = [m for m in collector.messages if m.key == f"binance:{account}".encode()]
        assert len({m.partition for m in mine}) == 1
        got = [orjson.loads(m.value)["id"] for m in mine]
        assert got == [a.id for a in sent if a.account == account]
    assert sink.delivered == 30
    assert sink.pending() == 0


async def test_topics_created_with_partitions_and_compacted_state(
    tansu: Service, tmp_path: Path
) -> None:
    sink = KafkaSink(config(bootstrap_of(tansu), tmp_path / "spool", partitions=4))
    async with asyncio.timeout(DEADLINE_S), running(sink):
        sink.submit_state(make_state("acct-1", 1.5, 1000))
        sink.submit_state(make_state("acct-2", 1.4, 1001))
        sink.submit_state(make_state("acct-1", 1.1, 1002))  # replaces the unsent 1.5
        async with Collector(bootstrap_of(tansu), STATE) as collector:
            await collector.wait_for(lambda: len(collector.messages) >= 2)
            sink.submit_state(make_state("acct-2", 1.9, 1003))
            await collector.wait_for(
                lambda: any(orjson.loads(m.value)["updated_ms"] == 1003 for m in collector.messages)
            )
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(tansu))
        await admin.start()
        try:
            (alerts_meta,) = await admin.describe_topics([ALERTS])
            configs = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, STATE)]
            )
        finally:
            await admin.close()
    assert len(alerts_meta["partitions"]) == 4
    assert topic_config(configs, "cleanup.policy") == "compact"
    latest: dict[bytes, dict[str, Any]] = {}
    for msg in collector.messages:
        latest[msg.key] = orjson.loads(msg.value)
    assert set(latest) == {b"binance:acct-1", b"binance:acct-2"}
    assert latest[b"binance:acct-1"]["figures"]["health"] == 1.1
    assert latest[b"binance:acct-1"]["level"] == "danger"
    assert latest[b"binance:acct-2"]["figures"]["health"] == 1.9
    assert latest[b"binance:acct-2"]["level"] == "ok"
    # Latest-wins before sending: the superseded 1.5 never left the process.
    healths = [orjson.loads(m.value)["figures"]["health"] for m in collector.messages]
    assert 1.5 not in healths


async def test_broker_killed_mid_stream_loses_no_alert(tansu: Service, tmp_path: Path) -> None:
    observer = RecordingObserver()
    failing: list[tuple[str, str]] = []
    sink = KafkaSink(
        config(bootstrap_of(tansu), tmp_path / "spool"),
        observer=observer,
        on_delivery_failing=lambda name, reason: failing.append((name, reason)),
    )
    accounts = [f"acct-{k}" for k in range(5)]
    emitted: list[str] = []
    counter = 0

    def submit(n: int) -> None:
        nonlocal counter
        for _ in range(n):
            alert = make_alert(counter, account=accounts[counter % len(accounts)])
            sink.submit(alert)
            emitted.append(alert.id)
            counter += 1

    async with asyncio.timeout(DEADLINE_S), running(sink):
        async with Collector(bootstrap_of(tansu), ALERTS) as first:
            submit(200)
            await first.wait_for(lambda: len(set(first.ids())) >= 200)
            # Mid-stream: a batch is submitted and the broker dies before it is sent.
            submit(100)
            tansu.kill()
        seen_first = set(first.ids())
        # While the broker is down, alerts keep coming and pile up in the spool.
        submit(100)
        # The outage is noticed (within request_timeout_ms) and the producer dropped; only then
        # does the broker return, so the sink sets the topics up again on the new, empty one.
        await observer.wait_for(lambda: bool(failing) and not sink.connected.is_set())
        submit(100)
        await observer.wait_for(lambda: observer.depths[-1] >= 300)
        assert sink.pending() >= 300
        tansu.start()  # a new, empty broker on the same port
        submit(100)
        missing = set(emitted) - seen_first
        async with Collector(bootstrap_of(tansu), ALERTS) as second:
            await second.wait_for(lambda: missing <= set(second.ids()))
        await observer.wait_for(lambda: observer.depths[-1] == 0)
    assert set(emitted) <= seen_first | set(second.ids())
    assert max(observer.depths) >= 300
    assert observer.failures and observer.failures[0][1]  # a reason label was reported
    assert len(failing) == 1  # one delivery_failing per outage, not one per retry
    assert failing[0][0] == "kafka"
    assert failing[0][1] == observer.failures[0][1]
    # The replay keeps each account's order (first occurrences; duplicates are allowed).
    for account in accounts:
        key = f"binance:{account}".encode()
        got = [orjson.loads(m.value)["id"] for m in second.messages if m.key == key]
        first_seen = list(dict.fromkeys(got))
        assert first_seen == sorted(first_seen)


def first_deliveries_in_order(messages: list[Any], accounts: list[str]) -> None:
    """Per account, the ids in order of first arrival are increasing (ids follow submission)."""
    for account in accounts:
        key = f"binance:{account}".encode()
        got = [orjson.loads(m.value)["id"] for m in messages if m.key == key]
        first_seen = list(dict.fromkeys(got))
        assert first_seen == sorted(first_seen), account


async def test_broker_killed_with_several_rounds_in_flight_loses_and_reorders_nothing(
    tansu: Service, tmp_path: Path
) -> None:
    observer = RecordingObserver()
    acked_before_outage: list[int] = []
    sink = KafkaSink(
        config(bootstrap_of(tansu), tmp_path / "spool"),
        observer=observer,
        # Rounds retire in order, so the first ``delivered`` alerts are the ones the dead
        # broker acknowledged; everything after them must reach the new one.
        on_delivery_failing=lambda name, reason: acked_before_outage.append(sink.delivered),
    )
    accounts = [f"acct-{k}" for k in range(7)]
    alerts = [make_alert(i, account=accounts[i % len(accounts)]) for i in range(7 * ROUND_MAX)]
    late = [make_alert(len(alerts) + i, account=accounts[i % 3]) for i in range(500)]
    async with asyncio.timeout(DEADLINE_S), running(sink):
        async with Collector(bootstrap_of(tansu), ALERTS) as first:
            for alert in alerts:
                sink.submit(alert)
            # Mid-stream: the first round is acknowledged, the next ones are with the producer.
            await observer.wait_for(lambda: observer.delivered_total >= ROUND_MAX)
            in_flight_at_kill = sink.rounds_in_flight
            tansu.kill()
        assert 2 <= in_flight_at_kill <= ROUNDS_IN_FLIGHT
        await observer.wait_for(lambda: bool(acked_before_outage))
        (acked,) = acked_before_outage
        assert ROUND_MAX <= acked < len(alerts)
        # Write-ahead: the unacked tail is in the spool all along. Every round in flight is
        # answered (failed or acked in order) and the producer dropped before the broker returns.
        await observer.wait_for(
            lambda: sink.spool_depth() == len(alerts) - acked and not sink.connected.is_set()
        )
        for alert in late:  # queued behind the spool while the broker is away
            sink.submit(alert)
        await observer.wait_for(lambda: sink.spool_depth() == len(alerts) + len(late) - acked)
        replay_depths_from = len(observer.depths)
        tansu.start()  # a new, empty broker on the same port
        emitted = [a.id for a in (*alerts, *late)]
        owed = set(emitted[acked:])
        async with Collector(bootstrap_of(tansu), ALERTS) as second:
            await second.wait_for(lambda: owed <= set(second.ids()))
        await observer.wait_for(lambda: observer.depths[-1] == 0)
    assert sink.pending() == 0
    assert sink.delivered >= len(emitted)  # duplicates only: the in-flight tail may go twice
    assert set(first.ids()) <= set(emitted[: acked + ROUNDS_IN_FLIGHT * ROUND_MAX])
    # The replay went a round at a time (several retirements), not in one piece.
    replay_depths = observer.depths[replay_depths_from:]
    assert len([d for d in replay_depths if 0 < d < len(owed)]) >= 2
    # Order per account among first deliveries: on each broker, and across the two as a
    # consumer that read the first broker and then the second would see it.
    first_deliveries_in_order(first.messages, accounts)
    first_deliveries_in_order(second.messages, accounts)
    first_deliveries_in_order([*first.messages, *second.messages], accounts)


async def test_restarted_sink_sends_what_was_spooled(tansu: Service, tmp_path: Path) -> None:
    tansu.stop()  # the broker is away while the first daemon runs
    spool_dir = tmp_path / "spool"
    observer = RecordingObserver()
    first = KafkaSink(config(bootstrap_of(tansu), spool_dir), observer=observer)
    alerts = [make_alert(i, account=f"acct-{i % 2}") for i in range(50)]
    async with asyncio.timeout(DEADLINE_S):
        async with running(first, connected=False):
            for alert in alerts[:40]:
                first.submit(alert)
            await observer.wait_for(lambda: bool(observer.depths) and observer.depths[-1] == 40)
            for alert in alerts[40:]:
                first.submit(alert)  # still in memory when the daemon stops: close spools it
        assert first.pending() == 50

        tansu.start()
        second = KafkaSink(config(bootstrap_of(tansu), spool_dir))
        assert second.pending() == 50
        async with running(second), Collector(bootstrap_of(tansu), ALERTS) as collector:
            await collector.wait_for(lambda: len(collector.messages) >= 50)
            assert second.pending() == 0
    assert sorted(collector.ids()) == sorted(a.id for a in alerts)  # each exactly once
    for account in ("acct-0", "acct-1"):
        key = f"binance:{account}".encode()
        got = [orjson.loads(m.value)["id"] for m in collector.messages if m.key == key]
        assert got == [a.id for a in alerts if a.account == account]


async def test_full_spool_calls_back_once_and_still_delivers_everything(
    tansu: Service, tmp_path: Path
) -> None:
    tansu.stop()
    observer = RecordingObserver()
    full: list[tuple[str, int]] = []
    alerts = [make_alert(i, account=f"acct-{i % 3}") for i in range(40)]
    record_bytes = 8 + len(Envelope.of_alert(alerts[0]).encode())
    cfg = config(
        bootstrap_of(tansu),
        tmp_path / "spool",
        spool=SpoolConfig(tmp_path / "spool", max_bytes=10 * record_bytes),
    )
    sink = KafkaSink(
        cfg, observer=observer, on_spool_full=lambda name, depth: full.append((name, depth))
    )
    async with asyncio.timeout(DEADLINE_S), running(sink, connected=False):
        for alert in alerts[:25]:
            sink.submit(alert)
        await observer.wait_for(lambda: bool(observer.depths) and observer.depths[-1] == 25)
        for alert in alerts[25:]:
            sink.submit(alert)
        await observer.wait_for(lambda: observer.depths[-1] == 40)
        # Once per episode, with the depth at that moment: write-ahead, the 11th alert.
        assert full == [("kafka", 11)]
        assert sink.pending() == 40  # 10 on disk, 30 waiting in memory: none dropped
        tansu.start()
        async with Collector(bootstrap_of(tansu), ALERTS) as collector:
            await collector.wait_for(lambda: len(set(collector.ids())) >= 40)
        await observer.wait_for(lambda: observer.depths[-1] == 0)
    for account in ("acct-0", "acct-1", "acct-2"):
        key = f"binance:{account}".encode()
        got = [orjson.loads(m.value)["id"] for m in collector.messages if m.key == key]
        assert list(dict.fromkeys(got)) == [a.id for a in alerts if a.account == account]


async def test_spool_write_failure_keeps_alerts_in_memory_and_delivers_them_later(
    tansu: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tansu.stop()
    real_write = os.write
    disk_full = True

    def write(fd: int, data: bytes | memoryview) -> int:
        if disk_full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr("monitor.sinks.spool.os.write", write)
    observer = RecordingObserver()
    full: list[tuple[str, int]] = []
    sink = KafkaSink(
        config(bootstrap_of(tansu), tmp_path / "spool"),
        observer=observer,
        on_spool_full=lambda name, depth: full.append((name, depth)),
    )
    alerts = [make_alert(i, account=f"acct-{i % 2}") for i in range(30)]
    async with asyncio.timeout(DEADLINE_S), running(sink, connected=False) as task:
        for alert in alerts[:20]:
            sink.submit(alert)
        await observer.wait_for(lambda: bool(observer.depths) and observer.depths[-1] == 20)
        assert full == [("kafka", 1)]  # the first alert the disk refused
        assert "spool_ENOSPC" in {reason for _, reason in observer.failures}
        assert sink.pending() == 20
        assert sink.spool_depth() == 20
        assert not task.done()  # the run task lives on
        disk_full = False  # room again: what waited in memory goes to disk first
        for alert in alerts[20:]:
            sink.submit(alert)
        await observer.wait_for(lambda: observer.depths[-1] == 30)
        assert len(list((tmp_path / "spool").glob("*.seg"))) == 1
        tansu.start()
        async with Collector(bootstrap_of(tansu), ALERTS) as collector:
            await collector.wait_for(lambda: len(set(collector.ids())) >= 30)
        await observer.wait_for(lambda: observer.depths[-1] == 0)
    assert sink.pending() == 0
    for account in ("acct-0", "acct-1"):
        key = f"binance:{account}".encode()
        got = [orjson.loads(m.value)["id"] for m in collector.messages if m.key == key]
        assert list(dict.fromkeys(got)) == [a.id for a in alerts if a.account == account]


async def test_undecodable_spooled_record_raises_a_delivery_alert(
    tansu: Service, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    alerts = [make_alert(i) for i in range(3)]
    spool = Spool(spool_dir, max_bytes=1 << 20)
    raws = [Envelope.of_alert(a).encode() for a in alerts]
    spool.append([raws[0], b"\x09not an envelope", raws[2]])
    spool.close()
    observer = RecordingObserver()
    failing: list[tuple[str, str]] = []
    resumed: list[str] = []
    sink = KafkaSink(
        config(bootstrap_of(tansu), spool_dir),
        observer=observer,
        on_delivery_failing=lambda name, reason: failing.append((name, reason)),
        on_delivery_resumed=resumed.append,
    )
    async with asyncio.timeout(DEADLINE_S), running(sink):
        async with Collector(bootstrap_of(tansu), ALERTS) as collector:
            await collector.wait_for(lambda: len(collector.messages) >= 2)
        await observer.wait_for(lambda: observer.depths[-1] == 0)
    assert collector.ids() == [alerts[0].id, alerts[2].id]
    assert failing == [("kafka", "EnvelopeError")]
    assert (1, "EnvelopeError") in observer.failures
    assert resumed == ["kafka"]  # the next delivery ends that episode

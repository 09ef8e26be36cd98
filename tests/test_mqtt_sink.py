"""MqttSink against a real Mosquitto broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import orjson
import pytest
from delivery_helpers import RecordingObserver, make_alert, make_state
from services import Service

from monitor.sinks.config_types import MqttConfig
from monitor.sinks.mqtt import MqttSink

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0


def config(service: Service, **overrides: Any) -> MqttConfig:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": service.port,
        "client_id": "marginwatch-test",
        "publish_timeout_s": 2.0,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "close_timeout_s": 5.0,
    }
    settings.update(overrides)
    return MqttConfig(**settings)


@contextlib.asynccontextmanager
async def running(sink: MqttSink) -> AsyncIterator[None]:
    task = asyncio.create_task(sink.run())
    try:
        await sink.connected.wait()
        yield
    finally:
        await sink.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Subscriber:
    """Subscribes to a filter and keeps (topic, payload, qos, retain) of what arrives."""

    def __init__(
        self, service: Service, topic: str, *, identifier: str | None = None, clean: bool = True
    ) -> None:
        self.messages: list[tuple[str, bytes, int, bool]] = []
        self._client = aiomqtt.Client(
            "127.0.0.1",
            service.port,
            identifier=identifier,
            clean_session=clean,
        )
        self._topic = topic
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.disconnected = asyncio.Event()

    async def __aenter__(self) -> Subscriber:
        await self._client.__aenter__()
        await self._client.subscribe(self._topic, qos=1)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def _read(self) -> None:
        try:
            async for msg in self._client.messages:
                payload = msg.payload
                assert isinstance(payload, bytes)
                self.messages.append((msg.topic.value, payload, msg.qos, msg.retain))
                self._changed.set()
        except aiomqtt.MqttError:
            self.disconnected.set()

    def ids(self) -> set[str]:
        return {orjson.loads(p)["id"] for _, p, _, _ in self.messages}

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()


async def test_qos1_alerts_reach_a_subscriber(mosquitto: Service) -> None:
    sink = MqttSink(config(mosquitto))
    alerts = [make_alert(i, account=f"sub-{i % 2}", venue="okx") for i in range(20)]
    async with (
        asyncio.timeout(DEADLINE_S),
        running(sink),
        Subscriber(mosquitto, "marginwatch/alerts/#") as sub,
    ):
        for alert in alerts:
            sink.submit(alert)
        await sub.wait_for(lambda: len(sub.messages) >= 20)
    assert sink.delivered == 20
    assert sink.pending() == 0
    by_id = {a.id: a for a in alerts}
    for topic, payload, qos, retain in sub.messages:
        value = orjson.loads(payload)
        alert = by_id[value["id"]]
        assert topic == f"marginwatch/alerts/okx/{alert.account}"
        assert qos == 1
        assert not retain
        assert payload == alert.to_json()
        assert value["level"] == "danger"
        assert value["figures"]["health"] == pytest.approx(10_500.0 / 9_000.0, rel=1e-15)
    for account in ("sub-0", "sub-1"):
        got = [orjson.loads(p)["id"] for t, p, _, _ in sub.messages if t.endswith(f"/{account}")]
        assert got == [a.id for a in alerts if a.account == account]


async def test_retained_state_is_seen_by_a_late_subscriber(mosquitto: Service) -> None:
    observer = RecordingObserver()
    sink = MqttSink(config(mosquitto), observer=observer)
    async with asyncio.timeout(DEADLINE_S):
        async with running(sink):
            sink.submit_state(make_state("acct-1", 1.5, 1000))
            sink.submit_state(make_state("acct-2", 1.1, 1001))
            sink.submit_state(make_state("acct-1", 1.3, 1002))  # replaces the unsent 1.5
            sink.submit(make_alert(1))
            await observer.wait_for(lambda: observer.delivered_total == 1)
        # close() published the states still pending before it returned.
        # The subscriber arrives after the fact; a broker restart (persistence) keeps it too.
        mosquitto.restart()
        async with Subscriber(mosquitto, "marginwatch/state/#") as late:
            await late.wait_for(lambda: len(late.messages) >= 2)
    got = {topic: (orjson.loads(p), retain) for topic, p, _, retain in late.messages}
    assert set(got) == {"marginwatch/state/binance/acct-1", "marginwatch/state/binance/acct-2"}
    doc1, retained1 = got["marginwatch/state/binance/acct-1"]
    doc2, retained2 = got["marginwatch/state/binance/acct-2"]
    assert retained1 and retained2
    assert doc1["figures"]["health"] == 1.3
    assert doc1["updated_ms"] == 1002
    assert doc1["level"] == "ok"
    assert doc2["figures"]["health"] == 1.1
    assert doc2["level"] == "danger"


async def test_pending_alerts_go_before_pending_states(mosquitto: Service) -> None:
    sink = MqttSink(config(mosquitto))
    # Everything is pending when the sink connects (as after a reconnect).
    for k in range(20):
        sink.submit_state(make_state(f"acct-{k}", 1.5, 1000 + k))
    alerts = [make_alert(i, account=f"acct-{i}") for i in range(3)]
    for alert in alerts:
        sink.submit(alert)
    async with (
        asyncio.timeout(DEADLINE_S),
        Subscriber(mosquitto, "marginwatch/#") as sub,
        running(sink),
    ):
        await sub.wait_for(lambda: len(sub.messages) >= 23)
    kinds = [topic.split("/")[1] for topic, _, _, _ in sub.messages]
    assert kinds == ["alerts"] * 3 + ["state"] * 20
    assert [orjson.loads(p)["id"] for _, p, _, _ in sub.messages[:3]] == [a.id for a in alerts]


async def test_broker_restart_mid_stream_loses_no_alert(mosquitto: Service) -> None:
    observer = RecordingObserver()
    sink = MqttSink(config(mosquitto), observer=observer)
    emitted: list[str] = []
    counter = 0

    def submit(n: int) -> None:
        nonlocal counter
        for _ in range(n):
            alert = make_alert(counter, account=f"acct-{counter % 3}")
            sink.submit(alert)
            emitted.append(alert.id)
            counter += 1

    # A persistent session (clean_session off): the broker keeps the subscription and queues
    # QoS-1 messages for it across its own restart while this subscriber is away.
    sub_id = "restart-subscriber"
    async with asyncio.timeout(DEADLINE_S), running(sink):
        async with Subscriber(
            mosquitto, "marginwatch/alerts/#", identifier=sub_id, clean=False
        ) as first:
            submit(100)
            await first.wait_for(lambda: len(first.ids()) >= 50)
            submit(100)  # some of these are in flight when the broker goes
            mosquitto.stop()
            await first.disconnected.wait()
            submit(100)  # while the broker is away
            await observer.wait_for(lambda: bool(observer.failures))
        mosquitto.start()
        async with Subscriber(
            mosquitto, "marginwatch/alerts/#", identifier=sub_id, clean=False
        ) as second:
            submit(100)
            await second.wait_for(lambda: set(emitted) <= first.ids() | second.ids())
        await observer.wait_for(lambda: sink.pending() == 0)
    assert set(emitted) <= first.ids() | second.ids()
    assert len(emitted) == 400
    assert observer.failures[0][1]  # a bounded reason label

"""Per-alert encoding: an alert that does not encode is repaired (and says how), never lost, and
never takes the alerts around it down, in every sink (console, JSONL, Kafka, MQTT)."""

from __future__ import annotations

import asyncio
import io
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from delivery_helpers import FIGURES, RecordingObserver, make_alert
from services import Service
from test_kafka_sink import ALERTS, Collector, bootstrap_of
from test_kafka_sink import config as kafka_config
from test_kafka_sink import running as kafka_running
from test_mqtt_sink import Subscriber
from test_mqtt_sink import config as mqtt_config
from test_mqtt_sink import running as mqtt_running

from monitor.sinks.console import ConsoleSink, format_time
from monitor.sinks.encode import I64_MAX, REPAIRS_KEY, encoded, repair
from monitor.sinks.jsonl import JsonlSink
from monitor.sinks.kafka import KafkaSink
from monitor.sinks.mqtt import MqttSink
from rules.alert_doc import Alert, Level

HUGE = 2**64  # orjson: "Integer exceeds 64-bit range"


def bad_alerts() -> list[Alert]:
    """Alerts a hostile venue can cause, each unencodable in its own way."""
    base = make_alert(100)
    return [
        # The case: an event time >= 2^64, on a liquidatable escalation.
        replace(base, id="b" * 32, event_time_ms=HUGE, level=Level.LIQUIDATABLE),
        # A figure that is an integer beyond 64 bits, and a non-finite one beside it.
        replace(
            base,
            id="c" * 32,
            figures=replace(FIGURES, equity=HUGE * 8, health=math.inf),
        ),
        # detail keyed by a number, with a huge quantity and a lone surrogate in the text.
        replace(
            base,
            id="d" * 32,
            message="BTC\ud800 margin call",
            detail={"positions": [{"qty": -HUGE, 7: "x"}], "note": "ok"},  # type: ignore[dict-item]
        ),
    ]


def mixed() -> list[Alert]:
    """Good and bad alerts interleaved: one batch for every sink."""
    good = [make_alert(i) for i in range(4)]
    bad = bad_alerts()
    return [good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3]]


def check_delivered(values: list[bytes], sent: list[Alert]) -> None:
    """Every alert arrived (by id, in order), good ones byte-identical, bad ones repaired."""
    docs = [orjson.loads(v) for v in values]
    assert [d["id"] for d in docs] == [a.id for a in sent]
    for alert, value, doc in zip(sent, values, docs, strict=True):
        if alert.id in {"b" * 32, "c" * 32, "d" * 32}:
            assert doc["detail"][REPAIRS_KEY], alert.id
            Alert.from_json(value)  # a valid schema-1 alert
        else:
            assert value == alert.to_json()
    by_id = {d["id"]: d for d in docs}
    b, c, d = by_id["b" * 32], by_id["c" * 32], by_id["d" * 32]
    assert b["event_time_ms"] == I64_MAX and b["level"] == "liquidatable"
    assert b["detail"][REPAIRS_KEY] == {"clamped": ["event_time_ms"]}
    assert c["figures"]["equity"] == float(HUGE * 8)
    assert c["figures"]["health"] is None  # non-finite: null (unknown), as the schema says
    assert d["message"] == "BTC? margin call"
    assert d["detail"]["positions"] == [{"qty": -(2**63)}]
    assert d["detail"]["note"] == "ok"
    assert d["detail"][REPAIRS_KEY] == {
        "clamped": ["detail.positions[0].qty"],
        "dropped": ["detail.positions[0].7"],
        "replaced": ["message"],
    }


def test_repair_keeps_the_id_and_names_what_changed() -> None:
    for alert in bad_alerts():
        with pytest.raises(TypeError):
            alert.to_json()
        fixed, paths = repair(alert)
        assert fixed.id == alert.id
        assert paths
        doc = orjson.loads(fixed.to_json())
        assert doc["detail"][REPAIRS_KEY]
    good = make_alert(1)
    assert encoded(good, "test") == (good, good.to_json(), False)  # the fast path, untouched


def test_foreign_values_in_detail_are_dropped_or_made_numbers() -> None:
    from decimal import Decimal

    alert = replace(
        make_alert(1),
        detail={"d": Decimal("1.5"), "s": {1, 2}, "deep": [[[[]]]], "b": True},  # type: ignore[dict-item]
    )
    _, value, repaired = encoded(alert, "test")
    assert repaired
    doc = orjson.loads(value)["detail"]
    assert doc["b"] is True and doc["deep"] == [[[[]]]]
    assert doc["d"] is None and doc["s"] is None  # no JSON form: dropped (and named)
    assert doc[REPAIRS_KEY] == {"dropped": ["detail.d", "detail.s"]}


def test_console_prints_a_time_no_calendar_can_show() -> None:
    assert format_time(HUGE) == f"t={HUGE}ms"


async def test_console_prints_every_alert_of_a_batch_with_bad_ones() -> None:
    out = io.StringIO()
    observer = RecordingObserver()
    sink = ConsoleSink(out, observer=observer)
    call = replace(make_alert(9), kind="venue_margin_call", message="BTC\ud800 margin call")
    for alert in [*mixed(), call]:
        sink.submit(alert)
    await sink.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 8
    assert [line.split()[2] for line in lines] == ["acct-1@binance"] * 8
    assert lines[1].split()[1] == "LIQUIDATABLE"
    # A line shows the emit time and figures (the schema's nulls): what a terminal cannot take
    # is the text with a lone surrogate, in the one line that prints the message.
    assert lines[7].split()[1] == "MARGIN-CALL"
    assert lines[7].endswith("BTC? margin call")
    assert sink.repaired == 1
    assert observer.repaired_total == 1
    assert observer.delivered_total == 8


async def test_jsonl_writes_every_alert_of_a_batch_with_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    observer = RecordingObserver()
    sink = JsonlSink(path, observer=observer)
    sent = mixed()
    for alert in sent:
        sink.submit(alert)  # one batch: nothing runs in between
    await sink.close()
    check_delivered(path.read_bytes().splitlines(), sent)
    assert sink.repaired == 3
    assert observer.repaired_total == 3
    assert observer.delivered_total == 7


@pytest.mark.integration
async def test_kafka_delivers_every_alert_of_a_batch_with_bad_ones(
    tansu: Service, tmp_path: Path
) -> None:
    observer = RecordingObserver()
    sink = KafkaSink(kafka_config(bootstrap_of(tansu), tmp_path / "spool"), observer=observer)
    sent = mixed()
    async with asyncio.timeout(60), kafka_running(sink):
        for alert in sent:
            sink.submit(alert)
        async with Collector(bootstrap_of(tansu), ALERTS) as collector:
            await collector.wait_for(lambda: len(collector.messages) >= len(sent))
    # One account: one partition, in submission order.
    check_delivered([m.value for m in collector.messages], sent)
    assert {m.key for m in collector.messages} == {b"binance:acct-1"}
    assert sink.repaired == 3
    assert observer.repaired_total == 3


@pytest.mark.integration
async def test_mqtt_publishes_every_alert_of_a_batch_with_bad_ones(mosquitto: Service) -> None:
    observer = RecordingObserver()
    sink = MqttSink(mqtt_config(mosquitto), observer=observer)
    sent = mixed()
    async with (
        asyncio.timeout(60),
        Subscriber(mosquitto, "marginwatch/alerts/#") as sub,
        mqtt_running(sink),
    ):
        for alert in sent:
            sink.submit(alert)
        await sub.wait_for(lambda: len(sub.messages) >= len(sent))
    values: list[Any] = [payload for _, payload, _, _ in sub.messages]
    check_delivered(values, sent)
    assert sink.repaired == 3
    assert observer.repaired_total == 3

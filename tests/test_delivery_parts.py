"""Broker-free parts of the delivery sinks: record format, config checks, topic errors."""

from __future__ import annotations

import random
import ssl
from pathlib import Path

import pytest
from delivery_helpers import make_alert
from hypothesis import given
from hypothesis import strategies as st

from connectors.backoff import Backoff
from monitor.sinks.config_types import (
    KafkaConfig,
    SaslMechanism,
    Secret,
    SecurityProtocol,
    SpoolConfig,
)
from monitor.sinks.delivery import Envelope, EnvelopeError
from monitor.sinks.kafka_admin import client_options, creation_problems
from monitor.sinks.mqtt import alert_topic, state_topic

SPOOL = SpoolConfig(Path("/nonexistent/spool"))


def test_envelope_of_alert_carries_key_headers_and_json() -> None:
    alert = make_alert(7, account="sub-2")
    env = Envelope.of_alert(alert)
    assert env.key == b"binance:sub-2"
    assert env.headers == (
        ("kind", b"margin_level"),
        ("level", b"danger"),
        ("schema_version", b"1"),
    )
    assert env.value == alert.to_json()
    assert Envelope.decode(env.encode()) == env
    assert env.venue_account() == ("binance", "sub-2")


@given(
    key=st.binary(max_size=300),
    headers=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=100)), max_size=5).map(
        tuple
    ),
    value=st.binary(max_size=2000),
)
def test_envelope_round_trips(
    key: bytes, headers: tuple[tuple[str, bytes], ...], value: bytes
) -> None:
    env = Envelope(key, headers, value)
    assert Envelope.decode(env.encode()) == env


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_raise_envelope_error(raw: bytes) -> None:
    try:
        env = Envelope.decode(raw)
    except EnvelopeError:
        return
    assert env.encode() == raw  # whatever decodes is exactly what was encoded


def test_secret_never_prints() -> None:
    cfg = KafkaConfig(
        "127.0.0.1:9092",
        SPOOL,
        security_protocol=SecurityProtocol.SASL_PLAINTEXT,
        sasl_mechanism=SaslMechanism.SCRAM_SHA_512,
        sasl_username="bot",
        sasl_password=Secret("hunter2"),
    )
    assert "hunter2" not in repr(cfg)
    assert "hunter2" not in str(cfg)
    assert str(Secret("hunter2")) == "***"
    opts = client_options(cfg)
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert opts["sasl_plain_username"] == "bot"
    assert opts["sasl_plain_password"] == "hunter2"
    assert opts["security_protocol"] == "SASL_PLAINTEXT"
    assert "ssl_context" not in opts


def test_ssl_options_build_a_context() -> None:
    cfg = KafkaConfig("127.0.0.1:9093", SPOOL, security_protocol=SecurityProtocol.SSL)
    opts = client_options(cfg)
    assert isinstance(opts["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in opts


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"security_protocol": SecurityProtocol.SASL_SSL}, "kafka.sasl_mechanism"),
        ({"sasl_username": "bot"}, "kafka.sasl_username"),
        ({"ssl_certfile": Path("/c.pem")}, "kafka.ssl_certfile"),
        ({"partitions": 0}, "kafka.partitions"),
        ({"bootstrap": ""}, "kafka.bootstrap"),
    ],
)
def test_config_errors_name_the_key(overrides: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {"bootstrap": "127.0.0.1:9092", "spool": SPOOL}
    settings.update(overrides)
    with pytest.raises(ValueError, match=message):
        KafkaConfig(**settings)  # type: ignore[arg-type]


def test_topic_creation_errors_name_topic_and_permission() -> None:
    cfg = KafkaConfig("127.0.0.1:9092", SPOOL, replication_factor=3)
    problems = creation_problems(
        cfg,
        [
            ("marginwatch.alerts", 36, "exists"),
            ("marginwatch.state", 29, None),
            ("other", 38, None),
            ("odd", 87, None),
        ],
    )
    assert problems == {
        "marginwatch.state": "kafka: cannot create topic marginwatch.state: the principal lacks "
        "the CREATE permission on the topic (ACL Topic:marginwatch.state CREATE)",
        "other": "kafka: cannot create topic other: replication factor 3 is larger than the "
        "number of brokers",
        "odd": "kafka: cannot create topic odd: "
        + problems["odd"].split(": ", 2)[2],  # the aiokafka error name for code 87
    }
    assert "error code 87" in problems["odd"]


def test_backoff_doubles_with_jitter_and_resets() -> None:
    backoff = Backoff(initial_s=0.2, max_s=1.0, floor=0.5, rng=random.Random(1).random)
    delays = [backoff.next_delay() for _ in range(5)]
    bounds = [0.2, 0.4, 0.8, 1.0, 1.0]
    for delay, bound in zip(delays, bounds, strict=True):
        assert bound / 2 <= delay <= bound
    backoff.reset()
    assert backoff.next_delay() <= 0.2


def test_mqtt_topics_escape_wildcards_and_levels() -> None:
    assert alert_topic("marginwatch", "binance", "sub-1") == "marginwatch/alerts/binance/sub-1"
    assert state_topic("marginwatch", "okx", "a/b+#") == "marginwatch/state/okx/a_b__"


def test_mqtt_options_carry_credentials_and_reject_a_spool() -> None:
    from monitor.sinks.config_types import MqttConfig
    from monitor.sinks.mqtt import client_options as mqtt_options

    opts = mqtt_options(MqttConfig("127.0.0.1", 1884, password=Secret("pw"), client_id="mw-1"))
    assert (opts["hostname"], opts["port"], opts["identifier"]) == ("127.0.0.1", 1884, "mw-1")
    assert (opts["username"], opts["password"]) == ("", "pw")
    assert "tls_context" not in opts
    assert "pw" not in repr(MqttConfig("127.0.0.1", password=Secret("pw")))
    with pytest.raises(ValueError, match=r"mqtt\.spool"):
        MqttConfig("127.0.0.1", spool=SPOOL)
    with pytest.raises(ValueError, match=r"mqtt\.port"):
        MqttConfig("127.0.0.1", port=70000)

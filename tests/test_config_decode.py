"""Config decoding: msgspec's errors come out in the file's own words, and the schema mirrors
the types it feeds. (The messages operators already know are pinned in test_config.py.)"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import parse_config
from monitor.config.decode import split_path
from monitor.config.messages import key_path, table_path
from monitor.config.schema import AlertOverrides
from monitor.errors import UsageError
from monitor.sinks.config_types import (
    KafkaConfig,
    MqttConfig,
    SaslMechanism,
    Secret,
    SecurityProtocol,
    SpoolConfig,
)
from monitor.sinks.spool import FsyncPolicy
from rules.alerts import AlertConfig

SIM = {"venues": [{"venue": "sim"}]}
PLAINTEXT_PW = "hunter2-TOPSECRET"


def parse(data: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    return parse_config(data, "mw.toml", environ=environ or {}, config_dir=Path("/etc/mw"))


def error_of(data: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(UsageError) as info:
        parse(data, environ)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("mw.toml: ")
    return message.removeprefix("mw.toml: ")


def with_sinks(**sinks: Any) -> dict[str, Any]:
    return {**SIM, "sinks": sinks}


def kafka(**extra: Any) -> dict[str, Any]:
    return {"bootstrap": "127.0.0.1:9092", "spool": {"directory": "spool"}, **extra}


def test_split_path_reads_msgspec_paths() -> None:
    assert split_path("Expected `int`, got `str` - at `$.accounts[1].alerts.cooldown_ms`") == (
        "Expected `int`, got `str`",
        ["accounts", 1, "alerts", "cooldown_ms"],
    )
    assert split_path("Object contains unknown field `daemonn`") == (
        "Object contains unknown field `daemonn`",
        [],
    )


@pytest.mark.parametrize(
    ("segments", "as_key", "as_table"),
    [
        (["daemon"], "daemon", "[daemon]"),
        (["daemon", "http"], "[daemon].http", "[daemon.http]"),
        (["sinks", "kafka", "spool"], "[sinks.kafka].spool", "[sinks.kafka.spool]"),
        (["accounts", 0], "accounts[0]", "accounts[0]"),
        (["accounts", 2, "alerts", "warning"], "accounts[2].alerts.warning", None),
        ([], "", ""),
    ],
)
def test_paths_read_as_the_file_is_written(
    segments: list[str | int], as_key: str, as_table: str | None
) -> None:
    assert key_path(segments) == as_key
    if as_table is not None:
        assert table_path(segments) == as_table


def _arms(hint: Any) -> set[Any]:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return set(typing.get_args(hint)) if union else {hint}


def test_alert_overrides_name_every_alert_config_field_with_its_type() -> None:
    # A field added to AlertConfig must be configurable, with its type (TOML has no null: an
    # optional field is one the file leaves out).
    wanted = typing.get_type_hints(AlertConfig)
    init = [f.name for f in dataclasses.fields(AlertConfig) if f.init]
    assert list(AlertOverrides.__struct_fields__) == init
    ours = typing.get_type_hints(AlertOverrides)
    for name in init:
        assert _arms(ours[name]) - {msgspec.UnsetType} == _arms(wanted[name]) - {type(None)}, name


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            with_sinks(kafka=kafka(spool={"directory": "s", "fsnc": "never"})),
            "[sinks.kafka.spool].fsnc: unknown key (did you mean 'fsync'?)",
        ),
        (
            with_sinks(kafka=kafka(sasl_pasword_env="PW")),
            "[sinks.kafka].sasl_pasword_env: unknown key (did you mean 'sasl_password_env'?)",
        ),
        (
            with_sinks(mqtt={"host": "h", "pasword_file": "pw"}),
            "[sinks.mqtt].pasword_file: unknown key (did you mean 'password_file'?)",
        ),
        (
            with_sinks(console={"colour": "never"}),
            "[sinks.console].colour: unknown key (did you mean 'color'?)",
        ),
        ({**SIM, "sinks": {"kafak": {}}}, "[sinks].kafak: unknown key (did you mean 'kafka'?)"),
        (
            {"venues": [{"venue": "sim", "wsurl": "ws://h:1"}]},
            "venues[0].wsurl: unknown key (did you mean 'ws_url'?)",
        ),
    ],
)
def test_unknown_keys_anywhere_get_the_closest_spelling(
    data: dict[str, Any], expected: str
) -> None:
    assert error_of(data) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {**SIM, "daemon": {"log_level": "inf"}},
            "[daemon].log_level: must be one of 'debug', 'info', 'warning', 'error', got 'inf'"
            " (did you mean 'info'?)",
        ),
        (
            with_sinks(console={"color": "red"}),
            "[sinks.console].color: must be one of 'auto', 'always', 'never', got 'red'",
        ),
        (
            with_sinks(kafka=kafka(spool={"directory": "s", "fsync": "always"})),
            "[sinks.kafka.spool].fsync: must be one of 'batch', 'never', got 'always'",
        ),
        (
            with_sinks(kafka=kafka(security_protocol="TLS")),
            "[sinks.kafka].security_protocol: must be one of 'PLAINTEXT', 'SSL', "
            "'SASL_PLAINTEXT', 'SASL_SSL', got 'TLS'",
        ),
        (
            {"venues": [{"venue": "sim", "resync_interval_s": -1.5}]},
            "venues[0].resync_interval_s: must be > 0, got -1.5",
        ),
        (
            {"venues": [{"venue": "sim", "stale_after_s": math.nan}]},
            "venues[0].stale_after_s: must be > 0, got nan",
        ),
        ({"accounts": {"a": 1}}, "accounts: expected an array of tables ([[accounts]]), got table"),
        ({"venues": ["sim"]}, "venues[0]: expected a table, got string"),
        (
            {"accounts": [{"venue": "sim", "name": "a", "api_key_env": 3}]},
            "accounts[0].api_key_env: expected a string, got integer",
        ),
        (
            {**SIM, "alerts": {"cooldown_ms": dt.date(2020, 1, 1)}},
            "[alerts].cooldown_ms: expected an integer, got datetime",
        ),
        (with_sinks(jsonl={"path": 3}), "[sinks.jsonl].path: expected a path string, got integer"),
        (
            with_sinks(mqtt={"host": "h", "port": 70000}),
            "[sinks.mqtt]: mqtt.port: 70000 is not a TCP port",
        ),
        (
            with_sinks(kafka=kafka(spool={"directory": "s", "max_records": 0})),
            "[sinks.kafka.spool]: spool.max_records: must be > 0, got 0",
        ),
        (
            {**SIM, "daemon": {"metrics_top_positions": math.inf}},
            "[daemon].metrics_top_positions: must be a whole number from 0 to 1000",
        ),
        (
            {**SIM, "daemon": {"metrics_top_positions": math.nan}},
            "[daemon].metrics_top_positions: must be a whole number from 0 to 1000",
        ),
        (
            {"venues": [{"venue": "sim"}, {"venue": "sim"}]},
            "venues[1].venue: venue 'sim' is configured twice",
        ),
        (
            {"accounts": [{"venue": "sim", "name": "a b"}]},
            "accounts[0].name: use letters, digits, '_', '.', '-' (at most 64)",
        ),
        (
            {"accounts": [{"venue": "sim", "name": "a", "alerts": {"warning": 1.1}}]},
            "accounts.a.alerts.danger: thresholds must strictly decrease from warning to"
            " liquidatable",
        ),
    ],
)
def test_each_decoding_failure_reads_in_the_files_terms(
    data: dict[str, Any], expected: str
) -> None:
    assert error_of(data) == expected


def test_a_password_written_in_plain_text_is_refused_without_quoting_it() -> None:
    message = error_of(with_sinks(kafka=kafka(sasl_password=PLAINTEXT_PW)))
    assert message == "[sinks.kafka].sasl_password: unknown key (did you mean 'sasl_password_env'?)"
    message = error_of(with_sinks(mqtt={"host": "h", "password": PLAINTEXT_PW}))
    assert message == "[sinks.mqtt].password: unknown key (did you mean 'password_env'?)"


def test_sink_secret_problems_name_the_key_never_the_value(tmp_path: Path) -> None:
    assert error_of(with_sinks(mqtt={"host": "h", "password_env": "MQTT_PW"})) == (
        "[sinks.mqtt].password_env: environment variable MQTT_PW is not set"
    )
    both = {"host": "h", "password_env": "MQTT_PW", "password_file": "pw"}
    assert error_of(with_sinks(mqtt=both), {"MQTT_PW": PLAINTEXT_PW}) == (
        "[sinks.mqtt].password_env: give either password_env or password_file, not both"
    )
    assert error_of(with_sinks(mqtt={"host": "h", "password_env": 3})) == (
        "[sinks.mqtt].password_env: expected a string, got integer"
    )
    (tmp_path / "empty").write_text("\n")
    empty = {"host": "h", "password_file": str(tmp_path / "empty")}
    assert error_of(with_sinks(mqtt=empty)) == (
        f"[sinks.mqtt].password_file: secret file {tmp_path / 'empty'} is empty"
    )


def test_sink_sections_decode_straight_into_the_sink_settings() -> None:
    cfg = parse(
        with_sinks(
            kafka=kafka(
                sasl_password_env="PW", security_protocol="SASL_SSL", sasl_mechanism="PLAIN"
            )
            | {"sasl_username": "mw", "ssl_cafile": "ca.pem"},
            mqtt={"host": "h", "tls_certfile": "/abs/c.pem", "tls_keyfile": "k.pem"},
        ),
        {"PW": PLAINTEXT_PW},
    )
    assert cfg.sinks.kafka == KafkaConfig(
        "127.0.0.1:9092",
        SpoolConfig(Path("/etc/mw/spool")),  # relative to the config's directory
        security_protocol=SecurityProtocol.SASL_SSL,
        sasl_mechanism=SaslMechanism.PLAIN,
        sasl_username="mw",
        sasl_password=Secret(PLAINTEXT_PW),
        ssl_cafile=Path("/etc/mw/ca.pem"),
    )
    assert cfg.sinks.mqtt == MqttConfig(
        "h", tls_certfile=Path("/abs/c.pem"), tls_keyfile=Path("/etc/mw/k.pem")
    )
    assert PLAINTEXT_PW not in repr(cfg)


def test_enums_also_take_the_member_names_the_config_always_accepted() -> None:
    cfg = parse(
        with_sinks(
            kafka=kafka(
                security_protocol="sasl_plaintext",
                sasl_mechanism="scram_sha_512",
                sasl_username="mw",
                sasl_password_env="PW",
                spool={"directory": "s", "fsync": "NEVER"},
            )
        ),
        {"PW": "pw"},
    )
    assert cfg.sinks.kafka is not None
    assert cfg.sinks.kafka.security_protocol is SecurityProtocol.SASL_PLAINTEXT
    assert cfg.sinks.kafka.sasl_mechanism is SaslMechanism.SCRAM_SHA_512
    assert cfg.sinks.kafka.spool.fsync is FsyncPolicy.NEVER


def test_account_alerts_override_only_what_they_name() -> None:
    cfg = parse(
        {
            "alerts": {"cooldown_ms": 5000, "hysteresis": 0.1},
            "accounts": [{"venue": "sim", "name": "a", "alerts": {"cooldown_ms": 7000}}],
        }
    )
    assert cfg.alerts == AlertConfig(cooldown_ms=5000, hysteresis=0.1)
    assert cfg.accounts[0].alerts == AlertConfig(cooldown_ms=7000, hysteresis=0.1)


# --- any document either decodes or fails as one line -------------------------------------

_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.dates(),
    st.times(),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_BASE: dict[str, Any] = {
    "daemon": {"http": "127.0.0.1:0", "log_level": "info", "metrics_top_positions": 0},
    "alerts": {"warning": 2.0, "cooldown_ms": 1000, "metric": "health"},
    "venues": [{"venue": "sim", "ws_url": "ws://h:1", "stale_after_s": 5}],
    "accounts": [{"venue": "sim", "name": "a", "alerts": {"warning": 2.5}}],
    "sinks": {
        "console": {"enabled": True, "color": "auto"},
        "jsonl": {"path": "a.jsonl"},
        "kafka": kafka(sasl_password_env="PW"),
        "mqtt": {"host": "h", "port": 1883, "password_env": "PW"},
    },
}


def _tables(doc: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every table's position in ``doc``."""
    out: list[tuple[str | int, ...]] = []
    if isinstance(doc, dict):
        out.append(path)
        for k, v in doc.items():
            out.extend(_tables(v, (*path, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_tables(v, (*path, i)))
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data(), key=st.text(min_size=1, max_size=20), value=_values)
def test_any_value_at_any_key_decodes_or_is_one_usage_line(
    data: st.DataObject, key: str, value: Any
) -> None:
    import copy

    doc = copy.deepcopy(_BASE)
    where = data.draw(st.sampled_from(_tables(doc)))
    table: Any = doc
    for s in where:
        table = table[s]
    keys = [*table, key]
    table[data.draw(st.sampled_from(keys))] = value
    try:
        parse(doc, {"PW": PLAINTEXT_PW})
    except UsageError as exc:
        message = str(exc)
        assert message.startswith("mw.toml: ")
        assert "\n" not in message
        assert PLAINTEXT_PW not in message

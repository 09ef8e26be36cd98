"""Config: the example parses to the values it says; every mistake is one line naming key+file."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import Config, HostPort, load_config, parse_host_port
from monitor.errors import UsageError
from monitor.sinks.config_types import SaslMechanism, Secret, SecurityProtocol
from monitor.sinks.spool import FsyncPolicy, Spool
from rules.alerts import AlertConfig

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "deploy" / "marginwatch.example.toml"
DEMO = REPO / "monitor" / "data" / "demo.toml"

ALICE_KEY = "alice-key-9f8e7d"
ALICE_SECRET = "alice-secret-TOPSECRET-1234"
BOB_KEY = "bob-key-abc"
BOB_SECRET = "bob-secret-TOPSECRET-5678"
ENV = {"BINANCE_ALICE_KEY": ALICE_KEY, "BINANCE_ALICE_SECRET": ALICE_SECRET}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The shipped example, copied beside the secret files it names (relative to the config)."""
    path = tmp_path / "marginwatch.toml"
    shutil.copy(EXAMPLE, path)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "bob.key").write_text(BOB_KEY + "\n")
    (tmp_path / "secrets" / "bob.secret").write_text(BOB_SECRET + "\n")
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mw.toml"
    path.write_text(text)
    return path


def error_of(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(UsageError) as info:
        load_config(path, environ or {})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_example_parses_to_its_documented_values(example: Path) -> None:
    cfg = load_config(example, ENV)
    assert cfg.daemon.http == HostPort("127.0.0.1", 9464)
    assert cfg.daemon.log_level == "info"
    assert cfg.alerts == AlertConfig(
        warning=2.0,
        danger=1.5,
        critical=1.2,
        liquidatable=1.0,
        hysteresis=0.05,
        cooldown_ms=30_000,
        liq_distance=0.05,
        liq_distance_hysteresis=0.2,
        mark_stale_ms=15_000,
        account_stale_ms=360_000,
    )
    (venue,) = cfg.venues
    assert (venue.venue, venue.rest_url, venue.ws_url) == ("binance-usdm", None, None)
    assert (venue.stale_after_s, venue.resync_interval_s) == (15.0, 300.0)
    alice, bob = cfg.accounts
    assert alice.key == ("binance-usdm", "alice")
    assert alice.api_key == Secret(ALICE_KEY)
    assert alice.api_secret is not None
    assert alice.api_secret.reveal() == ALICE_SECRET
    assert (alice.stale_after_s, alice.resync_interval_s) == (90.0, 120.0)
    assert (bob.stale_after_s, bob.resync_interval_s) == (None, None)
    # Overrides replace only what they name.
    assert alice.alerts.health_thresholds == (2.5, 1.5, 1.2, 1.0)
    assert alice.alerts.cooldown_ms == 60_000
    assert cfg.alert_config_for("binance-usdm", "alice") is alice.alerts
    assert cfg.alert_config_for("binance-usdm", "bob") == cfg.alerts
    assert bob.api_secret == Secret(BOB_SECRET)  # file read, trailing newline stripped
    assert cfg.sinks.console is not None and cfg.sinks.console.color == "auto"
    assert cfg.sinks.jsonl is not None
    assert cfg.sinks.jsonl.path == Path("/var/lib/marginwatch/alerts.jsonl")
    assert cfg.sinks.kafka is None and cfg.sinks.mqtt is None


def test_demo_config_parses() -> None:
    cfg = load_config(DEMO, {})
    assert [a.name for a in cfg.accounts] == ["alice", "bob", "carol", "dave"]
    assert {a.venue for a in cfg.accounts} == {"sim"}
    assert cfg.sinks.console is not None


def test_kafka_and_mqtt_sections_map_to_the_delivery_types(tmp_path: Path) -> None:
    (tmp_path / "mqtt.pw").write_text("mqtt-pw\n")
    path = write(
        tmp_path,
        """
[[accounts]]
venue = "sim"
name = "alice"
[sinks.kafka]
bootstrap = "127.0.0.1:9092"
security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "mw"
sasl_password_env = "KAFKA_PW"
linger_ms = 2
[sinks.kafka.spool]
directory = "spool/kafka"
max_bytes = 1048576
fsync = "never"
[sinks.mqtt]
host = "127.0.0.1"
port = 1884
password_file = "mqtt.pw"
""",
    )
    cfg = load_config(path, {"KAFKA_PW": "kafka-pw"})
    kafka, mqtt = cfg.sinks.kafka, cfg.sinks.mqtt
    assert kafka is not None and mqtt is not None
    assert kafka.bootstrap == "127.0.0.1:9092"
    assert kafka.security_protocol is SecurityProtocol.SASL_SSL
    assert kafka.sasl_mechanism is SaslMechanism.SCRAM_SHA_512
    assert kafka.sasl_password == Secret("kafka-pw")
    assert kafka.linger_ms == 2
    assert kafka.spool.directory == tmp_path / "spool" / "kafka"  # relative to the config file
    assert (kafka.spool.max_bytes, kafka.spool.fsync) == (1_048_576, FsyncPolicy.NEVER)
    assert (mqtt.host, mqtt.port, mqtt.password) == ("127.0.0.1", 1884, Secret("mqtt-pw"))
    assert mqtt.spool is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[daemon]\nhtp = "127.0.0.1:1"\n', "[daemon].htp: unknown key (did you mean 'http'?)"),
        ("[daemonn]\n", "[daemonn]: unknown section (did you mean 'daemon'?)"),
        (
            '[[accounts]]\nvenue = "sim"\nname = "a"\n[accounts.alerts]\nwarnng = 2.0\n',
            "accounts[0].alerts.warnng: unknown key (did you mean 'warning'?)",
        ),
        (
            '[[accounts]]\nvenue = "sim"\nname = "a"\n'
            '[[accounts]]\nvenue = "sim"\nname = "b"\nstale_after_s = "10"\n',
            "accounts[1].stale_after_s: expected a number, got string",
        ),
        (
            '[[accounts]]\nvenue = "sim"\nname = "a"\n[alerts]\ncooldown_ms = 1.5\n',
            "[alerts].cooldown_ms: expected an integer, got float",
        ),
        (
            '[[accounts]]\nvenue = "sim"\nname = "a"\n[alerts]\nwarning = 1.1\n',
            "[alerts].danger: thresholds must strictly decrease from warning to liquidatable",
        ),
        (
            '[[accounts]]\nvenue = "simm"\nname = "a"\n',
            "accounts[0].venue: must be one of 'sim', 'binance-usdm', 'binance-coinm', got 'simm'"
            " (did you mean 'sim'?)",
        ),
        ('[[accounts]]\nvenue = "sim"\n', "accounts[0].name: missing required key"),
        (
            '[[venues]]\nvenue = "sim"\nstale_after_s = 0\n',
            "venues[0].stale_after_s: must be > 0, got 0",
        ),
        ('[daemon]\nhttp = "localhost"\n', "[daemon].http: expected HOST:PORT, got 'localhost'"),
        ('[[venues]]\nvenue = "sim"\n[sinks.jsonl]\n', "[sinks.jsonl].path: missing required key"),
        (
            '[[venues]]\nvenue = "sim"\n[sinks.kafka]\nbootstrap = "h:1"\n',
            "[sinks.kafka].spool: missing required key",
        ),
        ("", "accounts: nothing to watch (add [[venues]] or [[accounts]])"),
        ("daemon = 3\n", "daemon: expected a table, got integer"),
    ],
)
def test_each_mistake_is_one_line_naming_key_and_file(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}: {expected}"


def test_missing_secret_names_the_variable_never_a_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[accounts]]\nvenue = "binance-usdm"\nname = "alice"\n'
        'api_key_env = "BINANCE_ALICE_KEY"\napi_secret_env = "BINANCE_ALICE_SECRET"\n',
    )
    message = error_of(path, {"BINANCE_ALICE_KEY": ALICE_KEY})
    assert message == (
        f"{path}: accounts.alice.api_secret_env: "
        "environment variable BINANCE_ALICE_SECRET is not set"
    )
    assert ALICE_KEY not in message


def test_secret_file_problems(tmp_path: Path) -> None:
    base = '[[accounts]]\nvenue = "binance-usdm"\nname = "bob"\napi_key_env = "K"\n'
    path = write(tmp_path, base + 'api_secret_file = "nope.secret"\n')
    assert error_of(path, {"K": "k"}) == (
        f"{path}: accounts.bob.api_secret_file: cannot read {tmp_path / 'nope.secret'}: "
        "No such file or directory"
    )
    path = write(tmp_path, base)
    assert error_of(path, {"K": "k"}) == (
        f"{path}: accounts.bob: missing api_secret_env or api_secret_file"
    )
    path = write(tmp_path, base + 'api_secret_env = "S"\napi_secret_file = "s"\n')
    assert error_of(path, {"K": "k", "S": "s"}) == (
        f"{path}: accounts.bob.api_secret_env: "
        "give either api_secret_env or api_secret_file, not both"
    )
    (tmp_path / "latin1.secret").write_bytes(b"s\xe9cret\xff")
    path = write(tmp_path, base + 'api_secret_file = "latin1.secret"\n')
    message = error_of(path, {"K": "k"})
    assert message == (
        f"{path}: accounts.bob.api_secret_file: secret file {tmp_path / 'latin1.secret'} "
        "is not UTF-8 text"
    )


def test_config_file_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "mw.toml"
    path.write_bytes(b'[daemon]\nlog_level = "\xff"\n')
    assert error_of(path) == f"{path}: not UTF-8 text (byte 22)"


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("kafka", "backoff_initial_s", "-1.0", "kafka.backoff_initial_s: must be > 0, got -1"),
        ("kafka", "backoff_max_s", "0.1", "kafka.backoff_max_s: must be >= backoff_initial_s"),
        ("kafka", "close_timeout_s", "15.0", "kafka.close_timeout_s: must be > 0 and <= 10"),
        ("kafka", "close_timeout_s", "0", "kafka.close_timeout_s: must be > 0 and <= 10"),
        ("kafka", "request_timeout_ms", "-5", "kafka.request_timeout_ms: must be > 0, got -5"),
        ("kafka", "linger_ms", "-1", "kafka.linger_ms: must be >= 0, got -1"),
        ("mqtt", "publish_timeout_s", "-2.5", "mqtt.publish_timeout_s: must be > 0, got -2.5"),
        ("mqtt", "keepalive_s", "0", "mqtt.keepalive_s: must be > 0, got 0"),
        ("mqtt", "close_timeout_s", "20.0", "mqtt.close_timeout_s: must be > 0 and <= 10"),
    ],
)
def test_broker_sink_delays_are_range_checked(
    tmp_path: Path, section: str, key: str, value: str, message: str
) -> None:
    heads = {
        "kafka": f'[sinks.kafka]\nbootstrap = "127.0.0.1:1"\n{key} = {value}\n'
        f'[sinks.kafka.spool]\ndirectory = "{tmp_path / "spool"}"\n',
        "mqtt": f'[sinks.mqtt]\nhost = "127.0.0.1"\n{key} = {value}\n',
    }
    path = write(tmp_path, SIM_ONLY + heads[section])
    assert error_of(path).startswith(f"{path}: [sinks.{section}]: {message}")


def test_spool_bounds_are_range_checked(tmp_path: Path) -> None:
    text = (
        SIM_ONLY + '[sinks.kafka]\nbootstrap = "127.0.0.1:1"\n'
        f'[sinks.kafka.spool]\ndirectory = "{tmp_path}"\nmax_bytes = 0\n'
    )
    assert "spool.max_bytes: must be > 0, got 0" in error_of(write(tmp_path, text))


def test_cli_reports_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[daemon]\nlog_levl = "debug"\n')
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"marginwatch: {path}: [daemon].log_levl: unknown key (did you mean 'log_level'?)\n"
    )
    assert main(["run", "--config", str(tmp_path / "absent.toml")]) == 2
    assert capsys.readouterr().err == f"marginwatch: {tmp_path / 'absent.toml'}: no such file\n"
    (tmp_path / "bad.toml").write_text("[daemon\n")
    assert main(["run", "--config", str(tmp_path / "bad.toml")]) == 2
    assert capsys.readouterr().err.startswith(
        f"marginwatch: {tmp_path / 'bad.toml'}: not valid TOML"
    )
    assert main(["run", "--config", str(DEMO), "--http", "nope"]) == 2
    assert capsys.readouterr().err == "marginwatch: --http: expected HOST:PORT, got 'nope'\n"


def test_cli_check_validates_and_exits_0(
    example: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    # --check also opens what the sinks will use: point the example's files at a writable place.
    text = example.read_text()
    assert "/var/lib/marginwatch" in text
    example.write_text(text.replace("/var/lib/marginwatch", str(example.parent)))
    assert main(["run", "--config", str(example), "--check"]) == 0
    assert capsys.readouterr().out == f"{example}: ok (2 accounts on 1 venues)\n"


def test_secrets_never_in_repr_str_or_logs(example: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg: Config = load_config(example, ENV)
    logging.getLogger("test").info("config loaded: %r / %s", cfg, cfg)
    rendered = repr(cfg) + str(cfg) + caplog.text
    for secret in (ALICE_KEY, ALICE_SECRET, BOB_KEY, BOB_SECRET):
        assert secret not in rendered
    assert "Secret('***')" in repr(cfg)
    assert str(cfg.accounts[0].api_secret) == "***"


def test_parse_host_port() -> None:
    assert parse_host_port("127.0.0.1:0", "x") == HostPort("127.0.0.1", 0)
    assert parse_host_port("[::1]:9464", "x") == HostPort("::1", 9464)
    assert str(HostPort("::1", 9464)) == "[::1]:9464"
    with pytest.raises(UsageError, match="x: expected HOST:PORT, got '1:99999'"):
        parse_host_port("1:99999", "x")


SIM_ONLY = '[[venues]]\nvenue = "sim"\nws_url = "ws://127.0.0.1:1"\n'


def test_console_is_on_without_a_sinks_section(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, SIM_ONLY), {})
    assert cfg.sinks.console is not None and cfg.sinks.console.color == "auto"


def test_every_sink_disabled_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, SIM_ONLY + "[sinks.console]\nenabled = false\n")
    assert error_of(path).startswith(f"{path}: [sinks]: every alert sink is disabled")


def test_console_may_be_disabled_when_another_sink_takes_the_alerts(tmp_path: Path) -> None:
    text = SIM_ONLY + '[sinks.console]\nenabled = false\n[sinks.jsonl]\npath = "a.jsonl"\n'
    cfg = load_config(write(tmp_path, text), {})
    assert cfg.sinks.console is None
    assert cfg.sinks.jsonl is not None and cfg.sinks.jsonl.path == tmp_path / "a.jsonl"


def test_cli_exits_2_when_every_sink_is_disabled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SIM_ONLY + "[sinks.console]\nenabled = false\n")
    assert main(["run", "--config", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert "[sinks]: every alert sink is disabled" in err
    assert "Traceback" not in err


def kafka_config_text(spool: Path) -> str:
    return (
        SIM_ONLY
        + '[sinks.kafka]\nbootstrap = "127.0.0.1:1"\n'
        + f'[sinks.kafka.spool]\ndirectory = "{spool}"\n'
    )


def test_check_refuses_a_spool_locked_by_another_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool_dir = tmp_path / "spool"
    path = write(tmp_path, kafka_config_text(spool_dir))
    holder = Spool(spool_dir, max_bytes=1024)  # a second open file: refused like a process
    try:
        assert main(["run", "--config", str(path), "--check"]) == 2
    finally:
        holder.close()
    err = capsys.readouterr().err.strip()
    assert err == (
        f"marginwatch: {path}: [sinks.kafka.spool].directory: {spool_dir}: "
        "spool is in use by another process"
    )
    assert main(["run", "--config", str(path), "--check"]) == 0  # free again


def test_check_refuses_a_spool_directory_that_cannot_be_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    spool_dir = tmp_path / "a-file" / "spool"
    path = write(tmp_path, kafka_config_text(spool_dir))
    assert main(["run", "--config", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: [sinks.kafka.spool].directory: {spool_dir}: cannot create or write" in err
    assert "Traceback" not in err


def test_check_refuses_a_jsonl_file_in_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SIM_ONLY + '[sinks.jsonl]\npath = "missing/a.jsonl"\n'
    path = write(tmp_path, text)
    assert main(["run", "--config", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: [sinks.jsonl].path: {tmp_path / 'missing' / 'a.jsonl'}: " in err


def test_daemon_start_with_a_locked_spool_is_a_usage_error(tmp_path: Path) -> None:
    from monitor.daemon import Daemon

    spool_dir = tmp_path / "spool"
    cfg = load_config(write(tmp_path, kafka_config_text(spool_dir)), {})
    holder = Spool(spool_dir, max_bytes=1024)
    try:
        with pytest.raises(UsageError) as info:
            Daemon(cfg)
    finally:
        holder.close()
    assert str(info.value) == (
        f"{cfg.path}: [sinks.kafka.spool].directory: {spool_dir}: "
        "spool is in use by another process"
    )


def test_metrics_top_positions_is_opt_in_and_bounded(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, SIM_ONLY), {}).daemon.metrics_top_positions == 0
    cfg = load_config(write(tmp_path, "[daemon]\nmetrics_top_positions = 20\n" + SIM_ONLY), {})
    assert cfg.daemon.metrics_top_positions == 20
    for bad in ("-1", "2.5", "5000"):
        path = write(tmp_path, f"[daemon]\nmetrics_top_positions = {bad}\n" + SIM_ONLY)
        assert error_of(path) == (
            f"{path}: [daemon].metrics_top_positions: must be a whole number from 0 to 1000"
        )
    path = write(tmp_path, '[daemon]\nmetrics_top_positions = "20"\n' + SIM_ONLY)
    assert error_of(path) == (
        f"{path}: [daemon].metrics_top_positions: expected a number, got string"
    )

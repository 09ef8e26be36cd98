"""The daemon's configuration: one TOML file, validated once into frozen types.

Every problem is a :class:`monitor.errors.UsageError` with one line naming the file and the key
(the CLI prints it and exits 2). Secrets are read from environment variables or files named in
the config and wrapped in :class:`monitor.sinks.config_types.Secret`, whose ``repr``/``str`` is
``***``; the config never holds a secret in plain text and no error message quotes one.

Sections (``deploy/marginwatch.example.toml`` is the annotated reference):

    [daemon]        http, log_level, metrics_top_positions
    [alerts]        rules.alerts.AlertConfig fields (defaults for every account)
    [[venues]]      venue, rest_url, ws_url, stale_after_s, resync_interval_s
    [[accounts]]    venue, name, api_key_env|api_key_file, api_secret_env|api_secret_file,
                    stale_after_s, resync_interval_s, [accounts.alerts] overrides
    [sinks.console] [sinks.jsonl] [sinks.kafka] [sinks.mqtt]

The console sink is on unless ``[sinks.console] enabled = false``; a config file in which every
alert sink is off is rejected by :func:`load_config` (its alerts would go nowhere). The demo,
which adds its own view as a sink, builds its config with :func:`parse_config`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from connectors import venues
from monitor.config.schema import (
    Table,
    Where,
    check_keys,
    dataclass_kwargs,
    get_bool,
    get_choice,
    get_number,
    get_opt_str,
    get_positive,
    get_str,
    read_secret,
    require_table,
    toml_type_name,
)
from monitor.errors import UsageError
from monitor.sinks.config_types import KafkaConfig, MqttConfig, Secret
from monitor.sinks.spool import SpoolError, check_directory
from rules.alerts import AlertConfig

LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_HTTP = "127.0.0.1:9464"
# Account names become metric labels and log fields: keep them short and plain.
T = TypeVar("T")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(text: str, what: str) -> HostPort:
    """``HOST:PORT`` or ``[v6]:PORT``; port 0 asks the OS for a free one; ``what`` names it."""
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"{what}: expected HOST:PORT, got {text!r}")
    return HostPort(host, int(port_text))


MAX_TOP_POSITIONS = 1000  # keeps the opt-in per-position series a bounded label set


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    http: HostPort = field(default_factory=lambda: parse_host_port(DEFAULT_HTTP, "http"))
    log_level: str = "info"
    # Opt-in per-position series for the N largest positions by MM (0: none; bounded labels).
    metrics_top_positions: int = 0


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """One venue's market-data connection.

    ``None`` means the connector's own default: production URLs, and staleness/resync intervals
    that suit the venue's streams (a busy mark stream and a quiet private stream differ).
    """

    venue: str
    rest_url: str | None = None
    ws_url: str | None = None
    stale_after_s: float | None = None
    resync_interval_s: float | None = None


@dataclass(frozen=True, slots=True)
class AccountConfig:
    venue: str
    name: str
    alerts: AlertConfig
    api_key: Secret | None = None
    api_secret: Secret | None = None
    # The private stream's own intervals; ``None``: the connector's default for private streams.
    stale_after_s: float | None = None
    resync_interval_s: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.venue, self.name)


@dataclass(frozen=True, slots=True)
class ConsoleSinkConfig:
    color: Literal["auto", "always", "never"] = "auto"


@dataclass(frozen=True, slots=True)
class JsonlSinkConfig:
    path: Path


@dataclass(frozen=True, slots=True)
class SinksConfig:
    console: ConsoleSinkConfig | None = None
    jsonl: JsonlSinkConfig | None = None
    kafka: KafkaConfig | None = None
    mqtt: MqttConfig | None = None


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    daemon: DaemonSettings
    alerts: AlertConfig
    venues: tuple[VenueConfig, ...]
    accounts: tuple[AccountConfig, ...]
    sinks: SinksConfig

    def alert_config_for(self, venue: str, account: str) -> AlertConfig:
        """The account's own alert settings (defaults plus its overrides)."""
        for acc in self.accounts:
            if acc.venue == venue and acc.name == account:
                return acc.alerts
        return self.alerts

    def venue(self, kind: str) -> VenueConfig:
        for v in self.venues:
            if v.venue == kind:
                return v
        raise KeyError(kind)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``; every problem is one :class:`UsageError` line."""
    file = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise UsageError(f"{file}: no such file") from exc
    except OSError as exc:
        raise UsageError(f"{file}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{file}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{file}: not UTF-8 text (byte {exc.start})") from exc
    cfg = parse_config(data, file, environ=os.environ if environ is None else environ)
    require_alert_sink(cfg)
    return cfg


def require_alert_sink(cfg: Config) -> None:
    """Reject a config whose alerts would go nowhere (every sink disabled or absent)."""
    s = cfg.sinks
    if s.console is None and s.jsonl is None and s.kafka is None and s.mqtt is None:
        raise UsageError(
            f"{cfg.path}: [sinks]: every alert sink is disabled; alerts would go nowhere "
            "(enable [sinks.console] or configure [sinks.jsonl], [sinks.kafka] or [sinks.mqtt])"
        )


def parse_config(
    data: Table, file: str, *, environ: Mapping[str, str], config_dir: Path | None = None
) -> Config:
    top = Where(file, "")
    check_keys(data, ("daemon", "alerts", "venues", "accounts", "sinks"), _Section(file, ""))
    cdir = Path(file).parent if config_dir is None else config_dir
    daemon = _daemon(data.get("daemon", {}), Where(file, "[daemon]"))
    alerts_where = Where(file, "[alerts]")
    alert_table = require_table(data.get("alerts", {}), top, "alerts")
    alert_defaults = dataclass_kwargs(AlertConfig, alert_table, alerts_where, required=False)
    alerts = _alert_config(alert_defaults, alerts_where)
    venues = _venues(data.get("venues", []), file)
    accounts = _accounts(data.get("accounts", []), file, alert_defaults, environ, cdir)
    venues = _implicit_venues(venues, accounts, file)
    sinks = _sinks(data.get("sinks", {}), file, environ, cdir)
    return Config(file, daemon, alerts, venues, accounts, sinks)


class _Section(Where):
    """Top-level keys are sections; an unknown one reads ``[daemonn]: unknown section``."""

    def error(self, key: str | None, message: str) -> UsageError:
        return UsageError(f"{self.file}: [{key}]: {message.replace('key', 'section', 1)}")


def _daemon(raw: object, where: Where) -> DaemonSettings:
    table = require_table(raw, Where(where.file, ""), "daemon")
    check_keys(table, ("http", "log_level", "metrics_top_positions"), where)
    http = parse_host_port(
        get_str(table, "http", where, DEFAULT_HTTP), f"{where.file}: {where.key('http')}"
    )
    level = get_choice(table, "log_level", where, LOG_LEVELS, "info")
    top = get_number(table, "metrics_top_positions", where, 0)
    if top != int(top) or not 0 <= top <= MAX_TOP_POSITIONS:
        raise where.error(
            "metrics_top_positions", f"must be a whole number from 0 to {MAX_TOP_POSITIONS}"
        )
    return DaemonSettings(http=http, log_level=level, metrics_top_positions=int(top))


def _alert_config(kwargs: dict[str, Any], where: Where) -> AlertConfig:
    try:
        return AlertConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        # AlertConfig checks its own invariants (thresholds ordered, bands positive); its
        # messages start with the offending field.
        raise _field_error(where, exc) from exc


def _field_error(where: Where, exc: Exception) -> UsageError:
    """Foreign ``"warning: must be ..."`` → ``<file>: [alerts].warning: must be ...``."""
    field_name, sep, rest = str(exc).partition(": ")
    if sep and field_name.isidentifier():
        return where.error(field_name, rest)
    return where.error(None, str(exc))


def _array_of_tables(raw: object, file: str, key: str) -> list[Table]:
    if not isinstance(raw, list):
        raise UsageError(
            f"{file}: {key}: expected an array of tables ([[{key}]]), got {toml_type_name(raw)}"
        )
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise UsageError(f"{file}: {key}[{i}]: expected a table, got {toml_type_name(item)}")
    return raw


_VENUE_KEYS = ("venue", "rest_url", "ws_url", "stale_after_s", "resync_interval_s")


def _venues(raw: object, file: str) -> tuple[VenueConfig, ...]:
    out: list[VenueConfig] = []
    for i, table in enumerate(_array_of_tables(raw, file, "venues")):
        where = Where(file, f"venues[{i}]")
        check_keys(table, _VENUE_KEYS, where)
        kind = get_choice(table, "venue", where, tuple(venues.connector_keys()))
        if any(v.venue == kind for v in out):
            raise where.error("venue", f"venue {kind!r} is configured twice")
        out.append(
            VenueConfig(
                venue=kind,
                rest_url=get_opt_str(table, "rest_url", where),
                ws_url=get_opt_str(table, "ws_url", where),
                stale_after_s=_opt_positive(table, "stale_after_s", where),
                resync_interval_s=_opt_positive(table, "resync_interval_s", where),
            )
        )
    return tuple(out)


_ACCOUNT_KEYS = (
    "venue",
    "name",
    "api_key_env",
    "api_key_file",
    "api_secret_env",
    "api_secret_file",
    "stale_after_s",
    "resync_interval_s",
    "alerts",
)


def _accounts(
    raw: object,
    file: str,
    alert_defaults: dict[str, Any],
    environ: Mapping[str, str],
    config_dir: Path,
) -> tuple[AccountConfig, ...]:
    tables = _array_of_tables(raw, file, "accounts")
    # Pass 1: shape and types, addressed by index (names are not trusted yet).
    shaped: list[tuple[Table, str, str, dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    for i, table in enumerate(tables):
        where = Where(file, f"accounts[{i}]")
        check_keys(table, _ACCOUNT_KEYS, where)
        kind = get_choice(table, "venue", where, tuple(venues.connector_keys()))
        name = get_str(table, "name", where)
        if not _NAME_RE.match(name):
            raise where.error("name", "use letters, digits, '_', '.', '-' (at most 64)")
        if (kind, name) in seen:
            raise where.error("name", f"account {name!r} on {kind} is configured twice")
        seen.add((kind, name))
        for key in ("stale_after_s", "resync_interval_s"):
            _opt_positive(table, key, where)
        overrides = require_table(table.get("alerts", {}), where, "alerts")
        kwargs = dataclass_kwargs(AlertConfig, overrides, where.child("alerts"), required=False)
        shaped.append((table, kind, name, kwargs))
    # Pass 2: secrets, addressed by account name (what an operator greps for).
    out: list[AccountConfig] = []
    for table, kind, name, overrides in shaped:
        where = Where(file, f"accounts.{name}")
        needs = venues.descriptor(kind).needs_credentials
        api_key = read_secret(table, "api_key", where, environ, config_dir, required=needs)
        secret = read_secret(table, "api_secret", where, environ, config_dir, required=needs)
        out.append(
            AccountConfig(
                venue=kind,
                name=name,
                alerts=_alert_config({**alert_defaults, **overrides}, where.child("alerts")),
                api_key=None if api_key is None else Secret(api_key),
                api_secret=None if secret is None else Secret(secret),
                stale_after_s=_opt_positive(table, "stale_after_s", where),
                resync_interval_s=_opt_positive(table, "resync_interval_s", where),
            )
        )
    return tuple(out)


def _opt_positive(table: Table, key: str, where: Where) -> float | None:
    return get_positive(table, key, where, 1.0) if key in table else None


def _implicit_venues(
    venues: tuple[VenueConfig, ...], accounts: tuple[AccountConfig, ...], file: str
) -> tuple[VenueConfig, ...]:
    """An account on a venue without a ``[[venues]]`` entry uses that venue's defaults."""
    out = list(venues)
    for acc in accounts:
        if not any(v.venue == acc.venue for v in out):
            out.append(VenueConfig(acc.venue))
    if not out:
        raise UsageError(f"{file}: accounts: nothing to watch (add [[venues]] or [[accounts]])")
    return tuple(out)


def _sinks(raw: object, file: str, environ: Mapping[str, str], config_dir: Path) -> SinksConfig:
    table = require_table(raw, Where(file, ""), "sinks")
    where = Where(file, "[sinks]")
    check_keys(table, ("console", "jsonl", "kafka", "mqtt"), where)
    jsonl = kafka = mqtt = None
    # On by default: a section left out does not silence the console (enabled = false does).
    console: ConsoleSinkConfig | None = ConsoleSinkConfig()
    if "console" in table:
        sub = require_table(table["console"], where, "console")
        w = Where(file, "[sinks.console]")
        check_keys(sub, ("enabled", "color"), w)
        console = None
        if get_bool(sub, "enabled", w, True):
            color = get_choice(sub, "color", w, ("auto", "always", "never"), "auto")
            console = ConsoleSinkConfig(color=color)  # type: ignore[arg-type]  # checked above
    if "jsonl" in table:
        sub = require_table(table["jsonl"], where, "jsonl")
        w = Where(file, "[sinks.jsonl]")
        check_keys(sub, ("path",), w)
        path = Path(get_str(sub, "path", w)).expanduser()
        jsonl = JsonlSinkConfig(path if path.is_absolute() else config_dir / path)
    if "kafka" in table:
        sub = require_table(table["kafka"], where, "kafka")
        kafka = _foreign(KafkaConfig, sub, Where(file, "[sinks.kafka]"), environ, config_dir)
    if "mqtt" in table:
        sub = require_table(table["mqtt"], where, "mqtt")
        mqtt = _foreign(MqttConfig, sub, Where(file, "[sinks.mqtt]"), environ, config_dir)
    return SinksConfig(console=console, jsonl=jsonl, kafka=kafka, mqtt=mqtt)


def _foreign(
    cls: type[T], table: Table, where: Where, environ: Mapping[str, str], config_dir: Path
) -> T:
    kwargs = dataclass_kwargs(
        cls,
        table,
        where,
        secret_type=Secret,
        secret_factory=Secret,
        environ=environ,
        config_dir=config_dir,
    )
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise _field_error(where, exc) from exc


# --- local resources the sinks need (checked by ``run --check``, reported the same at start) ---


def resource_error(cfg: Config, key: str, path: Path, exc: Exception) -> UsageError:
    """``<file>: <key>: <path>: <what is wrong>``: one line for an unusable file or directory."""
    if isinstance(exc, OSError):
        what = f"cannot create or write: {exc.strerror or exc}"
    else:  # SpoolError, or the sink's own UsageError: its message starts with the path
        what = str(exc).removeprefix(f"{path}: ")
    return UsageError(f"{cfg.path}: {key}: {path}: {what}")


def check_local_resources(cfg: Config) -> None:
    """Check, without starting anything, what the sinks will open: the JSONL file can be
    appended to, the Kafka spool directory can be created and written and is not locked by
    another process. Raises :class:`UsageError` naming the key and the path."""
    jsonl = cfg.sinks.jsonl
    if jsonl is not None:
        try:
            if jsonl.path.exists():
                with jsonl.path.open("ab"):
                    pass
            elif not os.access(jsonl.path.parent, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied or no such directory")
        except OSError as exc:
            raise resource_error(cfg, "[sinks.jsonl].path", jsonl.path, exc) from exc
    kafka = cfg.sinks.kafka
    if kafka is not None:
        directory = kafka.spool.directory
        try:
            check_directory(directory)
        except (SpoolError, OSError) as exc:
            raise resource_error(cfg, "[sinks.kafka.spool].directory", directory, exc) from exc

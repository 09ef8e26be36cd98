"""The daemon's configuration: one TOML file, validated once into frozen types.

Every problem is a :class:`monitor.errors.UsageError` with one line naming the file and the key
(the CLI prints it and exits 2). Secrets are read from environment variables or files named in
the config and wrapped in :class:`monitor.sinks.config_types.Secret`, whose ``repr``/``str`` is
``***``; the config never holds a secret in plain text and no error message quotes one.

Sections (``deploy/marginwatch.example.toml`` is the annotated reference; the file's shape is
:mod:`monitor.config.schema`):

    [daemon]        http, log_level, metrics_top_positions
    [alerts]        rules.alerts.AlertConfig fields (defaults for every account)
    [[venues]]      venue, rest_url, ws_url, stale_after_s, resync_interval_s
    [[accounts]]    venue, name, api_key_env|api_key_file, api_secret_env|api_secret_file,
                    stale_after_s, resync_interval_s, [accounts.alerts] overrides
    [sinks.console] [sinks.jsonl] [sinks.kafka] [sinks.mqtt]

Reading goes in three steps: sink secrets are read (:mod:`monitor.config.secrets`), the document
is decoded against the schema in one call (:mod:`monitor.config.decode`: keys, types, bounds),
then this module checks what a type cannot say (venue names from the registry, account names,
duplicates, account credentials, alert thresholds) and builds the objects below.

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
from typing import Any, Literal
from urllib.parse import urlsplit

from connectors import venues
from monitor.config.decode import decode
from monitor.config.messages import Where, not_one_of
from monitor.config.schema import (
    DEFAULT_HTTP,
    AccountSection,
    DaemonSection,
    JsonlSinkConfig,
    SinksSection,
    VenueConfig,
)
from monitor.config.secrets import read_secret, resolve_sink_secrets
from monitor.errors import UsageError
from monitor.sinks.config_types import KafkaConfig, MqttConfig, Secret
from rules.alerts import AlertConfig

__all__ = [
    "AccountConfig",
    "Config",
    "ConsoleSinkConfig",
    "DaemonSettings",
    "HostPort",
    "JsonlSinkConfig",
    "SinksConfig",
    "VenueConfig",
    "load_config",
    "parse_config",
    "parse_host_port",
]

# Account names become metric labels and log fields: keep them short and plain.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_TOP_POSITIONS = 1000  # keeps the opt-in per-position series a bounded label set


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int
    # Where the address was given (``--http`` or ``FILE: [daemon].http``): a listen error says it.
    source: str = field(default="--http", compare=False)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(text: str, what: str) -> HostPort:
    """``HOST:PORT`` or ``[v6]:PORT``; port 0 asks the OS for a free one; ``what`` names it."""
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"{what}: expected HOST:PORT, got {text!r}")
    return HostPort(host, int(port_text), what)


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    http: HostPort = field(default_factory=lambda: parse_host_port(DEFAULT_HTTP, "http"))
    log_level: str = "info"
    # Opt-in per-position series for the N largest positions by MM (0: none; bounded labels).
    metrics_top_positions: int = 0


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
    data: Mapping[str, Any],
    file: str,
    *,
    environ: Mapping[str, str],
    config_dir: Path | None = None,
) -> Config:
    """Validate parsed TOML ``data`` read from ``file``; relative paths in it are relative to
    ``config_dir`` (default: the file's directory)."""
    cdir = Path(file).parent if config_dir is None else config_dir
    raw = decode(resolve_sink_secrets(data, file, environ, cdir), file, cdir)
    # What no type can say, section by section in the order the old reader used.
    daemon = _daemon(raw.daemon, Where(file, "[daemon]"))
    alert_defaults = raw.alerts.given()
    alerts = _alert_config(alert_defaults, Where(file, "[alerts]"))
    checked = _venues(raw.venues, file)
    accounts = _accounts(raw.accounts, file, alert_defaults, environ, cdir)
    return Config(
        path=file,
        daemon=daemon,
        alerts=alerts,
        venues=_implicit_venues(checked, accounts, file),
        accounts=accounts,
        sinks=_sinks(raw.sinks),
    )


def _daemon(raw: DaemonSection, where: Where) -> DaemonSettings:
    http = parse_host_port(raw.http, f"{where.file}: {where.key('http')}")
    top = raw.metrics_top_positions
    if not (0 <= top <= MAX_TOP_POSITIONS and float(top).is_integer()):  # NaN fails the first
        raise where.error(
            "metrics_top_positions", f"must be a whole number from 0 to {MAX_TOP_POSITIONS}"
        )
    return DaemonSettings(http=http, log_level=raw.log_level, metrics_top_positions=int(top))


def _alert_config(kwargs: dict[str, Any], where: Where) -> AlertConfig:
    try:
        return AlertConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        # AlertConfig checks its own invariants (thresholds ordered, bands positive); its
        # messages start with the offending field.
        field_name, sep, rest = str(exc).partition(": ")
        if sep and field_name.isidentifier():
            raise where.error(field_name, rest) from exc
        raise where.error(None, str(exc)) from exc


def _venue_kind(kind: str, where: Where) -> str:
    """A venue the registry knows, named in registry order when it is not one."""
    choices = tuple(venues.connector_keys())
    if kind not in choices:
        raise where.error("venue", not_one_of(kind, choices))
    return kind


def _venues(raw: list[VenueConfig], file: str) -> tuple[VenueConfig, ...]:
    out: list[VenueConfig] = []
    for i, venue in enumerate(raw):
        where = Where(file, f"venues[{i}]")
        kind = _venue_kind(venue.venue, where)
        if any(v.venue == kind for v in out):
            raise where.error("venue", f"venue {kind!r} is configured twice")
        _url(venue.rest_url, "rest_url", ("http", "https"), where)
        _url(venue.ws_url, "ws_url", ("ws", "wss"), where)
        out.append(venue)
    return tuple(out)


def _url(value: str | None, key: str, schemes: tuple[str, ...], where: Where) -> None:
    """A URL the connector can use: one of ``schemes``, with a host. Leaving the key out means
    the venue's production endpoint; an empty or malformed value is an error, never a silent
    fallback to production."""
    if value is None:
        return
    want = " or ".join(f"{s}://" for s in schemes)
    try:
        parts = urlsplit(value)
        # .port raises ValueError for a port that is not a number from 0 to 65535.
        ok = parts.scheme in schemes and bool(parts.hostname) and parts.port != 0
    except ValueError:
        ok = False
    if not ok:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise where.error(key, f"must be a URL ({want}) with a host, got {shown!r}")


def _accounts(
    raw: list[AccountSection],
    file: str,
    alert_defaults: dict[str, Any],
    environ: Mapping[str, str],
    config_dir: Path,
) -> tuple[AccountConfig, ...]:
    # Pass 1: names, addressed by index (names are not trusted yet).
    seen: set[tuple[str, str]] = set()
    for i, acc in enumerate(raw):
        where = Where(file, f"accounts[{i}]")
        kind = _venue_kind(acc.venue, where)
        if not _NAME_RE.match(acc.name):
            raise where.error("name", "use letters, digits, '_', '.', '-' (at most 64)")
        if (kind, acc.name) in seen:
            raise where.error("name", f"account {acc.name!r} on {kind} is configured twice")
        seen.add((kind, acc.name))
    # Pass 2: secrets and alert settings, addressed by account name (what an operator greps for).
    out: list[AccountConfig] = []
    for acc in raw:
        where = Where(file, f"accounts.{acc.name}")
        needs = venues.descriptor(acc.venue).needs_credentials
        api_key = read_secret(
            "api_key",
            acc.api_key_env,
            acc.api_key_file,
            where,
            environ=environ,
            config_dir=config_dir,
            required=needs,
        )
        secret = read_secret(
            "api_secret",
            acc.api_secret_env,
            acc.api_secret_file,
            where,
            environ=environ,
            config_dir=config_dir,
            required=needs,
        )
        overrides = {**alert_defaults, **acc.alerts.given()}
        out.append(
            AccountConfig(
                venue=acc.venue,
                name=acc.name,
                alerts=_alert_config(overrides, where.child("alerts")),
                api_key=None if api_key is None else Secret(api_key),
                api_secret=None if secret is None else Secret(secret),
                stale_after_s=acc.stale_after_s,
                resync_interval_s=acc.resync_interval_s,
            )
        )
    return tuple(out)


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


def _sinks(raw: SinksSection) -> SinksConfig:
    # On by default: a section left out does not silence the console (enabled = false does).
    console: ConsoleSinkConfig | None = ConsoleSinkConfig()
    if raw.console is not None:
        console = ConsoleSinkConfig(raw.console.color) if raw.console.enabled else None
    return SinksConfig(console=console, jsonl=raw.jsonl, kafka=raw.kafka, mqtt=raw.mqtt)

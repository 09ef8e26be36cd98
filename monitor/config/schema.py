"""The config file's shape as msgspec ``Struct`` types: what each TOML table may say.

:func:`monitor.config.decode.decode` turns the parsed TOML into a :class:`RawConfig` in one
``msgspec.convert``: unknown keys, wrong types, missing keys and the numeric bounds written here
(``Meta``) are all caught there, each reported as one line naming the file and the key. What a
type cannot say (the venue names the registry knows, secrets read from the environment or
files, rules across fields) is checked afterwards by :mod:`monitor.config.core`.

Every table is a frozen Struct with ``forbid_unknown_fields``: a key it does not name is an
error, never silently ignored. Where the domain object is exactly what the file says
(:class:`VenueConfig`, :class:`JsonlSinkConfig`, and the sink settings in
:mod:`monitor.sinks.config_types`), the Struct *is* the domain type; the others here are only
the file's wording of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from monitor.sinks.config_types import KafkaConfig, MqttConfig

#: Staleness and resync intervals: positive, and at most a day (``inf`` or ``1e300`` is a
#: typo, not a wish; leave the key out for the venue's default, which may be "never").
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0, le=86_400)]
LogLevel = Literal["debug", "info", "warning", "error"]
DEFAULT_HTTP = "127.0.0.1:9464"


class VenueConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One venue's market-data connection (a ``[[venues]]`` entry).

    ``None`` means the connector's own default: production URLs, and staleness/resync intervals
    that suit the venue's streams (a busy mark stream and a quiet private stream differ).
    ``venue`` is checked against the venue registry after decoding.
    """

    venue: str
    rest_url: str | None = None
    ws_url: str | None = None
    stale_after_s: PositiveSeconds | None = None
    resync_interval_s: PositiveSeconds | None = None


class JsonlSinkConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[sinks.jsonl]``; a relative path is relative to the config file (see the decoder)."""

    path: Path


class DaemonSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[daemon]``; ``http`` is parsed as HOST:PORT and the position count range-checked later
    (a float here, so ``2.5`` gets the same message as ``5000``: a whole number from 0 to N)."""

    http: str = DEFAULT_HTTP
    log_level: LogLevel = "info"
    metrics_top_positions: float = 0.0


class AlertOverrides(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[alerts]`` or ``[accounts.alerts]``: any of ``rules.alerts.AlertConfig``'s fields.

    Every field is ``UNSET`` unless the file gives it, so an account's table overrides only
    what it names. AlertConfig checks the values (tests keep these fields equal to its own).
    """

    warning: float | UnsetType = UNSET
    danger: float | UnsetType = UNSET
    critical: float | UnsetType = UNSET
    liquidatable: float | UnsetType = UNSET
    metric: Literal["health", "ratio"] | UnsetType = UNSET
    ratio_higher_is_worse: bool | UnsetType = UNSET
    hysteresis: float | UnsetType = UNSET
    cooldown_ms: int | UnsetType = UNSET
    liq_distance: float | UnsetType = UNSET
    liq_distance_hysteresis: float | UnsetType = UNSET
    mark_stale_ms: int | UnsetType = UNSET
    account_stale_ms: int | UnsetType = UNSET
    feed_down_grace_ms: int | UnsetType = UNSET
    inputs_missing_ms: int | UnsetType = UNSET

    def given(self) -> dict[str, Any]:
        """The fields the file set, as ``AlertConfig`` keyword arguments."""
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not UNSET
        }


class AccountSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An ``[[accounts]]`` entry. Secrets are named, never written: ``<secret>_env`` holds an
    environment variable's name, ``<secret>_file`` a file's path (relative to the config)."""

    venue: str
    name: str
    api_key_env: str | None = None
    api_key_file: str | None = None
    api_secret_env: str | None = None
    api_secret_file: str | None = None
    # The private stream's own intervals; ``None``: the connector's default for private streams.
    stale_after_s: PositiveSeconds | None = None
    resync_interval_s: PositiveSeconds | None = None
    alerts: AlertOverrides = msgspec.field(default_factory=AlertOverrides)


class ConsoleSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    color: Literal["auto", "always", "never"] = "auto"


class SinksSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[sinks.*]``. A section left out is off, except the console (``enabled = false``)."""

    console: ConsoleSection | None = None
    jsonl: JsonlSinkConfig | None = None
    kafka: KafkaConfig | None = None
    mqtt: MqttConfig | None = None


class RawConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole file. Its fields are the sections; an unknown one is an ``unknown section``."""

    daemon: DaemonSection = msgspec.field(default_factory=DaemonSection)
    alerts: AlertOverrides = msgspec.field(default_factory=AlertOverrides)
    venues: list[VenueConfig] = msgspec.field(default_factory=list)
    accounts: list[AccountSection] = msgspec.field(default_factory=list)
    sinks: SinksSection = msgspec.field(default_factory=SinksSection)

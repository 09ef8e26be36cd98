"""Typed, frozen settings of the broker sinks. The config loader decodes them; sinks read them.

They are msgspec ``Struct`` types whose fields are the keys of ``[sinks.kafka]``, ``[sinks.mqtt]``
and ``[sinks.kafka.spool]``: :mod:`monitor.config` decodes those tables straight into them
(unknown keys rejected), and their ``__post_init__`` checks run whether the file or a test
builds them. A check failing raises ``ValueError`` whose message starts with the key.

Secrets (SASL and MQTT passwords) are resolved by the config layer from an environment variable
or a file (``<field>_env`` / ``<field>_file`` in the file) and wrapped in :class:`Secret`, whose
``repr``/``str`` never shows the value, so a config object can be logged or shown in an error
without leaking it.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import msgspec

from monitor.sinks.spool import FsyncPolicy

#: How long the daemon waits for each sink's close() at shutdown before giving up (exit 1).
SINK_CLOSE_TIMEOUT_S = 15.0
#: What a broker sink needs after its own close timeout: cancel the run task, stop the client
#: (bounded at 5 s) and spool what is left. ``close_timeout_s`` may use the rest.
MAX_CLOSE_TIMEOUT_S = SINK_CLOSE_TIMEOUT_S - 5.0


def _check_timing(
    sink: str, *, backoff_initial_s: float, backoff_max_s: float, close_timeout_s: float
) -> None:
    """The delays every broker sink has: positive, ordered, and a close that fits the daemon's."""
    if not backoff_initial_s > 0:
        raise ValueError(f"{sink}.backoff_initial_s: must be > 0, got {backoff_initial_s:g}")
    if not backoff_max_s >= backoff_initial_s:
        raise ValueError(
            f"{sink}.backoff_max_s: must be >= backoff_initial_s ({backoff_initial_s:g}), "
            f"got {backoff_max_s:g}"
        )
    if not 0 < close_timeout_s <= MAX_CLOSE_TIMEOUT_S:
        raise ValueError(
            f"{sink}.close_timeout_s: must be > 0 and <= {MAX_CLOSE_TIMEOUT_S:g} (the daemon "
            f"gives each sink {SINK_CLOSE_TIMEOUT_S:g} s to close), got {close_timeout_s:g}"
        )


class Secret:
    """A string that does not print itself. Use :meth:`reveal` at the one place it is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class _Spelled(StrEnum):
    """An enum the config file may also spell by member name, as written or in lower case
    (``sasl_ssl``, ``scram_sha_512``): what the config has always accepted."""

    @classmethod
    def _missing_(cls, value: object) -> _Spelled | None:
        for member in cls:
            if value in (member.name, member.name.lower()):
                return member
        return None


class SecurityProtocol(_Spelled):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(_Spelled):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class SpoolConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where and how much a sink may spool while its broker is unreachable."""

    directory: Path
    max_bytes: int = 256 * 1024 * 1024
    max_records: int | None = None
    fsync: FsyncPolicy = FsyncPolicy.BATCH

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError(f"spool.max_bytes: must be > 0, got {self.max_bytes}")
        if self.max_records is not None and self.max_records <= 0:
            raise ValueError(f"spool.max_records: must be > 0, got {self.max_records}")


class KafkaConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bootstrap: str  # "host:port[,host:port]"
    spool: SpoolConfig
    alerts_topic: str = "marginwatch.alerts"
    state_topic: str = "marginwatch.state"
    partitions: int = 6
    state_partitions: int = 6
    replication_factor: int = 1
    create_topics: bool = True
    client_id: str = "marginwatch"
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    compression: str | None = None  # None, "gzip", "lz4", "zstd", "snappy" (codec installed)
    linger_ms: int = 5
    max_batch_bytes: int = 64 * 1024
    #: How long a send may wait for its ack before the sink treats the broker as down and
    #: spools (aiokafka's request timeout; its batches expire after it).
    request_timeout_ms: int = 30_000
    #: Reconnect backoff: doubles from the first value up to the second, with jitter.
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    #: How long close() waits for the queue to reach the broker before spooling the rest.
    close_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        # ValueError names the key; the config loader prefixes the file (UsageError).
        sasl = self.security_protocol in (
            SecurityProtocol.SASL_PLAINTEXT,
            SecurityProtocol.SASL_SSL,
        )
        if sasl and (
            self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None
        ):
            raise ValueError(
                f"kafka.sasl_mechanism, sasl_username, sasl_password: all required with "
                f"security_protocol {self.security_protocol.value}"
            )
        if not sasl and (self.sasl_username or self.sasl_password is not None):
            raise ValueError(
                f"kafka.sasl_username: SASL credentials given but security_protocol is "
                f"{self.security_protocol.value}"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("kafka.ssl_certfile, ssl_keyfile: give both or neither")
        if self.partitions < 1 or self.state_partitions < 1 or self.replication_factor < 1:
            raise ValueError("kafka.partitions, replication_factor: must be at least 1")
        if not self.bootstrap:
            raise ValueError("kafka.bootstrap: required (host:port[,host:port])")
        if self.request_timeout_ms <= 0:
            raise ValueError(
                f"kafka.request_timeout_ms: must be > 0, got {self.request_timeout_ms}"
            )
        if self.linger_ms < 0:
            raise ValueError(f"kafka.linger_ms: must be >= 0, got {self.linger_ms}")
        if self.max_batch_bytes <= 0:
            raise ValueError(f"kafka.max_batch_bytes: must be > 0, got {self.max_batch_bytes}")
        _check_timing(
            "kafka",
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            close_timeout_s=self.close_timeout_s,
        )


class MqttConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str
    port: int = 1883
    username: str | None = None
    password: Secret | None = None
    tls: bool = False
    tls_cafile: Path | None = None
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    topic_prefix: str = "marginwatch"
    client_id: str = "marginwatch"
    keepalive_s: int = 30
    #: A QoS-1 publish not acknowledged within this time counts as a failed connection.
    publish_timeout_s: float = 10.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    close_timeout_s: float = 10.0
    #: Reserved: the MQTT sink keeps unacknowledged alerts in memory; Kafka is the durable path.
    spool: SpoolConfig | None = None

    def __post_init__(self) -> None:
        if self.spool is not None:
            raise ValueError("mqtt.spool: not supported (use the Kafka sink for a durable spool)")
        if not self.host:
            raise ValueError("mqtt.host: required")
        if not 0 < self.port < 65536:
            raise ValueError(f"mqtt.port: {self.port} is not a TCP port")
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("mqtt.tls_certfile, tls_keyfile: give both or neither")
        if not self.topic_prefix or any(c in self.topic_prefix for c in "+#"):
            raise ValueError("mqtt.topic_prefix: must be non-empty, without + or #")
        if self.keepalive_s <= 0:
            raise ValueError(f"mqtt.keepalive_s: must be > 0, got {self.keepalive_s}")
        if not self.publish_timeout_s > 0:
            raise ValueError(f"mqtt.publish_timeout_s: must be > 0, got {self.publish_timeout_s:g}")
        _check_timing(
            "mqtt",
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            close_timeout_s=self.close_timeout_s,
        )

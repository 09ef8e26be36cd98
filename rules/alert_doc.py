"""The alert document and the account-state document: shapes, ids and JSON (schema version 1).

This module is the bottom of the alert layer: plain frozen values and their encoding, no policy.
:mod:`rules.alerts` decides *when* to alert; this module decides *what an alert looks like*.

Ids are deterministic (see :func:`alert_id`): the same transition triggered by the same venue
input always yields the same id, across sink retries and process restarts, so consumers can drop
duplicates of an at-least-once delivery by id alone. No wall clock or randomness enters an id.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeAlias, cast, get_args

import orjson

SCHEMA_VERSION = 1
TOP_POSITIONS_MAX = 5

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"

AlertKind = Literal[
    "margin_level",
    "liquidation_distance",
    "feed_stale",
    "feed_recovered",
    "venue_margin_call",
    "model_drift",
    "position_liquidated",
    "spool_full",
    "delivery_failing",
    "rest_banned",
]
ALERT_KINDS: frozenset[str] = frozenset(get_args(AlertKind))


class Level(enum.IntEnum):
    """Margin level of one account; higher is closer to liquidation. JSON: lowercase name."""

    OK = 0
    WARNING = 1
    DANGER = 2
    CRITICAL = 3
    LIQUIDATABLE = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Level:
        try:
            return cls[label.upper()]
        except KeyError:
            raise ValueError(f"level: unknown level {label!r}") from None


class DocumentError(ValueError):
    """A JSON document that is not a valid schema-1 alert or state document."""


def alert_id(venue: str, account: str, kind: str, transition: str, event_ms: int) -> str:
    """Deterministic id of one transition: 32 hex chars of sha256 over its natural key.

    ``transition`` names what changed (``"danger>critical"``, ``"far>near"``,
    ``"fresh>stale"`` …) and ``event_ms`` is the venue event time of the input that triggered it
    (or, for kinds without a venue input, the time the condition started, which is itself derived
    from inputs). A replay of the same venue tick after a restart, with the account's level
    restored from its state document, therefore reproduces the id. The per-account sequence
    number is deliberately *not* part of the key: it lives in process memory and would change the
    id of a replayed transition whenever the state document lagged the alert.
    """
    key = f"{SCHEMA_VERSION}|{venue}|{account}|{kind}|{transition}|{event_ms}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _finite(x: float | None) -> float | None:
    """JSON has no infinities: unknown or unbounded figures are ``null``."""
    if x is None or not math.isfinite(x):
        return None
    return x


def _opt_float(v: object, name: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise DocumentError(f"{name}: expected a number or null")
    return float(v)


def _float(v: object, name: str) -> float:
    x = _opt_float(v, name)
    if x is None:
        raise DocumentError(f"{name}: expected a number")
    return x


def _int(v: object, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise DocumentError(f"{name}: expected an integer")
    return v


def _bool(v: object, name: str) -> bool:
    if not isinstance(v, bool):
        raise DocumentError(f"{name}: expected true or false")
    return v


def _opt_int(v: object, name: str) -> int | None:
    return None if v is None else _int(v, name)


def _str(v: object, name: str) -> str:
    if not isinstance(v, str):
        raise DocumentError(f"{name}: expected a string")
    return v


def _document(data: bytes | str, what: str) -> Mapping[str, object]:
    """The top-level object of a schema-1 ``what`` document, version checked."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DocumentError(f"{what}: not JSON") from exc
    d = _obj(raw, what)
    version = _int(d.get("schema_version"), "schema_version")
    if version != SCHEMA_VERSION:
        raise DocumentError(f"schema_version: unsupported version {version}")
    return d


def _obj(v: object, name: str) -> Mapping[str, object]:
    if not isinstance(v, dict):
        raise DocumentError(f"{name}: expected an object")
    return cast(Mapping[str, object], v)


def _level(v: object, name: str) -> Level:
    try:
        return Level.from_label(_str(v, name))
    except ValueError as exc:
        raise DocumentError(f"{name}: unknown level {v!r}") from exc


@dataclass(frozen=True, slots=True)
class Figures:
    """The account figures an alert carries. ``health`` is ``None`` when MM is 0 (infinite)."""

    equity: float
    maintenance_margin: float
    initial_margin: float
    margin_ratio: float | None
    health: float | None
    liq_distance_down: float | None = None
    liq_distance_up: float | None = None

    def to_dict(self) -> JsonObject:
        return {
            "equity": _finite(self.equity),
            "maintenance_margin": _finite(self.maintenance_margin),
            "initial_margin": _finite(self.initial_margin),
            "margin_ratio": _finite(self.margin_ratio),
            "health": _finite(self.health),
            "liquidation_distance": {
                "down": _finite(self.liq_distance_down),
                "up": _finite(self.liq_distance_up),
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Figures:
        dist = _obj(d.get("liquidation_distance"), "figures.liquidation_distance")
        equity = _opt_float(d.get("equity"), "figures.equity")
        mm = _opt_float(d.get("maintenance_margin"), "figures.maintenance_margin")
        im = _opt_float(d.get("initial_margin"), "figures.initial_margin")
        return cls(
            equity=math.nan if equity is None else equity,
            maintenance_margin=math.nan if mm is None else mm,
            initial_margin=math.nan if im is None else im,
            margin_ratio=_opt_float(d.get("margin_ratio"), "figures.margin_ratio"),
            health=_opt_float(d.get("health"), "figures.health"),
            liq_distance_down=_opt_float(dist.get("down"), "figures.liquidation_distance.down"),
            liq_distance_up=_opt_float(dist.get("up"), "figures.liquidation_distance.up"),
        )

    def summary(self) -> str:
        """Short human text: ``health 1.14, margin ratio 87.7%, -4.1% to liquidation``."""
        parts = ["health ∞" if self.health is None else f"health {self.health:.2f}"]
        if self.margin_ratio is not None and math.isfinite(self.margin_ratio):
            parts.append(f"margin ratio {self.margin_ratio * 100:.1f}%")
        down, up = self.liq_distance_down, self.liq_distance_up
        if down is not None and (up is None or down <= up):
            parts.append(f"-{down * 100:.1f}% to liquidation")
        elif up is not None:
            parts.append(f"+{up * 100:.1f}% to liquidation")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class TopPosition:
    """One of the largest contributors to the account's maintenance margin."""

    symbol: str
    side: str
    notional: float
    maintenance_margin: float
    mm_share: float | None
    liquidation_price: float | None

    def to_dict(self) -> JsonObject:
        return {
            "symbol": self.symbol,
            "side": self.side,
            "notional": _finite(self.notional),
            "maintenance_margin": _finite(self.maintenance_margin),
            "mm_share": _finite(self.mm_share),
            "liquidation_price": _finite(self.liquidation_price),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> TopPosition:
        return cls(
            symbol=_str(d.get("symbol"), "top_positions.symbol"),
            side=_str(d.get("side"), "top_positions.side"),
            notional=_float(d.get("notional"), "top_positions.notional"),
            maintenance_margin=_float(
                d.get("maintenance_margin"), "top_positions.maintenance_margin"
            ),
            mm_share=_opt_float(d.get("mm_share"), "top_positions.mm_share"),
            liquidation_price=_opt_float(
                d.get("liquidation_price"), "top_positions.liquidation_price"
            ),
        )


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, schema version 1. Immutable; :meth:`with_emit_time` stamps a copy for sinks.

    ``detail`` holds kind-specific fields (stale inputs, drift figures, margin-call positions …)
    and must be treated as read-only.
    """

    id: str
    kind: AlertKind
    venue: str
    account: str
    level: Level
    previous_level: Level
    figures: Figures | None
    top_positions: tuple[TopPosition, ...]
    event_time_ms: int
    receive_time_ms: int
    message: str
    detail: JsonObject = field(default_factory=dict)
    emit_time_ms: int | None = None
    schema_version: int = SCHEMA_VERSION

    def with_emit_time(self, emit_ms: int) -> Alert:
        return replace(self, emit_time_ms=emit_ms)

    def key(self) -> bytes:
        """Kafka message key: one account's alerts stay ordered in one partition."""
        return f"{self.venue}:{self.account}".encode()

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers so consumers can route without decoding the body."""
        return [
            ("kind", self.kind.encode()),
            ("level", self.level.label.encode()),
            ("schema_version", str(self.schema_version).encode()),
        ]

    def to_dict(self) -> JsonObject:
        return {
            "schema_version": self.schema_version,
            "id": self.id,
            "kind": self.kind,
            "venue": self.venue,
            "account": self.account,
            "level": self.level.label,
            "previous_level": self.previous_level.label,
            "figures": None if self.figures is None else self.figures.to_dict(),
            "top_positions": [p.to_dict() for p in self.top_positions],
            "event_time_ms": self.event_time_ms,
            "receive_time_ms": self.receive_time_ms,
            "emit_time_ms": self.emit_time_ms,
            "message": self.message,
            "detail": self.detail,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> Alert:
        """Decode a schema-1 alert; raises :class:`DocumentError` naming the bad field."""
        d = _document(data, "alert")
        kind = _str(d.get("kind"), "kind")
        if kind not in ALERT_KINDS:
            raise DocumentError(f"kind: unknown kind {kind!r}")
        figures = d.get("figures")
        tops = d.get("top_positions")
        if not isinstance(tops, list):
            raise DocumentError("top_positions: expected a list")
        detail = _obj(d.get("detail", {}), "detail")
        return cls(
            id=_str(d.get("id"), "id"),
            kind=cast(AlertKind, kind),
            venue=_str(d.get("venue"), "venue"),
            account=_str(d.get("account"), "account"),
            level=_level(d.get("level"), "level"),
            previous_level=_level(d.get("previous_level"), "previous_level"),
            figures=None if figures is None else Figures.from_dict(_obj(figures, "figures")),
            top_positions=tuple(TopPosition.from_dict(_obj(p, "top_positions")) for p in tops),
            event_time_ms=_int(d.get("event_time_ms"), "event_time_ms"),
            receive_time_ms=_int(d.get("receive_time_ms"), "receive_time_ms"),
            emit_time_ms=_opt_int(d.get("emit_time_ms"), "emit_time_ms"),
            message=_str(d.get("message"), "message"),
            detail=cast(JsonObject, dict(detail)),
            schema_version=SCHEMA_VERSION,
        )


@dataclass(frozen=True, slots=True)
class StateDocument:
    """Latest level and figures of one account (compacted Kafka topic / retained MQTT message).

    ``seq`` is the account's transition counter; with ``level`` and ``liquidation_near`` (a
    liquidation-distance alert is active) it lets a restarted engine restore its alert state
    (:meth:`rules.alerts.AlertState.from_document`).
    """

    venue: str
    account: str
    level: Level
    figures: Figures
    updated_ms: int
    last_alert_id: str | None
    seq: int = 0
    liquidation_near: bool = False
    schema_version: int = SCHEMA_VERSION

    def key(self) -> bytes:
        return f"{self.venue}:{self.account}".encode()

    def to_dict(self) -> JsonObject:
        return {
            "schema_version": self.schema_version,
            "venue": self.venue,
            "account": self.account,
            "level": self.level.label,
            "figures": self.figures.to_dict(),
            "updated_ms": self.updated_ms,
            "last_alert_id": self.last_alert_id,
            "seq": self.seq,
            "liquidation_near": self.liquidation_near,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> StateDocument:
        d = _document(data, "state")
        last = d.get("last_alert_id")
        return cls(
            venue=_str(d.get("venue"), "venue"),
            account=_str(d.get("account"), "account"),
            level=_level(d.get("level"), "level"),
            figures=Figures.from_dict(_obj(d.get("figures"), "figures")),
            updated_ms=_int(d.get("updated_ms"), "updated_ms"),
            last_alert_id=None if last is None else _str(last, "last_alert_id"),
            seq=_int(d.get("seq", 0), "seq"),
            liquidation_near=_bool(d.get("liquidation_near", False), "liquidation_near"),
            schema_version=SCHEMA_VERSION,
        )


def top_positions_json(positions: Sequence[TopPosition]) -> list[JsonValue]:
    """Helper for ``detail`` payloads that list positions."""
    return [p.to_dict() for p in positions]

"""Per-alert encoding that never fails: an alert that cannot be encoded is repaired, not lost.

Every sink encodes alert by alert (never a batch in one call), and through :func:`encoded`:
the alert's own ``to_json`` first (the hot path, untouched); if that raises, the alert is
*repaired* and encoded again. A hostile or broken venue can put almost anything in an alert's
figures, times or ``detail`` (an integer of 2^64 or more, a string with a lone surrogate, a
dict keyed by numbers, a value JSON cannot carry): one such alert must never take the alerts
around it down, and it is itself delivered, because it may be the liquidatable one.

A repair keeps the alert's id (consumers dedupe by it) and changes only what does not encode:

- integers outside the signed 64-bit range are clamped into it (``clamped``);
- text with characters UTF-8 cannot carry gets them replaced by ``?`` (``replaced``);
- a figure that is not a number, a ``detail`` entry with a non-string key or a value of a
  type JSON has no form for, and anything nested absurdly deep, is dropped (``dropped``).

The repaired alert says what was done in ``detail["encoding_repairs"]`` (field paths such as
``event_time_ms``, ``figures.equity``, ``detail.positions[0].qty``), and the sink counts it
(``DeliveryObserver.repaired``). Non-finite floats need no repair: the schema encodes them as
``null`` (unknown), and orjson does so.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import replace

from rules.alert_doc import (
    Alert,
    Figures,
    JsonObject,
    JsonValue,
    Level,
    StateDocument,
    TopPosition,
)

log = logging.getLogger(__name__)

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
#: Deeper ``detail`` nesting is dropped: orjson refuses past 254 levels, and nothing real nests.
MAX_DEPTH = 32
REPAIRS_KEY = "encoding_repairs"


class _Repairs:
    """What a repair changed, by kind, as field paths."""

    __slots__ = ("clamped", "dropped", "replaced")

    def __init__(self) -> None:
        self.clamped: list[str] = []
        self.dropped: list[str] = []
        self.replaced: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.clamped or self.dropped or self.replaced)

    def to_json(self) -> JsonObject:
        out: JsonObject = {}
        for name in ("clamped", "dropped", "replaced"):
            paths: list[str] = getattr(self, name)
            if paths:
                out[name] = list[JsonValue](paths)
        return out

    def paths(self) -> list[str]:
        return [*self.clamped, *self.dropped, *self.replaced]

    # -- scalar repairs ----------------------------------------------------------------------

    def text(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            self.replaced.append(path)
            value = repr(value)
        try:
            value.encode()
        except UnicodeEncodeError:
            self.replaced.append(path)
            return value.encode("utf-8", "replace").decode()
        return value

    def integer(self, value: object, path: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            if I64_MIN <= value <= I64_MAX:
                return value
            self.clamped.append(path)
            return I64_MAX if value > 0 else I64_MIN
        if isinstance(value, float) and math.isfinite(value):
            self.clamped.append(path)
            return min(max(int(value), I64_MIN), I64_MAX)
        self.dropped.append(path)
        return 0

    def opt_integer(self, value: object, path: str) -> int | None:
        return None if value is None else self.integer(value, path)

    def number(self, value: object, path: str) -> float | None:
        """A figure: a float, or ``None`` (unknown) when it has no float form."""
        if value is None:
            return None
        if isinstance(value, float):
            return value
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            try:
                out = float(value)
            except OverflowError:
                self.clamped.append(path)
                return math.copysign(math.inf, value)  # null in JSON: unbounded
            if not isinstance(value, int) or not I64_MIN <= value <= I64_MAX:
                self.clamped.append(path)  # beyond 64 bits, or a foreign number type: a float
            return out
        self.dropped.append(path)
        return None

    def figure(self, value: object, path: str) -> float:
        out = self.number(value, path)
        return math.nan if out is None else out

    # -- JSON trees --------------------------------------------------------------------------

    def tree(self, value: object, path: str, depth: int = 0) -> JsonValue:
        """``value`` as something orjson encodes; what cannot be is clamped or dropped."""
        if value is None or isinstance(value, bool | str | float):
            return self.text(value, path) if isinstance(value, str) else value
        if isinstance(value, int):
            return self.integer(value, path)
        if depth >= MAX_DEPTH and isinstance(value, dict | list | tuple):
            self.dropped.append(path)
            return None
        if isinstance(value, dict):
            out: JsonObject = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.dropped.append(f"{path}.{key!r}")
                    continue
                out[self.text(key, f"{path}.{key!r}")] = self.tree(item, f"{path}.{key}", depth + 1)
            return out
        if isinstance(value, list | tuple):
            return [self.tree(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
        if isinstance(value, numbers.Real):
            return self.number(value, path)
        self.dropped.append(path)
        return None


def _figures(f: object, r: _Repairs) -> Figures | None:
    if f is None:
        return None
    if not isinstance(f, Figures):
        r.dropped.append("figures")
        return None
    return Figures(
        equity=r.figure(f.equity, "figures.equity"),
        maintenance_margin=r.figure(f.maintenance_margin, "figures.maintenance_margin"),
        initial_margin=r.figure(f.initial_margin, "figures.initial_margin"),
        margin_ratio=r.number(f.margin_ratio, "figures.margin_ratio"),
        health=r.number(f.health, "figures.health"),
        liq_distance_down=r.number(f.liq_distance_down, "figures.liquidation_distance.down"),
        liq_distance_up=r.number(f.liq_distance_up, "figures.liquidation_distance.up"),
    )


def _top(positions: object, r: _Repairs) -> tuple[TopPosition, ...]:
    out: list[TopPosition] = []
    for i, p in enumerate(positions if isinstance(positions, tuple | list) else ()):
        path = f"top_positions[{i}]"
        if not isinstance(p, TopPosition):
            r.dropped.append(path)
            continue
        out.append(
            TopPosition(
                symbol=r.text(p.symbol, f"{path}.symbol"),
                side=r.text(p.side, f"{path}.side"),
                notional=r.figure(p.notional, f"{path}.notional"),
                maintenance_margin=r.figure(p.maintenance_margin, f"{path}.maintenance_margin"),
                mm_share=r.number(p.mm_share, f"{path}.mm_share"),
                liquidation_price=r.number(p.liquidation_price, f"{path}.liquidation_price"),
            )
        )
    return tuple(out)


def _level(value: object, path: str, r: _Repairs) -> Level:
    if isinstance(value, Level):
        return value
    r.clamped.append(path)
    try:
        return Level(min(max(int(value), Level.OK), Level.LIQUIDATABLE))  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return Level.LIQUIDATABLE  # unknown: assume the worst, a person looks at it


def repair(alert: Alert) -> tuple[Alert, list[str]]:
    """``alert`` with every field in a form that encodes; the paths of what was changed.

    The repaired alert's ``detail`` names the changes under ``encoding_repairs``.
    """
    r = _Repairs()
    detail = r.tree(alert.detail, "detail")
    if not isinstance(detail, dict):
        r.dropped.append("detail")
        detail = {}
    fixed = replace(
        alert,
        id=r.text(alert.id, "id"),
        kind=r.text(alert.kind, "kind"),  # type: ignore[arg-type]  # a Literal, kept as is
        venue=r.text(alert.venue, "venue"),
        account=r.text(alert.account, "account"),
        level=_level(alert.level, "level", r),
        previous_level=_level(alert.previous_level, "previous_level", r),
        figures=_figures(alert.figures, r),
        top_positions=_top(alert.top_positions, r),
        event_time_ms=r.integer(alert.event_time_ms, "event_time_ms"),
        receive_time_ms=r.integer(alert.receive_time_ms, "receive_time_ms"),
        emit_time_ms=r.opt_integer(alert.emit_time_ms, "emit_time_ms"),
        message=r.text(alert.message, "message"),
        schema_version=r.integer(alert.schema_version, "schema_version"),
    )
    paths = r.paths()
    detail[REPAIRS_KEY] = r.to_json() if r else {"dropped": []}
    return replace(fixed, detail=detail), paths


def _last_resort(alert: Alert, why: BaseException) -> Alert:
    """An alert that encodes whatever the original holds: who, what, when; the rest dropped.

    Only reached if :func:`repair` missed a case (a bug): the alert still goes out."""
    r = _Repairs()
    r.dropped += ["figures", "top_positions", "detail"]
    return Alert(
        id=r.text(getattr(alert, "id", ""), "id"),
        kind="margin_level" if not isinstance(alert.kind, str) else alert.kind,
        venue=r.text(getattr(alert, "venue", ""), "venue"),
        account=r.text(getattr(alert, "account", ""), "account"),
        level=_level(getattr(alert, "level", None), "level", r),
        previous_level=_level(getattr(alert, "previous_level", None), "previous_level", r),
        figures=None,
        top_positions=(),
        event_time_ms=r.integer(getattr(alert, "event_time_ms", 0), "event_time_ms"),
        receive_time_ms=r.integer(getattr(alert, "receive_time_ms", 0), "receive_time_ms"),
        emit_time_ms=r.opt_integer(getattr(alert, "emit_time_ms", None), "emit_time_ms"),
        message=r.text(getattr(alert, "message", ""), "message"),
        detail={REPAIRS_KEY: r.to_json(), "error": type(why).__name__},
    )


def repaired_json(alert: Alert, sink: str) -> tuple[Alert, bytes]:
    """The slow path of :func:`encoded`: repair ``alert`` and encode the result (logged)."""
    try:
        fixed, paths = repair(alert)
        value = fixed.to_json()
    except Exception as exc:  # noqa: BLE001 - a repair bug must not lose the alert either
        log.error("%s: alert %s could not be repaired (%s); sent stripped", sink, alert.id, exc)
        fixed = _last_resort(alert, exc)
        value = fixed.to_json()
        paths = ["figures", "top_positions", "detail"]
    log.warning(
        "%s: alert %s did not encode; repaired (%s)", sink, fixed.id, ", ".join(paths) or "-"
    )
    return fixed, value


def encoded(alert: Alert, sink: str) -> tuple[Alert, bytes, bool]:
    """``(alert as sent, its schema-1 JSON, repaired?)``; never raises for the alert's content.

    Any exception from encoding is caught here on purpose: it comes from the alert's values
    (venue data), and the repair names what it changed.
    """
    try:
        return alert, alert.to_json(), False
    except Exception:  # noqa: BLE001 - whatever the values are, the alert is repaired
        fixed, value = repaired_json(alert, sink)
        return fixed, value, True


def state_json(doc: StateDocument, sink: str) -> bytes | None:
    """A state document's JSON, or ``None`` if it does not encode: that one is skipped (logged).

    State is latest-wins and republished on the account's next change, so skipping one
    unencodable snapshot loses nothing an alert would carry; it must not stop the sink.
    """
    try:
        return doc.to_json()
    except Exception as exc:  # noqa: BLE001 - venue data: skip this snapshot, not the sink
        log.warning(
            "%s: state of %s:%s does not encode (%s); skipped", sink, doc.venue, doc.account, exc
        )
        return None

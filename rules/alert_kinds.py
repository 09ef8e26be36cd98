"""Pure constructors for the alert kinds that are not margin-level or distance transitions.

Each takes plain values (``rules`` never imports ``connectors``; a venue's margin-call position
only has to *look like* :class:`MarginCallLine`) and returns an :class:`~rules.alert_doc.Alert`
whose id is derived from the triggering input, never from the wall clock.

Kinds raised by sinks (``spool_full``, ``delivery_failing``) are about the monitor itself: their
``venue`` is ``"marginwatch"`` and their ``account`` is the sink's name, so they are keyed (and
ordered) per sink. Their ``level`` is the severity of the delivery condition: ``warning`` while
alerts are safely spooled, ``critical`` when the spool is full.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rules.alert_doc import (
    Alert,
    AlertKind,
    Figures,
    JsonObject,
    JsonValue,
    Level,
    TopPosition,
    alert_id,
)
from rules.types import Side

SELF_VENUE = "marginwatch"


class MarginCallLine(Protocol):
    """One position named in a venue's margin call (``connectors.events.MarginCallPosition``)."""

    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def qty(self) -> float: ...
    @property
    def mark(self) -> float: ...
    @property
    def maintenance_margin(self) -> float: ...
    @property
    def upnl(self) -> float: ...


@dataclass(frozen=True, slots=True)
class DriftPosition:
    """Per-position comparison for a drift alert; ``venue_mm`` is ``None`` if not reported."""

    symbol: str
    our_mm: float
    venue_mm: float | None


def _num(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _summary(figures: Figures | None) -> str:
    return "" if figures is None else f": {figures.summary()}"


def transition_alert(
    *,
    kind: AlertKind,
    venue: str,
    account: str,
    transition: str,
    level: Level,
    previous_level: Level | None = None,
    figures: Figures | None,
    event_ms: int,
    recv_ms: int,
    message: str,
    detail: JsonObject,
    top_positions: tuple[TopPosition, ...] = (),
) -> Alert:
    """An alert whose id is the natural key of its transition (see :func:`alert_id`).

    ``previous_level`` defaults to ``level``: kinds other than a margin-level change carry the
    account's level for context, they do not change it.
    """
    return Alert(
        id=alert_id(venue, account, kind, transition, event_ms),
        kind=kind,
        venue=venue,
        account=account,
        level=level,
        previous_level=level if previous_level is None else previous_level,
        figures=figures,
        top_positions=top_positions,
        event_time_ms=event_ms,
        receive_time_ms=recv_ms,
        message=message,
        detail=detail,
    )


def venue_margin_call_alert(
    *,
    venue: str,
    account: str,
    event_ms: int,
    recv_ms: int,
    positions: Sequence[MarginCallLine],
    level: Level,
    figures: Figures | None = None,
    cross_wallet_balance: float | None = None,
) -> Alert:
    """Relay the venue's own margin call (it is a fact to act on, never used as state)."""
    lines: list[JsonValue] = [
        {
            "symbol": p.symbol,
            "side": p.side.value,
            "qty": _num(p.qty),
            "mark": _num(p.mark),
            "maintenance_margin": _num(p.maintenance_margin),
            "upnl": _num(p.upnl),
        }
        for p in positions
    ]
    symbols = ", ".join(sorted({p.symbol for p in positions})) or "no positions listed"
    return transition_alert(
        kind="venue_margin_call",
        venue=venue,
        account=account,
        transition="call",
        level=level,
        figures=figures,
        event_ms=event_ms,
        recv_ms=recv_ms,
        message=f"{account}@{venue} VENUE MARGIN CALL ({symbols}){_summary(figures)}",
        detail={"positions": lines, "cross_wallet_balance": _num(cross_wallet_balance)},
    )


def drift_exceeds(our_mm: float, venue_mm: float, rel_tol: float, abs_tol: float = 0.0) -> bool:
    """Whether our maintenance margin and the venue's disagree beyond tolerance."""
    if math.isnan(our_mm) or math.isnan(venue_mm):
        return True
    scale = max(abs(our_mm), abs(venue_mm))
    return abs(our_mm - venue_mm) > max(rel_tol * scale, abs_tol)


def model_drift_alert(
    *,
    venue: str,
    account: str,
    drifting: bool,
    our_mm: float,
    venue_mm: float,
    rel_tol: float,
    event_ms: int,
    recv_ms: int,
    level: Level,
    figures: Figures | None = None,
    positions: Sequence[DriftPosition] = (),
) -> Alert:
    """Our MM started (``drifting``) or stopped disagreeing with the venue's reported MM."""
    diff = (our_mm - venue_mm) / venue_mm if venue_mm != 0 else None
    detail: JsonObject = {
        "state": "drift" if drifting else "agree",
        "our_maintenance_margin": _num(our_mm),
        "venue_maintenance_margin": _num(venue_mm),
        "relative_difference": _num(diff),
        "tolerance": rel_tol,
        "positions": [
            {"symbol": p.symbol, "our_mm": _num(p.our_mm), "venue_mm": _num(p.venue_mm)}
            for p in positions
        ],
    }
    shown = "n/a" if diff is None else f"{diff * 100:+.4f}%"
    what = "MODEL DRIFT" if drifting else "model agrees with venue again"
    return transition_alert(
        kind="model_drift",
        venue=venue,
        account=account,
        transition="agree>drift" if drifting else "drift>agree",
        level=level,
        figures=figures,
        event_ms=event_ms,
        recv_ms=recv_ms,
        message=(
            f"{account}@{venue} {what}: our MM {our_mm:.8g} vs venue {venue_mm:.8g} ({shown})"
        ),
        detail=detail,
    )


def check_drift(
    was_drifting: bool,
    *,
    venue: str,
    account: str,
    our_mm: float,
    venue_mm: float,
    rel_tol: float,
    abs_tol: float = 0.0,
    event_ms: int,
    recv_ms: int,
    level: Level,
    figures: Figures | None = None,
    positions: Sequence[DriftPosition] = (),
) -> tuple[bool, Alert | None]:
    """One alert per transition between agreement and drift (no alert while it persists)."""
    drifting = drift_exceeds(our_mm, venue_mm, rel_tol, abs_tol)
    if drifting == was_drifting:
        return drifting, None
    return drifting, model_drift_alert(
        venue=venue,
        account=account,
        drifting=drifting,
        our_mm=our_mm,
        venue_mm=venue_mm,
        rel_tol=rel_tol,
        event_ms=event_ms,
        recv_ms=recv_ms,
        level=level,
        figures=figures,
        positions=positions,
    )


def position_liquidated_alert(
    *,
    venue: str,
    account: str,
    symbol: str,
    side: Side,
    qty: float,
    price: float | None,
    event_ms: int,
    recv_ms: int,
    level: Level,
    figures: Figures | None = None,
    order_id: str | None = None,
    trade_id: str | None = None,
) -> Alert:
    """The venue liquidated (part of) a position. The venue's order and trade ids, when it
    gives them, key the alert id: two fills of one liquidation in the same ms stay distinct."""
    key = f"{symbol}:{side.value}:{order_id or ''}" + ("" if trade_id is None else f":{trade_id}")
    at = "" if price is None else f" at {price:.10g}"
    return transition_alert(
        kind="position_liquidated",
        venue=venue,
        account=account,
        transition=key,
        level=level,
        figures=figures,
        event_ms=event_ms,
        recv_ms=recv_ms,
        message=(
            f"{account}@{venue} POSITION LIQUIDATED: {symbol} {side.value} {qty:.10g}{at}"
            f"{_summary(figures)}"
        ),
        detail={
            "symbol": symbol,
            "side": side.value,
            "qty": _num(qty),
            "price": _num(price),
            "order_id": order_id,
            **({} if trade_id is None else {"trade_id": trade_id}),
        },
    )


def spool_full_alert(
    *, sink: str, spool_bytes: int, limit_bytes: int, pending: int, full_since_ms: int, now_ms: int
) -> Alert:
    """The sink's durable spool reached its limit: alerts can no longer be buffered."""
    return transition_alert(
        kind="spool_full",
        venue=SELF_VENUE,
        account=sink,
        transition="full",
        level=Level.CRITICAL,
        previous_level=Level.OK,
        figures=None,
        event_ms=full_since_ms,
        recv_ms=now_ms,
        message=(
            f"sink {sink}: SPOOL FULL ({spool_bytes} of {limit_bytes} bytes, "
            f"{pending} alerts pending)"
        ),
        detail={
            "sink": sink,
            "spool_bytes": spool_bytes,
            "limit_bytes": limit_bytes,
            "pending": pending,
        },
    )


def delivery_failing_alert(
    *, sink: str, reason: str, failing_since_ms: int, attempts: int, pending: int, now_ms: int
) -> Alert:
    """A sink has failed to deliver since ``failing_since_ms``; ``reason`` is a bounded label."""
    return transition_alert(
        kind="delivery_failing",
        venue=SELF_VENUE,
        account=sink,
        transition=reason,
        level=Level.WARNING,
        previous_level=Level.OK,
        figures=None,
        event_ms=failing_since_ms,
        recv_ms=now_ms,
        message=(
            f"sink {sink}: DELIVERY FAILING for {(now_ms - failing_since_ms) / 1000:.1f} s "
            f"({reason}, {attempts} attempts, {pending} alerts pending)"
        ),
        detail={
            "sink": sink,
            "reason": reason,
            "failing_since_ms": failing_since_ms,
            "attempts": attempts,
            "pending": pending,
        },
    )


def rest_banned_alert(*, venue: str, since_ms: int, until_ms: int, recv_ms: int) -> Alert:
    """The venue banned the monitor's IP from its REST API (Binance HTTP 418) until
    ``until_ms``: no account of the venue can be re-snapshotted until then (streams stay up, so
    figures keep moving, but drift cannot be healed). One alert per ban: the id is the ban's
    start, whichever feed reported it."""
    return transition_alert(
        kind="rest_banned",
        venue=venue,
        account="rest",
        transition="banned",
        level=Level.CRITICAL,
        previous_level=Level.OK,
        figures=None,
        event_ms=since_ms,
        recv_ms=recv_ms,
        message=(
            f"{venue}: REST API BANNED for this IP for {(until_ms - since_ms) / 1000:.0f} s "
            "(HTTP 418): no snapshot or resync until the ban ends"
        ),
        detail={"since_ms": since_ms, "until_ms": until_ms},
    )

"""Alert policy: a pure function of (previous alert state, new account risk, config, now).

Levels, in health terms (``health = equity / MM``; defaults suit Binance-style accounts)::

    ok            health >= 2.0             (margin ratio MM/equity <= 50%)
    warning       1.5 <= health < 2.0       (50% < ratio <= 66.7%)
    danger        1.2 <= health < 1.5       (66.7% < ratio <= 83.3%)
    critical      trigger < health < 1.2    (83.3% < ratio < 100%)
    liquidatable  health <= trigger         (venue trigger: 1.0; 1.05 for Binance PM)

Escalation is immediate and may jump several levels (one alert, previous -> new). De-escalation
from level ``L`` needs the health to stay above ``T[L]·(1+hysteresis)`` (the release point of the
threshold being left) *continuously* for ``cooldown_ms``; then the account goes straight to the
level the figure justifies now — every lower release point it is above — in one alert. A figure
falling back below a release point restarts that level's clock. A price jittering around a
threshold by less than the hysteresis band therefore produces at most one alert.

The same shape, with its own hysteresis, applies to the liquidation distance: crossing below
``liq_distance`` raises a ``liquidation_distance`` alert at once; it clears after the distance has
stayed above ``liq_distance·(1+liq_distance_hysteresis)`` for ``cooldown_ms``.

Thresholds may be given on the venue-native ratio instead of health (``metric="ratio"``); they are
converted to health once at construction (Binance/Bybit ``MM/equity = 1/health``, OKX
``mgnRatio = health``), so the policy and :func:`quiet_band` always work in health terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from rules.alert_config import (
    DEFAULT_HEALTH_THRESHOLDS,
    DEFAULT_RATIO_THRESHOLDS,
    AlertConfig,
    AlertConfigError,
)
from rules.alert_doc import (
    Alert,
    Figures,
    JsonObject,
    Level,
    StateDocument,
    TopPosition,
)
from rules.alert_kinds import (
    DriftPosition,
    MarginCallLine,
    check_drift,
    delivery_failing_alert,
    drift_exceeds,
    model_drift_alert,
    position_liquidated_alert,
    rest_banned_alert,
    spool_full_alert,
    transition_alert,
    venue_margin_call_alert,
)
from rules.alert_risk import AccountRisk, PositionContribution, figures_of, top_positions_of
from rules.errors import ModelInputError

__all__ = [
    "DEFAULT_HEALTH_THRESHOLDS",
    "DEFAULT_RATIO_THRESHOLDS",
    "AccountRisk",
    "Alert",
    "AlertConfig",
    "AlertConfigError",
    "AlertState",
    "DriftPosition",
    "Figures",
    "Level",
    "MarginCallLine",
    "PositionContribution",
    "StateDocument",
    "TopPosition",
    "check_drift",
    "deadline_ms",
    "delivery_failing_alert",
    "drift_exceeds",
    "evaluate",
    "figures_of",
    "level_of",
    "model_drift_alert",
    "needs_tick",
    "position_liquidated_alert",
    "quiet_band",
    "rest_banned_alert",
    "spool_full_alert",
    "state_document",
    "top_positions_of",
    "venue_margin_call_alert",
]

_NO_SINCE: tuple[int | None, int | None, int | None, int | None] = (None, None, None, None)


@dataclass(frozen=True, slots=True)
class AlertState:
    """Per-account policy state. Equal states mean the policy has nothing new to remember.

    ``clear_since[k-1]`` (for levels ``k <= level``) is when the health last rose above level
    ``k``'s release point and has stayed there (``None``: not above it). Any non-``None`` entry
    is a pending de-escalation. ``seq`` counts this account's margin-level and distance
    transitions (monotonic; published in the state document, not part of alert ids).
    """

    level: Level = Level.OK
    clear_since: tuple[int | None, int | None, int | None, int | None] = _NO_SINCE
    distance_near: bool = False
    distance_clear_since: int | None = None
    seq: int = 0
    last_alert_id: str | None = None

    @property
    def pending_since_ms(self) -> int | None:
        """Start of the pending de-escalation (the oldest clear run), if any."""
        return self.clear_since[self.level - 1] if self.level > Level.OK else None

    @property
    def pending_target(self) -> Level | None:
        """The lowest level the last figure would justify once its cooldown has run."""
        for j in range(self.level):
            if self.clear_since[j] is not None:
                return Level(j)
        return None

    @classmethod
    def from_document(cls, doc: StateDocument) -> AlertState:
        """Restore after a restart from the account's last published state document."""
        return cls(
            level=doc.level,
            distance_near=doc.liquidation_near,
            seq=doc.seq,
            last_alert_id=doc.last_alert_id,
        )


def level_of(health: float, cfg: AlertConfig) -> Level:
    """The level a health figure is in, without hysteresis."""
    if math.isnan(health):
        raise ModelInputError("health: NaN (equity or maintenance margin not computable)")
    warning, danger, critical, trigger = cfg.health_thresholds
    if health <= trigger:
        return Level.LIQUIDATABLE
    if health < critical:
        return Level.CRITICAL
    if health < danger:
        return Level.DANGER
    if health < warning:
        return Level.WARNING
    return Level.OK


def needs_tick(state: AlertState) -> bool:
    """True when :func:`evaluate` must run on every tick (a clock or a distance alert is live)."""
    return (
        any(s is not None for s in state.clear_since)
        or state.distance_near
        or state.distance_clear_since is not None
    )


def quiet_band(state: AlertState, cfg: AlertConfig) -> tuple[float, float]:
    """Health interval ``(lo, hi)``: strictly inside it :func:`evaluate` changes nothing.

    Holds for any risk whose liquidation distance is ``None`` or at least ``cfg.liq_distance``
    (the store screens distance separately). When :func:`needs_tick` is true the band is empty,
    ``(inf, -inf)``, so every tick is evaluated.
    """
    if needs_tick(state):
        return (math.inf, -math.inf)
    level = state.level
    lo = -math.inf if level == Level.LIQUIDATABLE else cfg.health_thresholds[level]
    hi = math.inf if level == Level.OK else cfg.release_points[level - 1]
    return (lo, hi)


def deadline_ms(state: AlertState, cfg: AlertConfig) -> int | None:
    """Earliest ``now_ms`` at which a pending clear could fire if the figures hold still.

    The engine re-evaluates such accounts on a timer, since a quiet market brings no ticks.
    """
    times: list[int] = []
    since = state.pending_since_ms
    if since is not None:
        times.append(since + cfg.cooldown_ms)
    if state.distance_clear_since is not None:
        times.append(state.distance_clear_since + cfg.cooldown_ms)
    return min(times) if times else None


def state_document(state: AlertState, risk: AccountRisk, updated_ms: int) -> StateDocument:
    return StateDocument(
        venue=risk.venue,
        account=risk.account,
        level=state.level,
        figures=figures_of(risk),
        updated_ms=updated_ms,
        last_alert_id=state.last_alert_id,
        seq=state.seq,
        liquidation_near=state.distance_near,
    )


def _min_distance(risk: AccountRisk) -> tuple[float | None, str | None]:
    down, up = risk.liq_distance_down, risk.liq_distance_up
    if down is not None and (up is None or down <= up):
        return down, "down"
    if up is not None:
        return up, "up"
    return None, None


def _alert(
    risk: AccountRisk,
    *,
    kind: Literal["margin_level", "liquidation_distance"],
    transition: str,
    level: Level,
    previous: Level,
    message: str,
    detail: JsonObject,
) -> Alert:
    return transition_alert(
        kind=kind,
        venue=risk.venue,
        account=risk.account,
        transition=transition,
        level=level,
        previous_level=previous,
        figures=figures_of(risk),
        top_positions=top_positions_of(risk),
        event_ms=risk.event_ms,
        recv_ms=risk.recv_ms,
        message=message,
        detail=detail,
    )


def _level_alert(risk: AccountRisk, previous: Level, level: Level) -> Alert:
    who = f"{risk.account}@{risk.venue}"
    text = f"{who} {level.label.upper()} (was {previous.label}): {figures_of(risk).summary()}"
    detail: JsonObject = {"direction": "escalation" if level > previous else "de-escalation"}
    return _alert(
        risk,
        kind="margin_level",
        transition=f"{previous.label}>{level.label}",
        level=level,
        previous=previous,
        message=text,
        detail=detail,
    )


def _evaluate_level(
    prev: AlertState, risk: AccountRisk, cfg: AlertConfig, now_ms: int
) -> tuple[AlertState, Alert | None]:
    health = risk.health
    current = prev.level
    instant = level_of(health, cfg)
    if instant > current:
        alert = _level_alert(risk, current, instant)
        state = replace(
            prev, level=instant, clear_since=_NO_SINCE, seq=prev.seq + 1, last_alert_id=alert.id
        )
        return state, alert
    since = list(prev.clear_since)
    for k in range(current):  # index k is level k+1's release point
        if health > cfg.release_points[k]:
            if since[k] is None:
                since[k] = now_ms
        else:
            since[k] = None
    # Leaving the current level needs its release point held for the whole cooldown; once that
    # has matured the account goes straight to the level the figure justifies now (every lower
    # release point it is above), so a rebound through several levels is one alert, not one per
    # level a few milliseconds apart.
    target = current
    first = current - 1
    held_from = since[first] if first >= 0 else None
    if held_from is not None and now_ms - held_from >= cfg.cooldown_ms:
        target = Level(first)
        for j in range(first - 1, -1, -1):
            if since[j] is None:
                break
            target = Level(j)
    for k in range(target, 4):  # runs above the new level are meaningless
        since[k] = None
    new_since = (since[0], since[1], since[2], since[3])
    if target == current:
        if new_since == prev.clear_since:
            return prev, None
        return replace(prev, clear_since=new_since), None
    alert = _level_alert(risk, current, target)
    state = replace(
        prev, level=target, clear_since=new_since, seq=prev.seq + 1, last_alert_id=alert.id
    )
    return state, alert


def _distance_alert(
    risk: AccountRisk,
    *,
    level: Level,
    near: bool,
    threshold: float,
    release: float,
    distance: float | None,
    direction: str | None,
) -> Alert:
    who = f"{risk.account}@{risk.venue}"
    shown = "unbounded" if distance is None else f"{distance * 100:.1f}%"
    if near:
        text = (
            f"{who} liquidation {shown} away ({direction}), threshold "
            f"{threshold * 100:.1f}%: {figures_of(risk).summary()}"
        )
    else:
        text = f"{who} liquidation distance back above {release * 100:.1f}% (now {shown})"
    detail: JsonObject = {
        "state": "near" if near else "far",
        "distance": distance,
        "direction": direction,
        "threshold": threshold,
        "release": release,
    }
    transition = "far>near" if near else "near>far"
    return _alert(
        risk,
        kind="liquidation_distance",
        transition=transition,
        level=level,
        previous=level,
        message=text,
        detail=detail,
    )


def _evaluate_distance(
    prev: AlertState, risk: AccountRisk, cfg: AlertConfig, now_ms: int
) -> tuple[AlertState, Alert | None]:
    threshold = cfg.liq_distance
    if threshold is None:
        return prev, None
    release = threshold * (1.0 + cfg.liq_distance_hysteresis)
    distance, direction = _min_distance(risk)
    if not prev.distance_near:
        if distance is not None and distance < threshold:
            return _distance_transition(
                prev,
                risk,
                near=True,
                threshold=threshold,
                release=release,
                distance=distance,
                direction=direction,
            )
        return prev, None
    if distance is not None and distance <= release:
        if prev.distance_clear_since is None:
            return prev, None
        return replace(prev, distance_clear_since=None), None
    started = prev.distance_clear_since if prev.distance_clear_since is not None else now_ms
    if now_ms - started < cfg.cooldown_ms:
        if started == prev.distance_clear_since:
            return prev, None
        return replace(prev, distance_clear_since=started), None
    return _distance_transition(
        prev,
        risk,
        near=False,
        threshold=threshold,
        release=release,
        distance=distance,
        direction=direction,
    )


def _distance_transition(
    prev: AlertState,
    risk: AccountRisk,
    *,
    near: bool,
    threshold: float,
    release: float,
    distance: float | None,
    direction: str | None,
) -> tuple[AlertState, Alert]:
    """Crossing into (``near``) or back out of the distance band: one alert, one state."""
    alert = _distance_alert(
        risk,
        level=prev.level,
        near=near,
        threshold=threshold,
        release=release,
        distance=distance,
        direction=direction,
    )
    state = replace(
        prev,
        distance_near=near,
        distance_clear_since=None,
        seq=prev.seq + 1,
        last_alert_id=alert.id,
    )
    return state, alert


def evaluate(
    prev: AlertState, risk: AccountRisk, cfg: AlertConfig, now_ms: int
) -> tuple[AlertState, list[Alert]]:
    """Apply one account's new figures to its alert state.

    ``now_ms`` only drives cooldowns; alert ids and times come from ``risk``. Returns ``prev``
    itself when nothing changed. Raises :class:`rules.errors.ModelInputError` on a NaN health.
    """
    alerts: list[Alert] = []
    state, level_alert = _evaluate_level(prev, risk, cfg, now_ms)
    if level_alert is not None:
        alerts.append(level_alert)
    state, distance_alert = _evaluate_distance(state, risk, cfg, now_ms)
    if distance_alert is not None:
        alerts.append(distance_alert)
    return state, alerts

"""Per-account alert configuration: thresholds, hysteresis, cooldown, distance, staleness.

Validated once at construction (a bad value raises :class:`AlertConfigError` whose message
starts with the field name, for the config loader to prefix with the file). Ratio thresholds are
converted to health here, once: Binance/Bybit margin ratio ``MM/equity = 1/health`` (higher is
worse), OKX ``mgnRatio = equity/MM = health`` (higher is better).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

# Health thresholds of WARNING, DANGER, CRITICAL and the LIQUIDATABLE trigger.
DEFAULT_HEALTH_THRESHOLDS = (2.0, 1.5, 1.2, 1.0)
# The same levels as Binance/Bybit margin ratio MM/equity (higher is worse).
DEFAULT_RATIO_THRESHOLDS = (0.5, 1 / 1.5, 1 / 1.2, 1.0)


class AlertConfigError(ValueError):
    """An alert configuration that cannot work; the message starts with the field name."""


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Per-account alert settings, validated once at construction.

    ``warning``/``danger``/``critical``/``liquidatable`` are in units of ``metric``; ``None``
    takes the default for that metric (health: 2.0/1.5/1.2/1.0; ratio MM/equity:
    50%/66.7%/83.3%/100%). Read the resolved values from :attr:`health_thresholds`.
    """

    warning: float | None = None
    danger: float | None = None
    critical: float | None = None
    liquidatable: float | None = None
    metric: Literal["health", "ratio"] = "health"
    ratio_higher_is_worse: bool = True
    hysteresis: float = 0.05
    cooldown_ms: int = 30_000
    liq_distance: float | None = 0.05
    liq_distance_hysteresis: float = 0.2
    mark_stale_ms: int = 15_000
    account_stale_ms: int = 360_000
    # A feed the driver reports down counts as stale only once it stayed down this long: a
    # websocket reconnect must not raise feed_stale + feed_recovered for every account.
    feed_down_grace_ms: int = 5_000
    # An account whose figures cannot be computed (a held leg: no instrument facts, margin
    # model or mark; collateral that cannot be valued) raises feed_stale after this long.
    inputs_missing_ms: int = 5_000
    health_thresholds: tuple[float, float, float, float] = field(init=False)
    release_points: tuple[float, float, float, float] = field(init=False)

    def __post_init__(self) -> None:
        if self.metric not in ("health", "ratio"):
            raise AlertConfigError(f"metric: must be 'health' or 'ratio', not {self.metric!r}")
        inverted = self.metric == "ratio" and self.ratio_higher_is_worse
        defaults = DEFAULT_RATIO_THRESHOLDS if inverted else DEFAULT_HEALTH_THRESHOLDS
        given = (self.warning, self.danger, self.critical, self.liquidatable)
        names = ("warning", "danger", "critical", "liquidatable")
        health: list[float] = []
        for name, value, default in zip(names, given, defaults, strict=True):
            v = default if value is None else value
            if not (math.isfinite(v) and v > 0):
                raise AlertConfigError(f"{name}: threshold must be a positive number, not {v!r}")
            health.append(1.0 / v if inverted else v)
        for i in range(3):
            if not health[i] > health[i + 1]:
                order = "increase" if inverted else "decrease"
                raise AlertConfigError(
                    f"{names[i + 1]}: thresholds must strictly {order} from warning to liquidatable"
                )
        if not (0.0 <= self.hysteresis < 1.0):
            raise AlertConfigError("hysteresis: must be in [0, 1)")
        if self.cooldown_ms < 0:
            raise AlertConfigError("cooldown_ms: must be >= 0")
        if self.liq_distance is not None and not (0.0 < self.liq_distance < 1.0):
            raise AlertConfigError("liq_distance: must be in (0, 1) or null")
        if not (0.0 <= self.liq_distance_hysteresis < 10.0):
            raise AlertConfigError("liq_distance_hysteresis: must be in [0, 10)")
        if self.mark_stale_ms <= 0:
            raise AlertConfigError("mark_stale_ms: must be > 0")
        if self.account_stale_ms <= 0:
            raise AlertConfigError("account_stale_ms: must be > 0")
        if self.feed_down_grace_ms < 0:
            raise AlertConfigError("feed_down_grace_ms: must be >= 0")
        if self.inputs_missing_ms < 0:
            raise AlertConfigError("inputs_missing_ms: must be >= 0")
        h = (health[0], health[1], health[2], health[3])
        object.__setattr__(self, "health_thresholds", h)
        object.__setattr__(self, "release_points", tuple(t * (1.0 + self.hysteresis) for t in h))

    @property
    def liq_distance_release(self) -> float | None:
        if self.liq_distance is None:
            return None
        return self.liq_distance * (1.0 + self.liq_distance_hysteresis)

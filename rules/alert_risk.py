"""What the alert policy sees of one account, and how it becomes document figures."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rules.alert_doc import TOP_POSITIONS_MAX, Figures, TopPosition
from rules.types import Side


@dataclass(frozen=True, slots=True)
class PositionContribution:
    """One position's share of the account's maintenance margin (for ``top_positions``)."""

    symbol: str
    side: Side
    notional: float
    maintenance_margin: float
    liquidation_price: float | None


@dataclass(frozen=True, slots=True)
class AccountRisk:
    """What the policy sees of one account after a tick.

    ``health`` may be ``math.inf`` (no MM). Liquidation distances are positive fractions or
    ``None`` — "not computed" or "no liquidation in that direction"; both mean *far*. While an
    account has an active distance alert (:func:`needs_tick`) the store must compute them.
    ``event_ms`` is the venue event time of the input that triggered this evaluation.
    """

    venue: str
    account: str
    equity: float
    maintenance_margin: float
    initial_margin: float
    margin_ratio: float
    health: float
    liq_distance_down: float | None
    liq_distance_up: float | None
    top_positions: tuple[PositionContribution, ...]
    event_ms: int
    recv_ms: int


def figures_of(risk: AccountRisk) -> Figures:
    return Figures(
        equity=risk.equity,
        maintenance_margin=risk.maintenance_margin,
        initial_margin=risk.initial_margin,
        margin_ratio=risk.margin_ratio if math.isfinite(risk.margin_ratio) else None,
        health=risk.health if math.isfinite(risk.health) else None,
        liq_distance_down=risk.liq_distance_down,
        liq_distance_up=risk.liq_distance_up,
    )


def top_positions_of(risk: AccountRisk) -> tuple[TopPosition, ...]:
    """Up to five largest contributors by maintenance margin, with their share of the total."""
    total = risk.maintenance_margin
    ranked = sorted(risk.top_positions, key=lambda p: (-p.maintenance_margin, p.symbol))
    return tuple(
        TopPosition(
            symbol=p.symbol,
            side=p.side.value,
            notional=p.notional,
            maintenance_margin=p.maintenance_margin,
            mm_share=p.maintenance_margin / total if total > 0 else None,
            liquidation_price=p.liquidation_price,
        )
        for p in ranked[:TOP_POSITIONS_MAX]
    )

"""The alert policy's view of one account (:class:`rules.alerts.AccountRisk`) from the store.

Equity, MM, IM and health come from the incremental sums. Liquidation prices and distance are
python root-finding over a from-scratch :class:`~rules.account.AccountInput`, so they are only
computed when asked (the store's conservative distance screen says the threshold may be near,
or the policy has a distance alert live) and cached until the account's figures change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rules.account import venue_ratio
from rules.alerts import AccountRisk, PositionContribution
from rules.liquidation import liquidation_distance, liquidation_prices

if TYPE_CHECKING:
    from monitor.store import Store

# (equity, mm, im, structural version) -> liquidation results
_Signature = tuple[float, float, float, int]


@dataclass(frozen=True, slots=True)
class LiquidationFigures:
    distance_down: float | None
    distance_up: float | None
    prices: tuple[float | None, ...]  # in the store's leg order


class RiskCache:
    """Liquidation figures per account index, valid while the account's signature holds."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[_Signature, LiquidationFigures]] = {}

    def get(self, index: int, signature: _Signature) -> LiquidationFigures | None:
        hit = self._entries.get(index)
        if hit is None or hit[0] != signature:
            return None
        return hit[1]

    def put(self, index: int, signature: _Signature, figures: LiquidationFigures) -> None:
        self._entries[index] = (signature, figures)


def build_risk(
    store: Store,
    key: tuple[str, str],
    *,
    event_ms: int,
    recv_ms: int,
    with_liquidation: bool,
) -> AccountRisk:
    """Figures of one complete account; liquidation figures only when ``with_liquidation``."""
    i = store.index_of(key)
    assert i is not None
    fig = store.figures(key)
    legs = store.legs(key)
    liq: LiquidationFigures | None = None
    if with_liquidation:
        signature = (fig.equity, fig.maintenance_margin, fig.initial_margin, store.version(i))
        liq = store.risk_cache.get(i, signature)
        if liq is None:
            a = store.account_input(key)
            down, up = liquidation_distance(a)
            liq = LiquidationFigures(down, up, tuple(liquidation_prices(a)))
            store.risk_cache.put(i, signature, liq)
    tops: list[PositionContribution] = []
    for n, leg in enumerate(legs):
        pf = store.leg_figures(leg)
        if pf is None:
            continue
        tops.append(
            PositionContribution(
                symbol=leg.symbol,
                side=leg.side,
                notional=pf.notional,
                maintenance_margin=pf.maintenance_margin,
                liquidation_price=None if liq is None else liq.prices[n],
            )
        )
    tops.sort(key=lambda p: (-p.maintenance_margin, p.symbol))
    return AccountRisk(
        venue=key[0],
        account=key[1],
        equity=fig.equity,
        maintenance_margin=fig.maintenance_margin,
        initial_margin=fig.initial_margin,
        margin_ratio=venue_ratio(key[0], fig.equity, fig.maintenance_margin),
        health=fig.health,
        liq_distance_down=None if liq is None else liq.distance_down,
        liq_distance_up=None if liq is None else liq.distance_up,
        top_positions=tuple(tops[:5]),
        event_ms=event_ms,
        recv_ms=recv_ms,
    )

"""The alert policy's view of one account (:class:`rules.alerts.AccountRisk`) from the store.

Equity, MM, IM and health come from the incremental sums. Liquidation prices and distance are
python root-finding over a from-scratch :class:`~rules.account.AccountInput`, so they are only
computed when asked (the store's conservative distance screen says the threshold may be near,
or the policy has a distance alert live) and cached until the account's figures change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.store.book import FIG_MM, FIG_NOTIONAL
from rules.account import venue_ratio
from rules.alert_doc import TOP_POSITIONS_MAX
from rules.alerts import AccountRisk, PositionContribution
from rules.liquidation import liquidation_distance, liquidation_prices

if TYPE_CHECKING:
    from monitor.store.views import StoreViews

# (equity, mm, im, structural version) -> liquidation results
_Signature = tuple[float, float, float, int]


class RiskCache:
    """Liquidation distance and prices per account index, valid while its signature holds."""

    def __init__(self) -> None:
        self.distance: dict[int, tuple[_Signature, tuple[float | None, float | None]]] = {}
        self.prices: dict[int, tuple[_Signature, tuple[float | None, ...]]] = {}


def build_risk(
    store: StoreViews,
    key: tuple[str, str],
    *,
    event_ms: int,
    recv_ms: int,
    with_distance: bool,
    with_prices: bool,
) -> AccountRisk:
    """Figures of one complete account; the python-heavy liquidation figures only on request.

    The alert policy needs the distance only; liquidation prices only decorate an alert's top
    positions, so the engine asks for them once an evaluation actually produced an alert.
    """
    i = store.index_of(key)
    assert i is not None
    fig = store.figures(key)
    legs = store.legs(key)
    cache = store.risk_cache
    signature = (fig.equity, fig.maintenance_margin, fig.initial_margin, store.version(i))
    distance: tuple[float | None, float | None] = (None, None)
    prices: tuple[float | None, ...] | None = None
    if with_distance:
        hit = cache.distance.get(i)
        if hit is not None and hit[0] == signature:
            distance = hit[1]
        else:
            distance = liquidation_distance(store.account_input(key))
            cache.distance[i] = (signature, distance)
    if with_prices:
        got = cache.prices.get(i)
        if got is not None and got[0] == signature:
            prices = got[1]
        else:
            prices = tuple(liquidation_prices(store.account_input(key)))
            cache.prices[i] = (signature, prices)
    # Only the five largest by MM are built (the alert carries five): read MM straight from the
    # books' columns, rank, then materialise those few.
    # ``fig.item(row, col)`` reads one figure without forming a row view per leg.
    ranked = sorted(
        [
            (-leg.book.fig.item(FIG_MM, leg.row), leg.symbol, n)
            for n, leg in enumerate(legs)
            if leg.row >= 0
        ],
    )[:TOP_POSITIONS_MAX]
    tops: list[PositionContribution] = []
    for neg_mm, _, n in ranked:
        leg = legs[n]
        tops.append(
            PositionContribution(
                symbol=leg.symbol,
                side=leg.side,
                notional=leg.book.fig.item(FIG_NOTIONAL, leg.row),
                maintenance_margin=-neg_mm,
                liquidation_price=None if prices is None else prices[n],
            )
        )
    return AccountRisk(
        venue=key[0],
        account=key[1],
        equity=fig.equity,
        maintenance_margin=fig.maintenance_margin,
        initial_margin=fig.initial_margin,
        margin_ratio=venue_ratio(key[0], fig.equity, fig.maintenance_margin),
        health=fig.health,
        liq_distance_down=distance[0],
        liq_distance_up=distance[1],
        top_positions=tuple(tops),
        event_ms=event_ms,
        recv_ms=recv_ms,
    )

"""Venue closed-form isolated liquidation prices: Bybit §2.2, OKX §3.3, Hyperliquid §5.3."""

from __future__ import annotations

import pytest

from rules.account import AccountInput, PositionInput
from rules.errors import ModelInputError
from rules.liquidation import (
    bybit_isolated_liq_price,
    hyperliquid_liq_price,
    liquidation_prices,
    okx_isolated_liq_price,
)
from rules.tiers import hyperliquid_table
from rules.types import ContractKind, MarginMode, Side

L, S = Side.LONG, Side.SHORT


@pytest.mark.parametrize(
    ("side", "lev", "expected"),
    [
        (L, 1, 0.1),
        (L, 3, 6.7666666),
        (L, 5, 8.1),
        (L, 10, 9.1),
        (S, 1, 19.9),
        (S, 3, 13.233333),
        (S, 5, 11.9),
        (S, 10, 10.9),
    ],
)
def test_bybit_freqtrade_vectors(side: Side, lev: float, expected: float) -> None:
    assert bybit_isolated_liq_price(side, 10.0, lev, 0.01) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("side", "lev", "ep", "qty", "expected"),
    [
        (S, 5, 10, 1, 11.87413417771621),
        (S, 5, 10, 2, 11.87413417771621),
        (S, 3, 10, 1, 13.193482419684678),
        (S, 5, 8, 1, 9.499307342172967),
        (L, 5, 10, 1, 8.085708510208207),
        (L, 3, 10, 1, 6.738090425173506),
    ],
)
def test_okx_freqtrade_vectors(
    side: Side, lev: float, ep: float, qty: float, expected: float
) -> None:
    wb = qty * ep / lev
    lp = okx_isolated_liq_price(side, ep, qty, wb, mmr=0.01, taker_fee=0.0006)
    assert lp == pytest.approx(expected, rel=1e-12)


# coin, entry, size, collateral, max leverage at capture, expected liqPx (real API values)
HL_VECTORS = [
    ("ETH", 2458.5, 0.015, 36.864593, 50, 0.86915825),
    ("BTC", 63287.0, 0.00039, 24.673292, 50, 22.37166537),
    ("SOL", 146.82, 0.16, 23.482979, 20, 0.05269872),
]


@pytest.mark.parametrize(("coin", "entry", "size", "collateral", "max_lev", "expected"), HL_VECTORS)
def test_hyperliquid_isolated_vectors(
    *, coin: str, entry: float, size: float, collateral: float, max_lev: float, expected: float
) -> None:
    # freqtrade's tolerance is rel 1e-4 (the venue's figures carry funding); ours is the same.
    mm_required = entry * size / (2 * max_lev)
    lp = hyperliquid_liq_price(L, entry, size, collateral - mm_required, max_lev)
    assert lp == pytest.approx(expected, rel=1e-4)
    # The general solver (equity = MM on the HL table) gives the same price.
    table = hyperliquid_table(coin, [(0, max_lev)])
    p = PositionInput(
        coin,
        Side.LONG,
        size,
        entry,
        entry,
        ContractKind.LINEAR,
        1.0,
        table,
        MarginMode.ISOLATED,
        1.0,
        collateral,
    )
    solved = liquidation_prices(AccountInput("hyperliquid", {}, [p]))[0]
    assert solved == pytest.approx(lp, rel=1e-12)
    assert solved == pytest.approx(expected, rel=1e-4)


def test_venue_formulas_need_a_side() -> None:
    with pytest.raises(ModelInputError, match=r"^side:"):
        bybit_isolated_liq_price(Side.BOTH, 10.0, 5.0, 0.01)

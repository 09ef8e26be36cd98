"""Account figures: equity, aggregate MM/IM, venue ratio, health, haircuts, hedge legs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.account import (
    AccountInput,
    PositionInput,
    account_figures,
    collateral_value,
    position_figures,
    venue_ratio,
)
from rules.errors import ModelInputError
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, MarginMode, Side

BTC = TierTable.from_tiers(
    "BTCUSDT",
    [
        TierSpec(0, 50_000, 0.004, 0, 125),
        TierSpec(50_000, 600_000, 0.005, 50, 100),
        TierSpec(600_000, 3_000_000, 0.0065, 950, 75),
        TierSpec(3_000_000, 12_000_000, 0.01, 11_450, 50),
    ],
)
LIN = ContractKind.LINEAR


def pos(
    qty: float, entry: float, mark: float, side: Side = Side.BOTH, **kw: object
) -> PositionInput:
    return PositionInput("BTCUSDT", side, qty, entry, mark, LIN, 1.0, BTC, **kw)  # type: ignore[arg-type]


def test_single_asset_cross_account() -> None:
    a = AccountInput("binance-usdm", {"USDT": 10_000.0}, [pos(2.0, 60_000, 62_000, leverage=20)])
    f = account_figures(a)
    assert f.positions[0].notional == 124_000
    assert f.positions[0].upnl == 4_000
    assert f.positions[0].maintenance_margin == pytest.approx(124_000 * 0.005 - 50)
    assert f.positions[0].initial_margin == 6_200
    assert f.equity == 14_000
    assert f.maintenance_margin == pytest.approx(570)
    assert f.margin_ratio == pytest.approx(570 / 14_000)
    assert f.health == pytest.approx(14_000 / 570)


def test_isolated_positions_are_left_out_of_the_cross_sums() -> None:
    iso = pos(-1.0, 60_000, 62_000, Side.BOTH, margin_mode=MarginMode.ISOLATED, isolated_margin=3e3)
    a = AccountInput("binance-usdm", {"USDT": 10_000.0}, [iso])
    f = account_figures(a)
    assert f.positions[0].upnl == -2_000
    assert (f.equity, f.maintenance_margin, f.initial_margin) == (10_000, 0.0, 0.0)
    assert f.health == math.inf
    assert f.margin_ratio == 0.0


def test_hedge_legs_each_take_their_own_tier() -> None:
    long_leg = pos(10.0, 60_000, 60_000, Side.LONG)  # 600k: tier 3
    short_leg = pos(-9.0, 60_000, 60_000, Side.SHORT)  # 540k: tier 2
    f = account_figures(AccountInput("binance-usdm", {"USDT": 1e5}, [long_leg, short_leg]))
    assert f.positions[0].maintenance_margin == pytest.approx(600_000 * 0.0065 - 950)
    assert f.positions[1].maintenance_margin == pytest.approx(540_000 * 0.005 - 50)
    assert f.maintenance_margin == pytest.approx(2_950 + 2_650)


@given(
    st.floats(0.001, 100.0),
    st.floats(0.001, 100.0),
    st.floats(1_000.0, 100_000.0),
)
def test_hedge_legs_never_net(q_long: float, q_short: float, mark: float) -> None:
    legs = [pos(q_long, mark, mark, Side.LONG), pos(-q_short, mark, mark, Side.SHORT)]
    f = account_figures(AccountInput("binance-usdm", {"USDT": 1e6}, legs))
    alone = [position_figures(p).maintenance_margin for p in legs]
    assert f.maintenance_margin == pytest.approx(sum(alone), rel=1e-12)
    net = position_figures(pos(q_long - q_short, mark, mark)).maintenance_margin
    assert f.maintenance_margin >= net - 1e-9
    # each leg sits in the tier of its own notional, never of the net
    for p, mm in zip(legs, alone, strict=True):
        n = abs(p.qty) * mark
        assert mm == pytest.approx(BTC.piece(n, 0.0).mm(n), rel=1e-12)


def test_multi_assets_haircuts_positive_balances_only() -> None:
    # spec §1.5: "BNB valued at $1,000 will be considered as $950".
    a = AccountInput(
        "binance-usdm",
        {"BNB": 2.0, "USDT": 100.0, "BTC": -0.01},
        [pos(0.1, 60_000, 61_000)],
        collateral_ratios={"BNB": 0.95, "USDT": 0.9999, "BTC": 0.95},
        asset_prices={"BNB": 500.0, "BTC": 61_000.0},
        multi_asset=True,
    )
    assert collateral_value(a) == pytest.approx(950 + 99.99 - 610)
    f = account_figures(a)
    assert f.equity == pytest.approx(950 + 99.99 - 610 + 100)  # uPnL is not haircut


def test_multi_assets_needs_a_price_for_non_stable_collateral() -> None:
    a = AccountInput("binance-usdm", {"ETH": 1.0}, [], multi_asset=True)
    with pytest.raises(ModelInputError, match=r"^asset_prices\.ETH: missing"):
        collateral_value(a)
    stable = AccountInput("binance-usdm", {"USDC": 5.0, "FDUSD": 1.0}, [], multi_asset=True)
    assert collateral_value(stable) == 6.0


def test_inverse_account_counts_in_coin() -> None:
    coin = TierTable.from_tiers("BTCUSD_PERP", [TierSpec(0, 5, 0.004, 0, 125)])
    p = PositionInput("BTCUSD_PERP", Side.BOTH, 30, 50_000, 60_000, ContractKind.INVERSE, 100, coin)
    f = account_figures(AccountInput("binance-coinm", {"BTC": 0.1}, [p]))
    assert f.positions[0].notional == pytest.approx(3_000 / 60_000)
    assert f.positions[0].upnl == pytest.approx(3_000 * (1 / 50_000 - 1 / 60_000))
    assert f.maintenance_margin == pytest.approx(0.05 * 0.004)
    assert f.equity == pytest.approx(0.1 + 0.01)


@pytest.mark.parametrize(
    ("venue", "equity", "mm", "ratio"),
    [
        ("binance-usdm", 1_000.0, 50.0, 0.05),
        ("bybit", 1_000.0, 50.0, 0.05),
        ("okx", 1_000.0, 50.0, 20.0),
        ("okx", 1_000.0, 0.0, math.inf),
        ("binance-usdm", -5.0, 50.0, math.inf),
        ("hyperliquid", 10.0, 0.0, 0.0),
    ],
)
def test_venue_ratio(venue: str, equity: float, mm: float, ratio: float) -> None:
    assert venue_ratio(venue, equity, mm) == ratio


def test_rejects_a_non_positive_mark() -> None:
    with pytest.raises(ModelInputError, match="mark_price must be > 0"):
        position_figures(pos(1.0, 10.0, 0.0))


def test_margin_asset_limits_single_asset_collateral_to_its_pool() -> None:
    balances = {"USDT": 600.0, "USDC": 50_000.0}
    assert collateral_value(AccountInput("binance-usdm", balances, ())) == 50_600.0  # calc CLI
    assert (
        collateral_value(AccountInput("binance-usdm", balances, (), margin_asset="USDT")) == 600.0
    )
    assert collateral_value(AccountInput("binance-usdm", balances, (), margin_asset="BTC")) == 0.0
    # Multi-assets mode pools every balance regardless.
    multi = AccountInput("binance-usdm", balances, (), multi_asset=True, margin_asset="USDT")
    assert collateral_value(multi) == 50_600.0

"""Liquidation prices and distance (spec/margin.md §1.3–1.6, §5.3) and their invariants."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rules.account import AccountInput, PositionInput, account_figures
from rules.liquidation import liquidation_distance, liquidation_prices
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, MarginMode, Side

DATA = Path(__file__).parent / "data"
LIN, INV = ContractKind.LINEAR, ContractKind.INVERSE
ISO = MarginMode.ISOLATED


def binance_table(symbol: str) -> TierTable:
    doc: dict[str, Any] = json.loads((DATA / "calc_binance_tiers.json").read_text())
    rows = doc[symbol]["tiers"] if isinstance(doc[symbol], dict) else doc[symbol]
    specs = [
        TierSpec(r["floor"], r["cap"], r["mmr"], r["deduction"], r["max_leverage"]) for r in rows
    ]
    return TierTable.from_tiers(symbol, specs)


def position(
    symbol: str,
    qty: float,
    entry: float,
    mark: float,
    model: TierTable,
    *,
    side: Side = Side.BOTH,
    kind: ContractKind = LIN,
    cs: float = 1.0,
    iso: float | None = None,
) -> PositionInput:
    mode = ISO if iso is not None else MarginMode.CROSS
    return PositionInput(symbol, side, qty, entry, mark, kind, cs, model, mode, None, iso)


def at_marks(a: AccountInput, symbol: str | None, factor: float) -> AccountInput:
    """``a`` with the marks of ``symbol`` (every symbol if None) scaled by ``factor``."""
    moved = [
        dataclasses.replace(p, mark_price=p.mark_price * factor)
        if symbol is None or p.symbol == symbol
        else p
        for p in a.positions
    ]
    return dataclasses.replace(a, positions=moved)


# --- §1.4.1: Binance's official example (isolated, WB = 1,535,443.01) -------------------------

WB_141 = 1_535_443.01
# Tables whose tier at the liquidation price carries the example's MMR and cum: BTC is the 2020
# table (tier 4: 2.5%, cum 16,300); ETH a two-tier table whose second tier is 10%, cum 135,365.
ETH_141 = TierTable.from_tiers(
    "ETHUSDT",
    [TierSpec(0, 2_707_300, 0.05, 0, 20), TierSpec(2_707_300, 1e12, 0.10, 135_365, 10)],
)


def test_binance_official_example_isolated() -> None:
    btc = position(
        "BTCUSDT", 109.488, 32_481.98, 31_967.27, binance_table("BTCUSDT_2020"), iso=WB_141
    )
    eth = position("ETHUSDT", 3_683.979, 1_456.84, 1_335.18, ETH_141, iso=WB_141)
    lp_btc, lp_eth = liquidation_prices(AccountInput("binance-usdm", {}, [btc, eth]))
    assert lp_eth is not None
    assert lp_btc is not None
    assert round(lp_eth, 2) == 1_114.78
    assert round(lp_btc, 2) == 18_778.73
    # the tier in force at the liquidation price is the one the example states
    assert btc.model.piece(lp_btc * 109.488, 0.0).mm_deduction == pytest.approx(16_300)
    assert ETH_141.piece(lp_eth * 3_683.979, 0.0).mm_rate == 0.10


# --- §1.4.2: freqtrade generic isolated vectors (MMR 0.01, cum 0.01, WB = qty·EP/lev) ----------

# A lower first tier so that the recurrence gives cum 0.01 at MMR 0.01 from notional 2 upward.
FT_TABLE = TierTable.from_tiers(
    "X", [TierSpec(0, 2, 0.005, 0, 100), TierSpec(2, 1e9, 0.01, 0.01, 100)]
)


@pytest.mark.parametrize(
    ("side", "lev", "ep", "qty", "expected"),
    [
        (-1, 5, 10, 1.0, 11.89108910891089),
        (-1, 3, 10, 1.0, 13.2112211221122),
        (-1, 5, 8, 1.0, 9.514851485148514),
        (-1, 5, 10, 0.6, 11.897689768976898),
        (1, 5, 10, 1.0, 8.070707070707071),
        (1, 5, 8, 1.0, 6.454545454545454),
        (1, 3, 10, 1.0, 6.723905723905723),
        (1, 5, 10, 0.6, 8.063973063973064),
    ],
)
def test_freqtrade_binance_isolated_vectors(
    side: int, lev: float, ep: float, qty: float, expected: float
) -> None:
    p = position("X", side * qty, ep, ep, FT_TABLE, iso=qty * ep / lev)
    (lp,) = liquidation_prices(AccountInput("binance-usdm", {}, [p]))
    assert lp == pytest.approx(expected, rel=1e-12)


# --- §1.4.3 and §1.6: cross single position, linear and inverse --------------------------------


def test_position_risk_identity_cross() -> None:
    # WB = (LP·(−1 + mmr) + EP)·qty for a tier-1 long; the solver inverts it back.
    lp_api = 8465.58529116
    wb = (lp_api * (-1 + 0.004) + 61788.9) * 0.001
    assert wb == pytest.approx(53.35717705, abs=1e-8)
    p = position("BTCUSDT", 0.001, 61788.9, 60_000.0, binance_table("BTCUSDT"))
    (lp,) = liquidation_prices(AccountInput("binance-usdm", {"USDT": wb}, [p]))
    assert lp == pytest.approx(lp_api, rel=1e-12)


COIN_TABLE = TierTable.from_tiers(
    "BTCUSD_PERP",
    [
        TierSpec(0, 5, 0.004, 0, 125),
        TierSpec(5, 10, 0.005, 0.005, 100),
        TierSpec(10, 20, 0.01, 0.055, 50),
    ],
)


@pytest.mark.parametrize(("side", "wb"), [(1, 0.02), (-1, 0.02), (1, 0.5)])
def test_coinm_single_position_formula(side: int, wb: float) -> None:
    # spec §1.6: long LP = N(1+MMR)/(WB+cum+N/EP); short LP = N(MMR−1)/(WB+cum−N/EP).
    contracts, ep = 50.0, 60_000.0
    n = contracts * 100
    p = position("BTCUSD_PERP", side * contracts, ep, ep, COIN_TABLE, kind=INV, cs=100)
    (lp,) = liquidation_prices(AccountInput("binance-coinm", {"BTC": wb}, [p]))
    assert lp is not None
    piece = COIN_TABLE.piece(n / lp, 0.0)
    mmr, cum = piece.mm_rate, piece.mm_deduction
    formula = (
        n * (1 + mmr) / (wb + cum + n / ep) if side > 0 else n * (mmr - 1) / (wb + cum - n / ep)
    )
    assert lp == pytest.approx(formula, rel=1e-12)


def test_short_inverse_with_huge_margin_has_no_liquidation_price() -> None:
    # A coin-margined short loses at most N/EP coin as the price rises: with WB above that it
    # can't be liquidated (the §1.6 formula turns negative: the UI's "--").
    p = position("BTCUSD_PERP", -10, 60_000, 60_000, COIN_TABLE, kind=INV, cs=100)
    (lp,) = liquidation_prices(AccountInput("binance-coinm", {"BTC": 1.0}, [p]))
    assert lp is None


def test_tier_at_the_liquidation_price_decides() -> None:
    # 20 BTC long at 60,000 (1.2M, tier 3); falls into tier 2 (< 600k) before liquidation.
    table = binance_table("BTCUSDT")
    p = position("BTCUSDT", 20.0, 60_000, 60_000, table)
    (lp,) = liquidation_prices(AccountInput("binance-usdm", {"USDT": 1_000_000.0}, [p]))
    assert lp is not None
    assert 20 * lp < 600_000
    # freqtrade's one-way formula with the tier-2 figures
    assert lp == pytest.approx((1_000_000 + 50 - 20 * 60_000) / (20 * 0.005 - 20), rel=1e-12)


def test_hedge_legs_of_a_symbol_share_one_cross_price() -> None:
    table = binance_table("ETHUSDT")
    legs = [
        position("ETHUSDT", 15.0, 2_400, 2_450, table, side=Side.LONG),
        position("ETHUSDT", -6.0, 2_500, 2_450, table, side=Side.SHORT),
    ]
    a = AccountInput("binance-usdm", {"USDT": 5_000.0}, legs)
    lp_long, lp_short = liquidation_prices(a)
    assert lp_long == lp_short
    assert lp_long is not None
    # spec §1.3 hedge formula, one tier (all notionals stay in tier 1 at this price)
    num = 5_000 + 0 + 0 - 15 * 2_400 + 6 * 2_500
    den = 15 * 0.004 + 6 * 0.004 - 15 + 6
    assert lp_long == pytest.approx(num / den, rel=1e-12)
    assert account_figures(at_marks(a, "ETHUSDT", lp_long / 2_450)).health == pytest.approx(1.0)


def test_okx_discontinuity_liquidates_at_the_tier_floor() -> None:
    # No deduction: crossing into the 2% tier makes MM jump above equity at the floor itself.
    okx = TierTable.from_tiers(
        "BTC-USDT-SWAP",
        [TierSpec(0, 1_000, 0.01, None, 50), TierSpec(1_000, 1e9, 0.5, None, 1)],
        deduction=False,
    )
    p = position("BTC-USDT-SWAP", -10.0, 90.0, 90.0, okx)  # short 900 notional
    (lp,) = liquidation_prices(AccountInput("okx", {"USDT": 150.0}, [p]))
    assert lp == pytest.approx(100.0, rel=1e-12)


def test_distance_single_long_is_exact() -> None:
    p = position("BTCUSDT", 1.0, 60_000, 60_000, binance_table("BTCUSDT"))
    a = AccountInput("binance-usdm", {"USDT": 6_000.0}, [p])
    down, up = liquidation_distance(a)
    (lp,) = liquidation_prices(a)
    assert lp is not None
    assert down == pytest.approx(1 - lp / 60_000, rel=1e-12)
    assert up is None
    assert account_figures(at_marks(a, None, 1 - (down or 0))).health == pytest.approx(1, rel=1e-9)


def test_distance_when_already_liquidatable_is_zero() -> None:
    p = position("BTCUSDT", 1.0, 60_000, 50_000, binance_table("BTCUSDT"))
    assert liquidation_distance(AccountInput("binance-usdm", {"USDT": 1_000.0}, [p])) == (0.0, 0.0)


def test_distance_moves_non_stable_collateral() -> None:
    # Long BTC collateral and short BTCUSDT: the hedge means neither direction liquidates fast.
    p = position("BTCUSDT", -1.0, 60_000, 60_000, binance_table("BTCUSDT"))
    a = AccountInput(
        "binance-usdm",
        {"BTC": 1.0},
        [p],
        collateral_ratios={"BTC": 0.9},
        asset_prices={"BTC": 60_000.0},
        multi_asset=True,
    )
    down, up = liquidation_distance(a)
    assert down is None  # 54,000w − 60,000(w − 1) − MM(60,000w) stays > 0 for w in (0, 1]
    # up, in tier 2 (MM = 300w − 50): 54,000w − 60,000w + 60,000 = 300w − 50
    assert up == pytest.approx(60_050 / 6_300 - 1, rel=1e-12)


def test_distance_inverse_account_is_exact() -> None:
    p = position("BTCUSD_PERP", 50, 60_000, 60_000, COIN_TABLE, kind=INV, cs=100)
    a = AccountInput("binance-coinm", {"BTC": 0.02}, [p])
    down, up = liquidation_distance(a)
    (lp,) = liquidation_prices(a)
    assert lp is not None
    assert down == pytest.approx(1 - lp / 60_000, rel=1e-12)
    assert up is None


# --- properties ---------------------------------------------------------------------------

TABLES = [binance_table("BTCUSDT"), binance_table("ETHUSDT"), binance_table("BTCUSDT_2020")]


@st.composite
def cross_accounts(draw: st.DrawFn, *, kind: ContractKind = LIN, symbols: int = 3) -> AccountInput:
    positions: list[PositionInput] = []
    for s in range(draw(st.integers(1, symbols))):
        table = TABLES[s % len(TABLES)]
        symbol = f"S{s}"
        mark = draw(st.floats(10.0, 100_000.0))
        hedge = draw(st.booleans())
        legs = [(Side.LONG, 1.0), (Side.SHORT, -1.0)] if hedge else [(Side.BOTH, 0.0)]
        for side, sign in legs:
            if kind is LIN:
                notional = draw(st.floats(100.0, 5e7))
                qty = notional / mark
                cs = 1.0
            else:
                qty = float(draw(st.integers(1, 200_000)))
                cs = 100.0
                notional = qty * cs / mark
                table = COIN_TABLE
            if sign == 0.0:
                qty *= draw(st.sampled_from([1.0, -1.0]))
            else:
                qty *= sign
            entry = mark * draw(st.floats(0.7, 1.3))
            positions.append(position(symbol, qty, entry, mark, table, side=side, kind=kind, cs=cs))
    total = sum(
        abs(p.qty) * p.contract_size * (p.mark_price if kind is LIN else 1 / p.mark_price)
        for p in positions
    )
    balance = total * draw(st.floats(0.005, 2.0))
    asset = "USDT" if kind is LIN else "BTC"
    return AccountInput(
        "binance-usdm" if kind is LIN else "binance-coinm", {asset: balance}, positions
    )


def assert_health_one(a: AccountInput) -> None:
    """health == 1 to 1e-9, or to the float64 rounding of the account's largest term.

    Equity is a sum of terms up to ``scale``; recomputing it cannot be closer to MM than a few
    ulps of ``scale``, however exact the solver: a 99.99% move of a 1M position is such a case.
    """
    f = account_figures(a)
    scale = sum(abs(v) for v in a.balances.values()) + sum(
        abs(p.qty) * p.contract_size * (abs(p.entry_price) + p.mark_price)
        if p.kind is LIN
        else abs(p.qty) * p.contract_size * (1 / p.entry_price + 1 / p.mark_price)
        for p in a.positions
    )
    gap = abs(f.equity - f.maintenance_margin)
    assert gap <= 1e-9 * f.maintenance_margin + 8 * math.ulp(scale), (f.health, gap)


def _check_health_one_at_liquidation_prices(a: AccountInput) -> None:
    for p, lp in zip(a.positions, liquidation_prices(a), strict=True):
        if lp is None:
            continue
        assert_health_one(at_marks(a, p.symbol, lp / p.mark_price))


@settings(max_examples=300, deadline=None)
@given(cross_accounts())
def test_health_is_one_at_every_liquidation_price_linear(a: AccountInput) -> None:
    _check_health_one_at_liquidation_prices(a)


@settings(max_examples=200, deadline=None)
@given(cross_accounts(kind=INV, symbols=1))
def test_health_is_one_at_every_liquidation_price_inverse(a: AccountInput) -> None:
    _check_health_one_at_liquidation_prices(a)


@settings(max_examples=300, deadline=None)
@given(cross_accounts())
def test_health_is_one_at_the_liquidation_distance(a: AccountInput) -> None:
    down, up = liquidation_distance(a)
    for move in (None if down is None else -down, up):
        if move is None or move == 0.0:
            continue
        assert_health_one(at_marks(a, None, 1.0 + move))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([LIN, INV]).flatmap(lambda k: cross_accounts(kind=k, symbols=1)))
def test_liquidation_distance_and_price_agree_for_one_symbol(a: AccountInput) -> None:
    assume(account_figures(a).health > 1.0)
    (lp, *_) = liquidation_prices(a)
    down, up = liquidation_distance(a)
    mark = a.positions[0].mark_price
    if lp is None:
        assert down is None
        assert up is None
        return
    if lp < mark:
        assert down == pytest.approx(1 - lp / mark, rel=1e-9)
    elif lp / mark - 1 <= 10.0:
        assert up == pytest.approx(lp / mark - 1, rel=1e-9)
    # and no uniform move smaller than the distance liquidates
    for d, sign in ((down, -1.0), (up, 1.0)):
        if d is not None and d > 1e-6:
            assert account_figures(at_marks(a, None, 1 + sign * d * 0.999)).health > 1.0


@given(cross_accounts(symbols=1))
def test_already_liquidatable_accounts_report_zero_distance(a: AccountInput) -> None:
    broke = dataclasses.replace(a, balances={"USDT": -1e9})
    assert liquidation_distance(broke) == (0.0, 0.0)
    assert math.isinf(account_figures(dataclasses.replace(a, positions=[])).health)

"""Store value tests: hand-computed venue examples through the incremental store."""

from __future__ import annotations

import math

import pytest
from store_support import (
    BTC_2021,
    BTC_2024,
    VENUE,
    apply_all,
    assert_matches_scratch,
    linear,
    mark,
    position,
    table,
)

from connectors.events import (
    AccountSnapshot,
    AssetPrice,
    BalanceUpdate,
    CollateralModeUpdate,
    Instrument,
    LeverageUpdate,
    MarginCall,
    MarkRun,
    PositionFill,
    TierTableUpdate,
)
from monitor.store import DistanceThreshold, QuietBand, Store
from rules.imf_mf import ImfMfModel
from rules.size_linear import SizeLinearModel
from rules.tiers import TierTable
from rules.types import ContractKind, MarginMode, Piece, Side

KEY = (VENUE, "main")

# A single open-ended 10% tier with Binance's example maintenance amount (spec §1.4.1, ETH row).
ETH_10PCT = TierTable("ETHUSDT", (Piece(0.0, math.inf, 0.10, 135_365.0, 0.2),), has_deduction=True)


def _btc_store(*marks: float) -> Store:
    store = Store()
    store.apply(linear("BTCUSDT"), 0)
    store.apply(table("BTCUSDT", BTC_2024), 0)
    for m in marks:
        store.apply(mark("BTCUSDT", m), 0)
    return store


def test_binance_worked_example_two_positions() -> None:
    # spec/margin.md §1.4.1: WB 1,535,443.01; BTC 109.488 long @32,481.98 (2.5%, cum 16,300);
    # ETH 3,683.979 long @1,456.84 (10%, cum 135,365); marks 31,967.27 / 1,335.18.
    store = Store()
    for ev in (
        linear("BTCUSDT"),
        linear("ETHUSDT"),
        table("BTCUSDT", BTC_2021),
        table("ETHUSDT", ETH_10PCT),
        mark("BTCUSDT", 31_967.27),
        mark("ETHUSDT", 1_335.18),
        BalanceUpdate(VENUE, "main", "USDT", 1_535_443.01, 0),
        position("main", "BTCUSDT", 109.488, 32_481.98),
        position("main", "ETHUSDT", 3_683.979, 1_456.84),
    ):
        store.apply(ev, 0)
    fig = store.figures(KEY)
    # Hand arithmetic: BTC notional 3,500,032.45776 → MM 71,200.811444;
    # ETH notional 4,918,775.08122 → MM 356,512.508122; uPnL −56,354.56848 and −448,192.88514.
    mm = 71_200.811444 + 356_512.508122
    equity = 1_535_443.01 - 56_354.56848 - 448_192.88514
    assert fig.maintenance_margin == pytest.approx(mm, rel=1e-12)
    assert fig.equity == pytest.approx(equity, rel=1e-12)
    assert fig.health == pytest.approx(equity / mm, rel=1e-12)
    assert fig.margin_ratio == pytest.approx(mm / equity, rel=1e-12)
    assert fig.complete
    scratch = assert_matches_scratch(store, KEY)
    assert fig.maintenance_margin == scratch.maintenance_margin  # fresh re-sum: fsum-exact


@pytest.mark.parametrize(
    ("price", "expected_mm"),
    [(10_000.0, 40.0), (264_000.0, 1_270.0), (1_000_000.0, 5_550.0), (5_000_000.0, 38_550.0)],
)
def test_tick_across_tiers_matches_bracket_vectors(price: float, expected_mm: float) -> None:
    # 1 BTC at a mark equal to the notional of spec §1.1.1's bracket-lookup table.
    store = _btc_store(30_000.0)
    store.apply(position("main", "BTCUSDT", 1.0, 30_000.0), 0)
    assert store.figures(KEY).maintenance_margin == pytest.approx(120.0, rel=1e-12)
    store.apply(mark("BTCUSDT", price), 1)
    assert store.figures(KEY).maintenance_margin == pytest.approx(expected_mm, rel=1e-12)
    assert_matches_scratch(store, KEY)
    # Back below the first tier boundary: the cached piece is revalidated again.
    store.apply(mark("BTCUSDT", 49_999.0), 2)
    assert store.figures(KEY).maintenance_margin == pytest.approx(199.996, rel=1e-12)


def test_hedge_legs_each_take_their_own_bracket() -> None:
    store = _btc_store(50_000.0)
    store.apply(BalanceUpdate(VENUE, "main", "USDT", 100_000.0, 0), 0)
    # LONG 20 BTC (1,000,000 notional, bracket 3) and SHORT 0.5 BTC (25,000, bracket 1).
    store.apply(position("main", "BTCUSDT", 20.0, 48_000.0, Side.LONG), 0)
    store.apply(position("main", "BTCUSDT", -0.5, 52_000.0, Side.SHORT), 0)
    fig = store.figures(KEY)
    assert fig.maintenance_margin == pytest.approx(5_550.0 + 100.0, rel=1e-12)
    assert fig.equity == pytest.approx(100_000.0 + 20 * 2_000.0 + 0.5 * 2_000.0, rel=1e-12)
    assert fig.gross_notional == pytest.approx(1_025_000.0, rel=1e-12)
    store.apply(mark("BTCUSDT", 40_000.0), 1)
    fig = store.figures(KEY)
    # LONG 800,000 (bracket 3: 0.65%·800k − 950 = 4,250); SHORT 20,000 (0.4% = 80).
    assert fig.maintenance_margin == pytest.approx(4_330.0, rel=1e-12)
    assert fig.equity == pytest.approx(100_000.0 - 160_000.0 + 6_000.0, rel=1e-12)
    assert_matches_scratch(store, KEY)


def test_fills_weighted_entry_reduce_and_flip() -> None:
    store = _btc_store(100.0)
    fills = [
        (2.0, 100.0, 2.0, 100.0),  # open
        (2.0, 110.0, 4.0, 105.0),  # increase: contract-weighted entry
        (-1.0, 120.0, 3.0, 105.0),  # reduce: entry unchanged
        (-5.0, 90.0, -2.0, 90.0),  # flip: the remainder opens at the fill price
        (2.0, 95.0, 0.0, None),  # close: the leg disappears
    ]
    for delta, price, qty, entry in fills:
        ev = PositionFill(VENUE, "main", "BTCUSDT", Side.BOTH, delta, price, 0)
        store.apply(ev, 0)
        legs = store.legs(KEY)
        if entry is None:
            assert legs == []
            assert store.figures(KEY).maintenance_margin == 0.0
        else:
            (leg,) = legs
            assert leg.qty == qty
            assert leg.entry == pytest.approx(entry, rel=1e-15)
            assert_matches_scratch(store, KEY)


def test_fill_whose_position_the_venue_pushes_is_not_applied_twice() -> None:
    store = _btc_store(100.0)
    store.apply(position("main", "BTCUSDT", 0.001, 7_100.5), 0)
    pushed = PositionFill(VENUE, "main", "BTCUSDT", Side.BOTH, 0.001, 7_100.5, 0,
                          position_pushed=True)  # fmt: skip
    assert store.apply(pushed, 5).accounts.size == 0
    (leg,) = store.legs(KEY)
    assert leg.qty == 0.001
    assert store.times(KEY).positions_recv_ms == 5


def test_inverse_fill_uses_harmonic_entry() -> None:
    store = Store()
    store.apply(Instrument("binance-coinm", "BTCUSD_PERP", ContractKind.INVERSE, 100.0, "BTC"), 0)
    store.apply(TierTableUpdate("binance-coinm", "BTCUSD_PERP", SizeLinearModel(0.005, 0.01, 0)), 0)
    store.apply(mark("BTCUSD_PERP", 50_000.0, venue="binance-coinm"), 0)
    for qty, price in ((1.0, 40_000.0), (1.0, 60_000.0)):
        fill = PositionFill("binance-coinm", "a", "BTCUSD_PERP", Side.BOTH, qty, price, 0)
        store.apply(fill, 0)
    (leg,) = store.legs(("binance-coinm", "a"))
    assert leg.entry == pytest.approx(48_000.0, rel=1e-15)  # 2 / (1/40k + 1/60k)
    store.apply(BalanceUpdate("binance-coinm", "a", "BTC", 0.01, 0), 0)
    fig = store.figures(("binance-coinm", "a"))
    # 200 USD of contracts at 50,000: notional 0.004 BTC, MM 0.5% = 2e-5 BTC;
    # uPnL 200·(1/48,000 − 1/50,000) BTC.
    assert fig.maintenance_margin == pytest.approx(2e-5, rel=1e-12)
    assert fig.equity == pytest.approx(0.01 + 200 * (1 / 48_000 - 1 / 50_000), rel=1e-12)
    assert_matches_scratch(store, ("binance-coinm", "a"))


def test_isolated_leg_is_left_out_of_cross_sums() -> None:
    store = _btc_store(30_000.0)
    store.apply(BalanceUpdate(VENUE, "main", "USDT", 1_000.0, 0), 0)
    store.apply(position("main", "BTCUSDT", 1.0, 30_000.0, Side.LONG), 0)
    iso = position(
        "main", "BTCUSDT", -1.0, 31_000.0, Side.SHORT, mode=MarginMode.ISOLATED, isolated_margin=1e3
    )
    store.apply(iso, 0)
    store.apply(mark("BTCUSDT", 29_000.0), 1)
    fig = store.figures(KEY)
    assert fig.maintenance_margin == pytest.approx(116.0, rel=1e-12)  # the cross leg only
    assert fig.equity == pytest.approx(0.0, abs=1e-9)  # 1,000 − 1,000 of cross uPnL
    assert_matches_scratch(store, KEY)


def test_position_before_its_inputs_is_held_and_unknown() -> None:
    store = Store()
    store.apply(BalanceUpdate(VENUE, "main", "USDT", 1_000.0, 0), 0)
    store.apply(position("main", "BTCUSDT", 1.0, 30_000.0), 0)
    assert store.missing_inputs(KEY) == ("BTCUSDT both: no instrument, margin model, mark price",)
    fig = store.figures(KEY)
    assert not fig.complete
    assert math.isnan(fig.health) and math.isnan(fig.maintenance_margin)
    changed = store.apply(linear("BTCUSDT"), 0)
    assert changed.candidates.size == 0  # incomplete accounts are never alert candidates
    store.apply(table("BTCUSDT", BTC_2024), 0)
    assert store.missing_inputs(KEY) == ("BTCUSDT both: no mark price",)
    store.apply(mark("BTCUSDT", 30_000.0, ms=5), 7)
    assert store.missing_inputs(KEY) == ()
    assert store.figures(KEY).maintenance_margin == pytest.approx(120.0, rel=1e-12)
    assert store.mark_recv_times(KEY) == {"BTCUSDT": 7}


def test_account_snapshot_replaces_everything_and_per_account_table_overrides() -> None:
    store = _btc_store(30_000.0)
    store.apply(linear("ETHUSDT"), 0)
    store.apply(table("ETHUSDT", ETH_10PCT), 0)
    store.apply(mark("ETHUSDT", 2_000.0), 0)
    store.apply(position("main", "ETHUSDT", 10.0, 2_000.0), 0)
    snap = AccountSnapshot(
        VENUE,
        "main",
        {"USDT": 5_000.0},
        (position("main", "BTCUSDT", 1.5, 30_000.0),),
        event_ms=3,
    )
    changed = store.apply(snap, 9)
    assert changed.accounts.tolist() == [0]
    assert [leg.symbol for leg in store.legs(KEY)] == ["BTCUSDT"]
    assert store.figures(KEY).maintenance_margin == pytest.approx(180.0, rel=1e-12)
    assert store.times(KEY).positions_recv_ms == 9
    # A per-account bracket table (Binance notionalCoef) re-prices only this account's legs.
    doubled = TierTable("BTCUSDT", (Piece(0.0, math.inf, 0.008, 0.0, 0.01),), has_deduction=True)
    store.apply(TierTableUpdate(VENUE, "BTCUSDT", doubled, account="main"), 0)
    store.apply(position("other", "BTCUSDT", 1.5, 30_000.0), 0)
    assert store.figures(KEY).maintenance_margin == pytest.approx(360.0, rel=1e-12)
    assert store.figures((VENUE, "other")).maintenance_margin == pytest.approx(180.0, rel=1e-12)
    assert_matches_scratch(store, KEY)


def test_leverage_sets_initial_margin_and_multi_asset_collateral() -> None:
    store = _btc_store(30_000.0)
    store.apply(position("main", "BTCUSDT", 1.0, 30_000.0), 0)
    assert store.figures(KEY).initial_margin == pytest.approx(240.0, rel=1e-12)  # 1/125
    store.apply(LeverageUpdate(VENUE, "main", "BTCUSDT", 10.0, 0), 0)
    assert store.figures(KEY).initial_margin == pytest.approx(3_000.0, rel=1e-12)
    store.apply(BalanceUpdate(VENUE, "main", "USDT", 1_000.0, 0), 0)
    store.apply(BalanceUpdate(VENUE, "main", "BNB", 2.0, 0), 0)
    store.apply(CollateralModeUpdate(VENUE, "main", True, 0), 0)
    assert store.missing_inputs(KEY) == (
        "asset_prices.BNB: missing (needed to value balances.BNB)",
    )
    assert not store.figures(KEY).complete
    store.apply(AssetPrice(VENUE, "BNB", 500.0, 0), 0)
    assert store.figures(KEY).equity == pytest.approx(2_000.0, rel=1e-12)  # no ratio given
    assert_matches_scratch(store, KEY)


def test_slow_model_rows_round_like_the_model() -> None:
    store = Store()
    store.apply(Instrument("dydx", "BTC-USD", ContractKind.LINEAR, 1.0, "USDC"), 0)
    store.apply(TierTableUpdate("dydx", "BTC-USD", ImfMfModel(imf=0.05, mf=0.6)), 0)
    store.apply(mark("BTC-USD", 30_000.123457, venue="dydx"), 0)
    store.apply(position("a", "BTC-USD", 0.0333, 30_000.0, venue="dydx"), 0)
    store.apply(mark("BTC-USD", 30_001.777777, venue="dydx"), 1)
    scratch = assert_matches_scratch(store, ("dydx", "a"))
    assert store.figures(("dydx", "a")).maintenance_margin == scratch.maintenance_margin


def test_margin_call_and_unknown_events_change_nothing() -> None:
    store = _btc_store(30_000.0)
    changed = store.apply(MarginCall(VENUE, "main", 0, ()), 0)
    assert changed.accounts.size == 0 and changed.candidates.size == 0


def test_quiet_band_screens_candidates() -> None:
    store = _btc_store(30_000.0)
    store.apply(BalanceUpdate(VENUE, "main", "USDT", 600.0, 0), 0)
    changed = store.apply(position("main", "BTCUSDT", 1.0, 30_000.0), 0)
    assert changed.candidates.tolist() == [0]  # band unset: always evaluated
    store.apply(QuietBand(0, 2.0, math.inf), 0)  # health 600/120 = 5 is inside
    assert store.apply(mark("BTCUSDT", 29_990.0), 1).candidates.size == 0
    # health (600 − 300)/118.8 = 2.53 still inside; at 29,500: 100/118 < 2 leaves it.
    assert store.apply(mark("BTCUSDT", 29_700.0), 2).candidates.size == 0
    changed = store.apply(mark("BTCUSDT", 29_500.0), 3)
    assert changed.accounts.tolist() == [0] and changed.candidates.tolist() == [0]
    # The distance prefilter: threshold 10%, equity − MM = −18 < 3·0.1·29,500 → near.
    store.apply(QuietBand(0, -math.inf, math.inf), 0)
    store.apply(DistanceThreshold(0, 0.10), 0)
    assert store.apply(mark("BTCUSDT", 29_501.0), 4).candidates.tolist() == [0]


@pytest.mark.parametrize("as_run", [False, True], ids=["mark_list", "mark_run"])
def test_a_batch_is_applied_in_parts_so_a_dip_inside_it_is_screened(as_run: bool) -> None:
    """The store's own mark route splits a batch at a held instrument's repeat: the dip to
    29,500 (health 100/118 < 2, out of the band) is a candidate of its own part although the
    batch ends back at 30,000, and each part carries its mark's event time."""
    store = _btc_store(30_000.0)
    store.apply(BalanceUpdate(VENUE, "main", "USDT", 600.0, 0), 0)
    store.apply(position("main", "BTCUSDT", 1.0, 30_000.0), 0)
    store.apply(QuietBand(0, 2.0, math.inf), 0)
    marks = [mark("BTCUSDT", 29_900.0, ms=1), mark("DOGEUSDT", 0.1, ms=2),
             mark("BTCUSDT", 29_500.0, ms=3), mark("BTCUSDT", 30_000.0, ms=4)]  # fmt: skip
    batch = MarkRun(VENUE, marks) if as_run else marks
    parts = apply_all(store, batch, 7)
    got = [(p.candidates.tolist(), p.event_ms) for p in parts]
    assert got == [([], 1), ([0], 3), ([], 4)]
    assert store.figures(KEY).health == pytest.approx(600 / 120, rel=1e-12)


def test_figures_arrays_for_the_metrics_collector() -> None:
    store = _btc_store(30_000.0)
    store.apply(BalanceUpdate(VENUE, "main", "USDT", 600.0, 0), 0)
    store.apply(position("main", "BTCUSDT", 1.0, 30_000.0), 0)
    store.apply(position("held", "ETHUSDT", 1.0, 2_000.0), 0)
    arrays = store.figures_arrays()
    assert arrays.keys == [KEY, (VENUE, "held")]
    assert arrays.health[0] == pytest.approx(5.0, rel=1e-12)
    assert arrays.margin_ratio[0] == pytest.approx(0.2, rel=1e-12)
    assert math.isnan(arrays.health[1]) and not arrays.complete[1]
    # OKX's ratio is equity/MM; a negative equity elsewhere reads as an infinite MM/equity.
    store.apply(BalanceUpdate("okx", "o", "USDT", 600.0, 0), 0)
    store.apply(BalanceUpdate(VENUE, "broke", "USDT", -5.0, 0), 0)
    store.apply(linear("BTC-USDT-SWAP", venue="okx"), 0)
    store.apply(TierTableUpdate("okx", "BTC-USDT-SWAP", BTC_2024), 0)
    store.apply(mark("BTC-USDT-SWAP", 30_000.0, venue="okx"), 0)
    store.apply(position("o", "BTC-USDT-SWAP", 1.0, 30_000.0, venue="okx"), 0)
    store.apply(position("broke", "BTCUSDT", 1.0, 30_000.0), 0)
    arrays = store.figures_arrays()
    assert arrays.keys[2:] == [("okx", "o"), (VENUE, "broke")]
    assert arrays.margin_ratio[2] == pytest.approx(5.0, rel=1e-12)
    assert arrays.margin_ratio[3] == math.inf


def test_single_asset_mode_counts_only_the_settle_assets_pool() -> None:
    # C3: USDT 600 backs 1 BTCUSDT (MM 120): health 5.0. A 50,000 USDC balance is a separate
    # pool in single-asset mode and must not lift it (it did: health 421.7).
    store = _btc_store(30_000.0)
    store.apply(BalanceUpdate(VENUE, "main", "USDT", 600.0, 0), 0)
    store.apply(position("main", "BTCUSDT", 1.0, 30_000.0), 0)
    assert store.figures(KEY).health == 5.0
    store.apply(BalanceUpdate(VENUE, "main", "USDC", 50_000.0, 1), 1)
    fig = store.figures(KEY)
    assert (fig.equity, fig.health) == (600.0, 5.0)
    assert store.recompute(KEY).equity == 600.0  # scratch agrees: account_input names the pool
    # Multi-assets mode pools every balance (stablecoins at 1.0, no haircut given).
    store.apply(CollateralModeUpdate(VENUE, "main", True, 2), 2)
    assert store.figures(KEY).equity == 50_600.0
    assert_matches_scratch(store, KEY)


def test_cross_legs_in_two_settle_assets_make_the_account_incomplete() -> None:
    store = _btc_store(30_000.0)
    store.apply(Instrument(VENUE, "BTCUSDC", ContractKind.LINEAR, 1.0, "USDC"), 0)
    store.apply(table("BTCUSDC", BTC_2024), 0)
    store.apply(mark("BTCUSDC", 30_000.0), 0)
    store.apply(AccountSnapshot(VENUE, "main", {"USDT": 600.0, "USDC": 600.0}, (), 0), 0)
    store.apply(position("main", "BTCUSDT", 1.0, 30_000.0), 0)
    assert store.figures(KEY).complete
    store.apply(position("main", "BTCUSDC", 0.5, 30_000.0), 1)
    assert not store.figures(KEY).complete
    assert store.missing_inputs(KEY) == (
        "collateral: positions margined in USDC and USDT are separate pools in single-asset mode",
    )
    store.apply(position("main", "BTCUSDC", 0.0, 30_000.0), 2)  # closed: one pool again
    assert store.figures(KEY).complete and store.figures(KEY).equity == 600.0


def test_single_asset_account_without_positions_shows_its_default_pool() -> None:
    store = Store()
    store.apply(AccountSnapshot(VENUE, "main", {"USDT": 600.0, "USDC": 50_000.0}, (), 0), 0)
    assert store.figures(KEY).equity == 600.0

"""The leg-level distance screen (monitor.store.distance) never clears an account whose exact
liquidation distance (rules.liquidation.liquidation_distance) is under the threshold."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_support import BTC_2024, OKX_ETH

from connectors.events import (
    AssetPrice,
    BalanceUpdate,
    CollateralModeUpdate,
    Event,
    Instrument,
    MarkPrice,
    PositionSnapshot,
    TierTableUpdate,
)
from monitor.store import DistanceThreshold, Store
from monitor.store.accounts import DIST_SLOPE
from monitor.store.distance import clear_of_threshold
from rules.imf_mf import ImfMfModel
from rules.liquidation import liquidation_distance
from rules.model import MarginModel
from rules.size_linear import SizeLinearModel
from rules.types import ContractKind, Side

V = "venue"
MODELS: dict[str, tuple[float, MarginModel, float]] = {  # contract size, model, mark
    "BTC": (1.0, BTC_2024, 60_000.0),
    "ETH": (0.1, OKX_ETH, 3_000.0),
    "SOL": (1.0, SizeLinearModel(0.005, 0.01, 1e-6), 150.0),
    "DYDX": (1.0, ImfMfModel(imf=0.05, mf=0.6), 2.0),
}


def _store(
    legs: list[tuple[str, Side, float, float]],
    marks: dict[str, float],
    usdt: float,
    coin: float,
    multi: bool,
) -> Store:
    store = Store()
    setup: list[Event] = []
    for sym, (cs, model, _) in MODELS.items():
        setup.append(Instrument(V, sym, ContractKind.LINEAR, cs, "USDT"))
        setup.append(TierTableUpdate(V, sym, model))
        setup.append(MarkPrice(V, sym, marks[sym], 0))
    setup.append(AssetPrice(V, "BTC", marks["BTC"], 0))
    setup.append(BalanceUpdate(V, "a", "USDT", usdt, 0))
    setup.append(BalanceUpdate(V, "a", "BTC", coin, 0))
    setup.append(CollateralModeUpdate(V, "a", multi, 0))
    for sym, side, qty, entry_rel in legs:
        entry = MODELS[sym][2] * entry_rel
        setup.append(PositionSnapshot(V, "a", sym, side, qty, entry, 0))
    for ev in setup:
        store.apply(ev, 0)
    return store


leg = st.tuples(
    st.sampled_from(["BTC", "ETH", "SOL", "DYDX"]),
    st.sampled_from([Side.LONG, Side.SHORT]),
    st.floats(0.01, 40.0),
    st.floats(0.8, 1.25),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    legs=st.lists(leg, min_size=1, max_size=5, unique_by=lambda t: (t[0], t[1])),
    moves=st.tuples(*[st.floats(0.7, 1.4)] * 4),
    usdt=st.floats(-20_000.0, 400_000.0),
    coin=st.floats(-1.0, 3.0),
    multi=st.booleans(),
    threshold=st.floats(0.001, 0.33),
)
def test_cleared_accounts_are_never_near(
    *,
    legs: list[tuple[str, Side, float, float]],
    moves: tuple[float, float, float, float],
    usdt: float,
    coin: float,
    multi: bool,
    threshold: float,
) -> None:
    signed = [(s, side, q if side is Side.LONG else -q, e) for s, side, q, e in legs]
    marks = {sym: m[2] * k for (sym, m), k in zip(MODELS.items(), moves, strict=True)}
    store = _store(signed, marks, usdt, coin, multi)
    key = (V, "a")
    i = store.index_of(key)
    assert i is not None
    acct = store.state(key)
    if not store.complete(i):
        return
    cleared = clear_of_threshold(acct, store.collateral(i), {"BTC": marks["BTC"]}, threshold)
    if cleared:
        down, up = liquidation_distance(store.account_input(key))
        assert down is None or down >= threshold, (down, threshold)
        assert up is None or up >= threshold, (up, threshold)


def test_hedged_account_is_cleared_where_the_gross_screen_is_not() -> None:
    # 10 BTC long against 9.5 BTC short (separate legs): net 30,000 USD of 1.17M gross.
    legs = [("BTC", Side.LONG, 10.0, 1.0), ("BTC", Side.SHORT, -9.5, 1.0)]
    marks = {sym: m[2] for sym, m in MODELS.items()}
    store = _store(legs, marks, 60_000.0, 0.0, False)
    key = (V, "a")
    i = store.index_of(key)
    assert i is not None
    store.apply(DistanceThreshold(i, 0.05), 0)
    assert store.distance_maybe_near(i) is False  # cleared by net exposure
    fig = store.figures(key)
    gross_screen = fig.equity - fig.maintenance_margin < DIST_SLOPE * 0.05 * fig.gross_notional
    assert gross_screen  # 3·5%·1.17M = 175k > 60k − MM: the first screen could not clear it
    down, up = liquidation_distance(store.account_input(key))
    assert down is None or down >= 0.05
    assert up is None or up >= 0.05  # net long: no upward move liquidates


def test_rounded_models_are_never_cleared() -> None:
    legs = [("DYDX", Side.LONG, 10.0, 1.0)]
    marks = {sym: m[2] for sym, m in MODELS.items()}
    store = _store(legs, marks, 1e6, 0.0, False)
    key = (V, "a")
    i = store.index_of(key)
    assert i is not None
    assert not clear_of_threshold(store.state(key), store.collateral(i), {}, 0.01)

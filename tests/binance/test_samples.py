"""Every Binance USDⓈ-M sample decodes to exactly the values it holds (field by field)."""

from __future__ import annotations

import orjson
import pytest

from connectors.binance.parse import parse_market, parse_user
from connectors.binance.snapshots import (
    account_snapshot,
    decode_leverage_brackets,
    parse_account_v3,
    parse_leverage_brackets,
    parse_position_risk_v3,
    parse_premium_index,
)
from connectors.errors import VenueDataError
from connectors.events import (
    BalanceUpdate,
    MarginCall,
    MarginCallPosition,
    MarkPrice,
    PositionFill,
    PositionSnapshot,
    StreamExpired,
)
from rules.types import MarginMode, Side

from .samples import SAMPLES, SHARED_SAMPLES, sample

V = "binance-usdm"


def test_every_sample_is_covered_by_a_test() -> None:
    names = {p.name for p in SAMPLES.glob("*.json")}
    assert names == COVERED


@pytest.mark.skipif(not SHARED_SAMPLES.is_dir(), reason="no shared/ beside this clone")
def test_the_copy_is_the_shared_samples() -> None:
    shared = {p.name: p.read_bytes() for p in SHARED_SAMPLES.iterdir() if p.is_file()}
    assert {p.name: p.read_bytes() for p in SAMPLES.iterdir() if p.is_file()} == shared


COVERED = {
    "rest_account_v2.json",
    "rest_account_v3.json",
    "rest_leverage_bracket.json",
    "rest_listen_key_start.json",
    "rest_position_risk_v2.json",
    "rest_position_risk_v3.json",
    "rest_premium_index.json",
    "ws_account_update.json",
    "ws_combined_stream_envelope_captured.json",
    "ws_listen_key_expired.json",
    "ws_margin_call.json",
    "ws_mark_price_all_market.json",
    "ws_mark_price_update.json",
    "ws_order_trade_update_fill.json",
    "ws_order_trade_update_new.json",
    "ws_subscribe_request.json",
    "ws_subscribe_response.json",
}


def test_mark_price_update() -> None:
    assert parse_market(sample("ws_mark_price_update.json")) == [
        MarkPrice(V, "BTCUSDT", 11794.15, 1562305380000, index=11784.62659091)
    ]


def test_mark_price_in_combined_envelope() -> None:
    data = orjson.loads(sample("ws_mark_price_update.json"))
    frame = orjson.dumps({"stream": "btcusdt@markPrice@1s", "data": data})
    assert parse_market(frame) == [MarkPrice(V, "BTCUSDT", 11794.15, 1562305380000, 11784.62659091)]


def test_mark_price_all_market_array() -> None:
    expected = [MarkPrice(V, "BTCUSDT", 11185.87786614, 1562305380000, 11784.62659091)]
    raw = sample("ws_mark_price_all_market.json")
    assert parse_market(raw) == expected
    envelope = orjson.dumps({"stream": "!markPrice@arr@1s", "data": orjson.loads(raw)})
    assert parse_market(envelope) == expected


def test_older_mark_price_without_ap_st_and_index() -> None:
    frame = b'{"e":"markPriceUpdate","E":"1562305380000","s":"ETHUSDT","p":"1.5","r":"0","T":1}'
    assert parse_market(frame) == [MarkPrice(V, "ETHUSDT", 1.5, 1562305380000, None)]


def test_captured_envelope_of_an_unused_stream_decodes_to_nothing() -> None:
    assert parse_market(sample("ws_combined_stream_envelope_captured.json")) == []


def test_subscribe_response_is_an_ack() -> None:
    assert parse_market(sample("ws_subscribe_response.json")) == []


def test_subscribe_request_shape_matches_what_the_feed_sends() -> None:
    from connectors.binance.feeds import subscribe_frames

    doc = orjson.loads(sample("ws_subscribe_request.json"))
    ours = orjson.loads(subscribe_frames(["btcusdt@aggTrade", "btcusdt@depth"], first_id=1)[0])
    assert ours == doc


def test_account_update() -> None:
    events = parse_user(sample("ws_account_update.json"), V, "alice")
    E = 1564745798939
    assert events == [
        BalanceUpdate(V, "alice", "USDT", 100.12345678, E),
        BalanceUpdate(V, "alice", "BUSD", 0.0, E),
        PositionSnapshot(
            V, "alice", "BTCUSDT", Side.BOTH, 0.0, 0.0, E, MarginMode.ISOLATED, None, 0.0
        ),
        PositionSnapshot(
            V,
            "alice",
            "BTCUSDT",
            Side.LONG,
            20.0,
            6563.665,
            E,
            MarginMode.ISOLATED,
            None,
            13200.70726908,
        ),
        PositionSnapshot(
            V,
            "alice",
            "BTCUSDT",
            Side.SHORT,
            -10.0,
            6563.86,
            E,
            MarginMode.ISOLATED,
            None,
            6570.42511771,
        ),
    ]


def test_account_update_funding_fee_cross_pushes_balance_only() -> None:
    frame = (
        b'{"e":"ACCOUNT_UPDATE","E":1700000000007,"T":6,"a":{"m":"FUNDING_FEE","S":"BTCUSDT",'
        b'"B":[{"a":"USDT","wb":"10.5","cw":"10.5","bc":"0"}],"P":[]}}'
    )
    assert parse_user(frame, V, "a") == [BalanceUpdate(V, "a", "USDT", 10.5, 1_700_000_000_007)]


def test_order_trade_update_fill() -> None:
    assert parse_user(sample("ws_order_trade_update_fill.json"), V, "alice") == [
        PositionFill(
            V,
            "alice",
            "BTCUSDT",
            Side.LONG,
            0.001,
            7100.5,
            1568879465651,
            liquidation=False,
            adl=False,
            realized_pnl=12.34,
            position_pushed=True,
            order_id="8886774",
            trade_id="12345678",
        )
    ]


def test_fills_of_one_order_carry_distinct_trade_ids() -> None:
    doc = orjson.loads(sample("ws_order_trade_update_fill.json"))
    ids = []
    for trade in (7, 8):
        doc["o"].update(t=trade)
        (fill,) = parse_user(orjson.dumps(doc), V, "alice")
        assert isinstance(fill, PositionFill)
        ids.append((fill.order_id, fill.trade_id))
    assert ids == [("8886774", "7"), ("8886774", "8")]


def test_order_trade_update_new_order_moves_nothing() -> None:
    assert parse_user(sample("ws_order_trade_update_new.json"), V, "alice") == []


@pytest.mark.parametrize(
    ("client_id", "execution", "liq", "adl"),
    [
        ("autoclose-1600000000000", "CALCULATED", True, False),
        ("adl_autoclose", "TRADE", False, True),
        ("mybot-42", "TRADE", False, False),
    ],
)
def test_liquidation_and_adl_orders_are_recognised(
    client_id: str, execution: str, liq: bool, adl: bool
) -> None:
    doc = orjson.loads(sample("ws_order_trade_update_fill.json"))
    doc["o"].update(c=client_id, x=execution, S="SELL", X="FILLED")
    (fill,) = parse_user(orjson.dumps(doc), V, "alice")
    assert isinstance(fill, PositionFill)
    assert (fill.liquidation, fill.adl, fill.qty_delta) == (liq, adl, -0.001)


def test_margin_call() -> None:
    assert parse_user(sample("ws_margin_call.json"), V, "alice") == [
        MarginCall(
            V,
            "alice",
            1587727187525,
            (MarginCallPosition("ETHUSDT", Side.LONG, 1.327, 187.17127, 1.614445, -1.166074),),
            cross_wallet_balance=3.16812045,
        )
    ]


def test_listen_key_expired_string_and_int_time() -> None:
    expected = [StreamExpired(V, "alice", 1736996475556)]
    assert parse_user(sample("ws_listen_key_expired.json"), V, "alice") == expected
    doc = orjson.loads(sample("ws_listen_key_expired.json"))
    doc["E"] = 1736996475556
    assert parse_user(orjson.dumps(doc), V, "alice") == expected


def test_user_events_need_an_account() -> None:
    with pytest.raises(VenueDataError) as info:
        parse_market(sample("ws_margin_call.json"))
    assert info.value.reason == "user_event_without_account"


def test_listen_key_start_body() -> None:
    from connectors.binance.rest import parse_listen_key

    assert parse_listen_key(sample("rest_listen_key_start.json"), V) == (
        "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
    )


def test_premium_index() -> None:
    assert parse_premium_index(sample("rest_premium_index.json"), V) == [
        MarkPrice(V, "BTCUSDT", 11793.63104562, 1597370495002, 11781.80495970)
    ]


def test_leverage_bracket_single_tier() -> None:
    (bracket_set,) = decode_leverage_brackets(sample("rest_leverage_bracket.json"), V)
    assert bracket_set.symbol == "SUSHIUSDT"
    assert bracket_set.notional_coef is None
    (tier,) = bracket_set.tiers
    assert (tier.floor, tier.cap, tier.mmr, tier.deduction, tier.max_leverage) == (
        0.0,
        50000.0,
        0.01,
        0.0,
        50.0,
    )
    (update,) = parse_leverage_brackets(sample("rest_leverage_bracket.json"), V, "alice")
    assert (update.symbol, update.account) == ("SUSHIUSDT", "alice")
    assert update.model.maintenance(10_000.0, 0.0) == pytest.approx(100.0, rel=1e-12)


@pytest.mark.parametrize("name", ["rest_account_v3.json", "rest_account_v2.json"])
def test_account_v3_and_v2(name: str) -> None:
    facts = parse_account_v3(sample(name), V)
    assert facts.balances == {"USDT": 23.72469206}
    assert facts.total_maintenance_margin == 0.0
    assert facts.total_margin_balance == 126.72469206
    if name == "rest_account_v3.json":
        # positionAmt "1.000" with maintMargin "0" as the docs example has it
        assert facts.position_maintenance_margin == {("BTCUSDT", Side.BOTH): 0.0}
        assert facts.multi_asset is None
    else:
        assert facts.position_maintenance_margin == {}
        assert facts.multi_asset is True


def test_position_risk_v3() -> None:
    facts = parse_position_risk_v3(sample("rest_position_risk_v3.json"), V, "alice", event_ms=5)
    assert facts.positions == (
        PositionSnapshot(V, "alice", "ADAUSDT", Side.BOTH, 30.0, 0.385, 5, MarginMode.CROSS),
    )
    assert facts.marks == {"ADAUSDT": 0.41047590}


def test_position_risk_v2_zero_rows_dropped_and_mark_kept() -> None:
    facts = parse_position_risk_v3(sample("rest_position_risk_v2.json"), V, "alice", event_ms=5)
    assert facts.positions == ()
    assert facts.marks == {"BTCUSDT": 6679.50671178}


def test_account_snapshot_carries_reported_figures() -> None:
    acct = parse_account_v3(sample("rest_account_v3.json"), V)
    pos = parse_position_risk_v3(sample("rest_position_risk_v3.json"), V, "alice", event_ms=9)
    snap = account_snapshot(V, "alice", acct, pos, multi_asset=False, event_ms=9)
    assert snap.balances == {"USDT": 23.72469206}
    assert snap.positions == pos.positions
    assert snap.reported is not None
    # The two doc samples describe different positions (BTCUSDT vs ADAUSDT): not one instant, so
    # the figures are positionRisk's own — its maintMargin, at its markPrice.
    assert snap.reported.position_maintenance_margin == {("ADAUSDT", Side.BOTH): 0.0800428}
    assert snap.reported.total_maintenance_margin == 0.0800428
    assert snap.reported.mark_prices == {"ADAUSDT": 0.4104759}


def test_position_risk_v3_maint_margin_matches_the_bracket_formula() -> None:
    # The v3 sample's own numbers: notional 12.314277 at tier-1 MMR 0.0065 → 0.08004280.
    row = orjson.loads(sample("rest_position_risk_v3.json"))[0]
    notional = abs(float(row["positionAmt"])) * float(row["markPrice"])
    assert notional == pytest.approx(float(row["notional"]), rel=1e-12)
    assert notional * 0.0065 == pytest.approx(float(row["maintMargin"]), abs=5e-9)

"""The frames of issue #11 that reached the engine are refused at the edge, per item, with a
reason: the bounds of connectors.bounds, applied by the wire types."""

from __future__ import annotations

import orjson
import pytest

from connectors.binance.parse import parse_frame_into, parse_market, parse_user
from connectors.binance.snapshots import parse_position_risk_v3
from connectors.errors import VenueDataError
from connectors.events import Event, MarkPrice

V = "binance-usdm"
T0 = 1_700_000_000_000


def _reason(frame: bytes, account: str | None = "a") -> str:
    with pytest.raises(VenueDataError) as info:
        if account is None:
            parse_market(frame, V)
        else:
            parse_user(frame, V, account)
    return info.value.reason


def _config(ac: object) -> bytes:
    return orjson.dumps({"e": "ACCOUNT_CONFIG_UPDATE", "E": T0, "T": T0, "ac": ac})


def _balance(asset: object, cw: object = "1.5", e: object = T0) -> bytes:
    body = {"m": "ORDER", "B": [{"a": asset, "wb": "1", "cw": cw, "bc": "0"}], "P": []}
    return orjson.dumps({"e": "ACCOUNT_UPDATE", "E": e, "T": T0, "a": body})


def _margin_call(symbol: object, mp: object = "187.17") -> bytes:
    p = {"s": symbol, "ps": "LONG", "pa": "1.3", "mt": "CROSSED", "mp": mp, "up": "-1", "mm": "1.6"}
    return orjson.dumps({"e": "MARGIN_CALL", "E": T0, "cw": "3.1", "p": [p]})


def _mark(e: object = T0, p: object = "60000.5", s: object = "BTCUSDT") -> dict[str, object]:
    return {"e": "markPriceUpdate", "E": e, "s": s, "p": p, "i": "1", "P": "1", "r": "0", "T": T0}


@pytest.mark.parametrize("leverage", [0, "0", -3, "0.5", "nan", 1e9, [20]])
def test_a_leverage_below_one_or_absurd_is_refused(leverage: object) -> None:
    assert _reason(_config({"s": "BTCUSDT", "l": leverage})) == "bad_value"


def test_a_sane_leverage_is_read() -> None:
    (ev,) = parse_user(_config({"s": "BTCUSDT", "l": 20}), V, "a")
    assert ev.leverage == 20.0  # type: ignore[union-attr]


@pytest.mark.parametrize("asset", [["USDT"], 7, "", None, "X" * 65])
def test_a_balance_asset_must_be_a_name(asset: object) -> None:
    assert _reason(_balance(asset)) == "bad_value"


@pytest.mark.parametrize("symbol", [["ETHUSDT"], 3.5, ""])
def test_a_margin_call_symbol_must_be_a_name(symbol: object) -> None:
    assert _reason(_margin_call(symbol)) == "bad_value"


@pytest.mark.parametrize("mp", ["0", "-1", "1.7e308", "nan"])
def test_a_margin_call_mark_must_be_a_sane_price(mp: object) -> None:
    assert _reason(_margin_call("ETHUSDT", mp)) == "bad_value"


@pytest.mark.parametrize(
    "e",
    [
        b"1" + b"0" * 30,  # 1e30 as a JSON integer
        str(2**64 + 7).encode(),
        b'"12345678901234567890123"',  # a 23-digit string
        b"-1",
        b"0",
        b"1",
        b"4102444800000",  # 2100-01-01: the window's end, excluded
        b"1e30",
    ],
)
def test_an_event_time_outside_the_window_is_refused(e: bytes) -> None:
    raw = b'{"e":"markPriceUpdate","E":%s,"s":"BTCUSDT","p":"3"}' % e
    assert _reason(raw, None) == "bad_value"
    assert _reason(_balance("USDT", e=orjson.Fragment(e)), "a") == "bad_value"


def test_the_window_s_edges() -> None:
    first = _mark(e=1_483_228_800_000)  # 2017-01-01
    last = _mark(e="4102444799999")  # a string, as in the docs' examples
    assert [ev.event_ms for ev in parse_market(orjson.dumps([first, last]), V)] == [  # type: ignore[union-attr]
        1_483_228_800_000,
        4_102_444_799_999,
    ]


@pytest.mark.parametrize("p", ["1.7e308", 1.7e308, "1e13", "5e-324", 5e-324, "0", "-0.0"])
def test_an_absurd_mark_is_refused_per_item(p: object) -> None:
    """One bad mark in an array is dropped with its reason; the good ones go through."""
    frame = orjson.dumps([_mark(p=p, s="BADUSDT"), _mark()])
    out: list[Event] = []
    errors: list[VenueDataError] = []
    parse_frame_into(frame, V, None, out, errors)
    assert out == [MarkPrice(V, "BTCUSDT", 60000.5, T0, 1.0)]
    assert [e.reason for e in errors] == ["bad_value"]


@pytest.mark.parametrize("symbol", [["BTCUSDT"], 7, "", None])
def test_a_mark_symbol_must_be_a_name(symbol: object) -> None:
    assert _reason(orjson.dumps(_mark(s=symbol)), None) == "bad_value"


def test_an_open_leg_needs_an_entry_price_and_a_closed_one_may_say_zero() -> None:
    def update(pa: str, ep: str) -> bytes:
        leg = {"s": "BTCUSDT", "pa": pa, "ep": ep, "bep": "0", "cr": "0", "up": "0",
               "mt": "cross", "iw": "0", "ps": "BOTH"}  # fmt: skip
        return orjson.dumps({"e": "ACCOUNT_UPDATE", "E": T0, "T": T0, "a": {"P": [leg]}})

    assert _reason(update("1", "0")) == "bad_value"
    assert _reason(update("1", "-5")) == "bad_value"
    assert _reason(update("5e-324", "100")) == "bad_value"
    (closed,) = parse_user(update("0", "0.00000"), V, "a")
    assert closed.qty == 0.0  # type: ignore[union-attr]


def test_a_fill_needs_a_price() -> None:
    o = {"s": "BTCUSDT", "c": "x", "S": "BUY", "x": "TRADE", "l": "1", "L": "0", "ps": "BOTH"}
    assert _reason(orjson.dumps({"e": "ORDER_TRADE_UPDATE", "E": T0, "T": T0, "o": o})) == (
        "bad_value"
    )


def test_a_deep_error_code_is_one_refusal_not_a_crash() -> None:
    deep = b'{"code":' + b"[" * 1000 + b"]" * 1000 + b',"msg":"x"}'
    assert _reason(deep, None) in {"bad_value", "bad_json"}
    assert _reason(b'{"code":-1121,"msg":"Invalid symbol."}', None) == "venue_error"


def _risk_row(**fields: object) -> bytes:
    row = {"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "1.5", "entryPrice": "60000",
           "markPrice": "60100", "unRealizedProfit": "150", "leverage": "20", "marginType": "cross",
           "isolatedWallet": "0"} | fields  # fmt: skip
    return orjson.dumps([row])


@pytest.mark.parametrize(
    "fields",
    [
        {"leverage": "0"},
        {"entryPrice": "0"},
        {"entryPrice": "-1"},
        {"positionAmt": "1e300"},
        {"positionAmt": "5e-324"},
        {"symbol": ""},
        {"symbol": ["BTCUSDT"]},
    ],
)
def test_a_snapshot_position_is_held_to_the_same_bounds(fields: dict[str, object]) -> None:
    with pytest.raises(VenueDataError) as info:
        parse_position_risk_v3(_risk_row(**fields), V, "a", event_ms=T0)
    assert info.value.reason == "bad_value"


def test_a_sane_snapshot_position_is_read() -> None:
    facts = parse_position_risk_v3(_risk_row(), V, "a", event_ms=T0)
    assert [(p.qty, p.entry_price, p.leverage) for p in facts.positions] == [(1.5, 60000.0, 20.0)]

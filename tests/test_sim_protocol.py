"""The sim wire format: recorded frames decode to exact values; junk is rejected by reason."""

from __future__ import annotations

import contextlib
import math

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connectors.bounds import EVENT_MS_END, EVENT_MS_MIN
from connectors.errors import VenueDataError
from connectors.events import (
    AccountSnapshot,
    BalanceUpdate,
    Instrument,
    MarkPrice,
    PositionSnapshot,
    StreamExpired,
    TierTableUpdate,
)
from connectors.sim import protocol
from connectors.sim.protocol import parse, parse_general
from rules.types import ContractKind, MarginMode, Side

# Frames as SimVenue sends them (recorded from a run of connectors.fakes.sim.server).
T0 = 1_700_000_000_000  # inside the plausible event-time window (connectors.bounds)
MARK = b'{"e":"mark","s":"BTC-PERP","p":"60000.5","E":1717171717171}'
MARK_WITH_INDEX = b'{"e":"mark","s":"ETH-PERP","p":"3001.25","i":"3000.9","E":1717171717172}'
MARK_BATCH = (
    b'[{"e":"mark","s":"BTC-PERP","p":"59999.9","E":1717171717180},'
    b'{"e":"mark","s":"SOL-PERP","p":"149.875","E":1717171717180}]'
)
POSITION_HEDGE_SHORT = (
    b'{"e":"position","a":"carol","s":"BTC-PERP","ps":"SHORT","q":"-2.0","ep":"61000.0",'
    b'"mt":"cross","E":1717171717200}'
)
POSITION_ISOLATED = (
    b'{"e":"position","a":"dave","s":"SOL-PERP","ps":"BOTH","q":"10.0","ep":"150.0",'
    b'"mt":"isolated","lev":"5","im":"300.5","E":1717171717201}'
)
POSITION_CLOSED = (
    b'{"e":"position","a":"bob","s":"SOL-PERP","ps":"BOTH","q":"0.0","ep":"0.0",'
    b'"mt":"cross","E":1717171717202}'
)
BALANCE = b'{"e":"balance","a":"dave","c":"USDT","wb":"32000.0","E":1717171717300}'
EXPIRED = b'{"e":"streamExpired","a":"carol","E":1717171717400}'


def test_mark_frame_values() -> None:
    assert parse(MARK) == [MarkPrice("sim", "BTC-PERP", 60000.5, 1717171717171)]
    assert parse(MARK.decode()) == parse(MARK)  # str frames decode the same


def test_mark_with_index() -> None:
    assert parse(MARK_WITH_INDEX) == [
        MarkPrice("sim", "ETH-PERP", 3001.25, 1717171717172, index=3000.9)
    ]


def test_fast_mark_constructor_builds_an_equal_frozen_event() -> None:
    ev = parse(MARK)[0]
    assert type(ev) is MarkPrice
    assert ev == MarkPrice("sim", "BTC-PERP", 60000.5, 1717171717171, None)
    assert hash(ev) == hash(MarkPrice("sim", "BTC-PERP", 60000.5, 1717171717171, None))
    with pytest.raises(AttributeError):
        ev.mark = 1.0  # type: ignore[misc]


def test_mark_batch() -> None:
    assert parse(MARK_BATCH) == [
        MarkPrice("sim", "BTC-PERP", 59999.9, 1717171717180),
        MarkPrice("sim", "SOL-PERP", 149.875, 1717171717180),
    ]


def test_hedge_mode_short_leg() -> None:
    assert parse(POSITION_HEDGE_SHORT) == [
        PositionSnapshot(
            venue="sim",
            account="carol",
            symbol="BTC-PERP",
            side=Side.SHORT,
            qty=-2.0,
            entry_price=61000.0,
            event_ms=1717171717200,
        )
    ]


def test_isolated_position_with_leverage_and_margin() -> None:
    (ev,) = parse(POSITION_ISOLATED)
    assert isinstance(ev, PositionSnapshot)
    assert (ev.margin_mode, ev.leverage, ev.isolated_margin) == (MarginMode.ISOLATED, 5.0, 300.5)


def test_closed_position_may_report_zero_entry() -> None:
    (ev,) = parse(POSITION_CLOSED)
    assert isinstance(ev, PositionSnapshot)
    assert (ev.qty, ev.entry_price) == (0.0, 0.0)


def test_balance_and_stream_expired() -> None:
    assert parse(BALANCE) == [BalanceUpdate("sim", "dave", "USDT", 32000.0, 1717171717300)]
    assert parse(EXPIRED) == [StreamExpired("sim", "carol", 1717171717400)]


def test_control_frames_decode_to_nothing() -> None:
    assert parse(b'{"e":"subscribed"}') == []
    assert parse(b'{"e":"pong","E":5}') == []


def test_encoders_round_trip() -> None:
    assert parse(protocol.encode_mark("SOL-PERP", 149.875, T0 + 7)) == [
        MarkPrice("sim", "SOL-PERP", 149.875, T0 + 7)
    ]
    wire = protocol.position_wire("BTC-PERP", Side.LONG, 3.0, 60000.0)
    assert parse(protocol.encode_position("carol", wire, T0 + 9)) == [
        PositionSnapshot("sim", "carol", "BTC-PERP", Side.LONG, 3.0, 60000.0, T0 + 9)
    ]


MARKS_SNAPSHOT = orjson.dumps(
    {
        "E": 1717171700000,
        "instruments": [
            {
                "s": "BTC-PERP",
                "kind": "linear",
                "cs": "1.0",
                "settle": "USDT",
                "p": "60000.0",
                "tiers": [
                    ["0.0", "50000.0", "0.004", "125.0"],
                    ["50000.0", "600000.0", "0.005", "100.0"],
                ],
            }
        ],
    }
)


def test_marks_snapshot_values() -> None:
    events, ms = protocol.parse_marks_snapshot(MARKS_SNAPSHOT)
    assert ms == 1717171700000
    inst, tiers, mark = events
    assert inst == Instrument("sim", "BTC-PERP", ContractKind.LINEAR, 1.0, "USDT")
    assert isinstance(tiers, TierTableUpdate)
    assert tiers.event_ms == ms
    # Binance-like brackets: 120k notional at 0.5 % less the 50 deduction of tier 2.
    assert tiers.model.maintenance(120_000.0, 2.0) == pytest.approx(550.0, rel=1e-12)
    assert tiers.model.maintenance(40_000.0, 1.0) == pytest.approx(160.0, rel=1e-12)
    assert mark == MarkPrice("sim", "BTC-PERP", 60000.0, ms)


def test_inconsistent_tiers_are_bad_tiers() -> None:
    doc = orjson.loads(MARKS_SNAPSHOT)
    doc["instruments"][0]["tiers"][1][0] = "40000.0"  # gap/overlap with tier 1
    with pytest.raises(VenueDataError) as info:
        protocol.parse_marks_snapshot(orjson.dumps(doc))
    assert info.value.reason == "bad_tiers"


def test_account_snapshot_values() -> None:
    body = orjson.dumps(
        {
            "a": "carol",
            "E": 1717171700001,
            "balances": {"USDT": "60000.0"},
            "positions": [
                {"s": "BTC-PERP", "ps": "LONG", "q": "3.0", "ep": "60000.0", "mt": "cross"},
                {"s": "BTC-PERP", "ps": "SHORT", "q": "-2.0", "ep": "61000.0", "mt": "cross"},
            ],
        }
    )
    (snap,), ms = protocol.parse_account_snapshot(body)
    assert ms == 1717171700001
    assert snap == AccountSnapshot(
        venue="sim",
        account="carol",
        balances={"USDT": 60000.0},
        positions=(
            PositionSnapshot("sim", "carol", "BTC-PERP", Side.LONG, 3.0, 60000.0, ms),
            PositionSnapshot("sim", "carol", "BTC-PERP", Side.SHORT, -2.0, 61000.0, ms),
        ),
        event_ms=ms,
    )


# --- rejections -------------------------------------------------------------------------------


def _reason(frame: bytes) -> str:
    with pytest.raises(VenueDataError) as info:
        parse(frame)
    assert info.value.venue == "sim"
    return info.value.reason


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b'{"e":"mark","s":"BTC-PERP","p":', "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"", "bad_json"),
        (b'{"e":"trade","s":"BTC-PERP","p":"1","E":1700000000001}', "unknown_event"),
        (b'{"s":"BTC-PERP","p":"1","E":1700000000001}', "missing_field"),
        (b'{"e":"mark","s":"BTC-PERP","E":1700000000001}', "missing_field"),
        (b'{"e":"mark","s":"BTC-PERP","p":"NaN","E":1700000000001}', "bad_price"),
        (b'{"e":"mark","s":"BTC-PERP","p":"-5","E":1700000000001}', "bad_price"),
        (b'{"e":"mark","s":"BTC-PERP","p":"0","E":1700000000001}', "bad_price"),
        (b'{"e":"mark","s":"BTC-PERP","p":"inf","E":1700000000001}', "bad_price"),
        (b'{"e":"mark","s":"BTC-PERP","p":"1e999","E":1700000000001}', "bad_price"),
        (b'{"e":"mark","s":"BTC-PERP","p":"abc","E":1700000000001}', "bad_price"),
        (b'{"e":"mark","s":"BTC-PERP","p":60000.5,"E":1700000000001}', "bad_type"),
        (b'{"e":"mark","s":"BTC-PERP","p":"1","E":"1"}', "bad_type"),
        (b'{"e":"mark","s":"BTC-PERP","p":"1","E":true}', "bad_type"),
        (b'{"e":"mark","s":7,"p":"1","E":1700000000001}', "bad_type"),
        (b'{"e":["mark"],"s":"BTC-PERP","p":"1","E":1700000000001}', "bad_type"),
        (b"42", "bad_type"),
        (b"[1,2]", "bad_type"),
        (b'[{"e":"balance"}]', "unknown_event"),
        (
            b'{"e":"position","a":"x","s":"B","ps":"UP","q":"1","ep":"1","mt":"cross","E":1700000000001}',
            "bad_type",
        ),
        (
            b'{"e":"position","a":"x","s":"B","ps":[],"q":"1","ep":"1","mt":"cross","E":1700000000001}',
            "bad_type",
        ),
        (
            b'{"e":"position","a":"x","s":"B","ps":"BOTH","q":"1","ep":"0","mt":"cross","E":1700000000001}',
            "bad_price",
        ),
        (
            b'{"e":"position","a":"x","s":"B","ps":"BOTH","q":"nan","ep":"1","mt":"cross","E":1700000000001}',
            "bad_value",
        ),
        (b'{"e":"balance","a":"x","c":"USDT","E":1700000000001}', "missing_field"),
        (b'{"e":"balance","a":"x","c":"USDT","wb":"-inf","E":1700000000001}', "bad_value"),
    ],
)
def test_rejection_reasons(frame: bytes, reason: str) -> None:
    assert _reason(frame) == reason


@given(st.binary(max_size=300))
def test_any_bytes_either_parse_or_raise_venue_data_error(frame: bytes) -> None:
    try:
        events = parse(frame)
    except VenueDataError as exc:
        assert exc.reason in {
            "bad_json",
            "unknown_event",
            "bad_price",
            "bad_value",
            "bad_type",
            "missing_field",
        }
    else:
        assert isinstance(events, list)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)
_fields = st.sampled_from(["e", "s", "p", "E", "i", "a", "ps", "q", "ep", "mt", "c", "wb"])
_events = st.sampled_from(["mark", "position", "balance", "streamExpired", "pong", "x"])


@given(
    st.dictionaries(_fields, _json_values, max_size=12),
    _events,
)
def test_any_json_shaped_frame_either_parses_or_is_rejected(
    fields: dict[str, object], event: str
) -> None:
    doc = {"e": event, **fields} if "e" not in fields else fields
    # Anything but VenueDataError escapes suppress() and fails the test.
    with contextlib.suppress(VenueDataError):
        parse(orjson.dumps(doc))


def _mark_doc(p: object, **extra: object) -> bytes:
    return orjson.dumps({"e": "mark", "s": "BTC-PERP", "p": p, "E": T0, **extra})


@given(
    st.one_of(
        st.just("NaN"),
        st.just("nan"),
        st.just("-inf"),
        st.just("Infinity"),
        st.floats(max_value=0.0, allow_nan=False, allow_infinity=False).map(repr),
        st.floats(allow_nan=True, allow_infinity=True)
        .filter(lambda x: not (math.isfinite(x) and x > 0))
        .map(repr),
    )
)
def test_non_finite_or_non_positive_prices_are_bad_price(p: str) -> None:
    assert _reason(_mark_doc(p)) == "bad_price"


@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.booleans(),
        st.none(),
        st.lists(st.text(max_size=3), max_size=2),
        st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=2),
    )
)
def test_prices_of_the_wrong_type_are_bad_type(p: object) -> None:
    assert _reason(_mark_doc(p)) == "bad_type"


@given(st.text(min_size=1, max_size=20).filter(lambda e: e not in protocol.EVENT_NAMES))
def test_unknown_events_are_unknown_event(event: str) -> None:
    assert _reason(orjson.dumps({"e": event, "s": "BTC-PERP", "p": "1", "E": 1})) == (
        "unknown_event"
    )


@given(
    st.sets(st.sampled_from(["s", "p", "E"]), min_size=1),
)
def test_missing_mark_fields_are_missing_field(missing: set[str]) -> None:
    doc = {"e": "mark", "s": "BTC-PERP", "p": "1.5", "E": T0}
    for key in missing:
        del doc[key]
    assert _reason(orjson.dumps(doc)) == "missing_field"


@given(st.floats(min_value=1e-6, max_value=1e9, allow_nan=False))
def test_valid_prices_round_trip_exactly(price: float) -> None:
    (ev,) = parse(protocol.encode_mark("SOL-PERP", price, T0 + 3))
    assert isinstance(ev, MarkPrice)
    assert ev.mark == price


# --- the single-mark fast path agrees with the general decoder ---------------------------------


def _outcome(decode: object, frame: bytes) -> tuple[str, object]:
    assert callable(decode)
    try:
        events = decode(frame)
    except VenueDataError as exc:
        return "rejected", exc.reason
    return "events", [(type(e), e) for e in events]


_mark_values = st.one_of(
    _json_values,
    st.sampled_from(["60000.5", "1e-3", "0", "-1", "nan", "inf", "1_0", " 7 ", "", "x"]),
    st.floats(allow_nan=True).map(repr),
)


@given(
    e=st.one_of(st.just("mark"), _json_values),
    s=st.one_of(st.sampled_from(["BTC-PERP", ""]), _json_values),
    p=_mark_values,
    ms=st.one_of(
        st.integers(min_value=-5, max_value=2**63 - 1),
        st.integers(min_value=EVENT_MS_MIN - 2, max_value=EVENT_MS_END + 1),
        _json_values,
    ),
    extra=st.dictionaries(st.sampled_from(["i", "x"]), _mark_values, max_size=1),
    drop=st.sets(st.sampled_from(["e", "s", "p", "E"]), max_size=1),
)
def test_fast_path_decodes_exactly_what_the_general_path_does(
    *, e: object, s: object, p: object, ms: object, extra: dict[str, object], drop: set[str]
) -> None:
    doc = {k: v for k, v in {"e": e, "s": s, "p": p, "E": ms}.items() if k not in drop}
    frame = orjson.dumps({**doc, **extra})
    assert _outcome(parse, frame) == _outcome(protocol.parse_general, frame)


@given(
    st.text(min_size=1, max_size=12),
    st.floats(min_value=1e-9, max_value=1e12, allow_nan=False),
    st.integers(min_value=EVENT_MS_MIN, max_value=EVENT_MS_END - 1),
)
def test_valid_single_marks_take_the_fast_path_and_equal_the_constructor(
    symbol: str, price: float, event_ms: int
) -> None:
    frame = protocol.encode_mark(symbol, price, event_ms)
    (ev,) = parse(frame)
    expected = MarkPrice("sim", symbol, price, event_ms, None)
    assert type(ev) is MarkPrice and ev == expected and hash(ev) == hash(expected)
    assert parse_general(frame) == [expected]


@given(
    st.text(max_size=12),
    st.floats(allow_nan=False),
    st.integers(min_value=0, max_value=2**63),
    st.one_of(st.none(), st.floats(allow_nan=False)),
)
@example("ETH-PERP", 3001.25, 7, 3000.5)
def test_the_kernel_s_mark_constructor_builds_the_normal_event(
    symbol: str, mark: float, event_ms: int, index: float | None
) -> None:
    ev = protocol.mark_price(symbol, mark, event_ms, index)
    expected = MarkPrice("sim", symbol, mark, event_ms, index)
    assert type(ev) is MarkPrice
    assert ev == expected and hash(ev) == hash(expected) and repr(ev) == repr(expected)
    with pytest.raises(AttributeError):
        ev.mark = 1.0  # type: ignore[misc]


_any_frame = st.one_of(
    st.sampled_from([MARK, MARK_WITH_INDEX, MARK_BATCH, BALANCE, EXPIRED, POSITION_CLOSED]),
    st.binary(max_size=40),
    st.builds(
        lambda p, ms: orjson.dumps({"e": "mark", "s": "X", "p": p, "E": ms}),
        _mark_values,
        st.sampled_from([-3, 0, 3, EVENT_MS_MIN - 1, EVENT_MS_MIN, T0, EVENT_MS_END]),
    ),
)


@given(st.lists(_any_frame, max_size=8))
def test_parse_many_is_parse_frame_by_frame(frames: list[bytes]) -> None:
    out: list[object] = [object()]  # appended to, never replaced
    head = out[0]
    rejected = protocol.parse_many(frames, out)  # type: ignore[arg-type]
    expected: list[object] = [head]
    reasons = []
    for frame in frames:
        try:
            expected += parse_general(frame)
        except VenueDataError as exc:
            reasons.append(exc.reason)
    assert out == expected
    assert [exc.reason for exc in rejected] == reasons

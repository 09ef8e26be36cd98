"""Any byte string fed to the Binance parsers either decodes or raises VenueDataError."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.binance.parse import (
    _RETAG,
    make_mark,
    parse_frame,
    parse_frame_general,
    parse_market,
    parse_user,
)
from connectors.binance.snapshots import (
    decode_leverage_brackets,
    parse_account_v3,
    parse_position_risk_v3,
    parse_premium_index,
)
from connectors.errors import VenueDataError
from connectors.events import MarkPrice

from .samples import SAMPLES

V = "binance-usdm"
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


def _decodes_or_venue_error(frame: bytes) -> None:
    for account in (None, "a"):
        try:
            if account is None:
                parse_market(frame)
            else:
                parse_user(frame, V, account)
        except VenueDataError as exc:
            assert exc.reason
            assert len(exc.reason) < 40


@given(st.binary(max_size=300))
def test_any_bytes(frame: bytes) -> None:
    _decodes_or_venue_error(frame)


@given(json_values)
def test_any_json(doc: Any) -> None:
    _decodes_or_venue_error(json.dumps(doc).encode())


SAMPLE_DOCS = [orjson.loads(p.read_bytes()) for p in sorted(SAMPLES.glob("ws_*.json"))]


def _mutations(doc: Any) -> st.SearchStrategy[Any]:
    """The sample with one field (at any depth) replaced by an arbitrary JSON value or dropped."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(doc, ())

    def mutate(path: tuple[Any, ...], value: Any, drop: bool) -> Any:
        copy = json.loads(json.dumps(doc))
        if not path:
            return value
        node = copy
        for key in path[:-1]:
            node = node[key]
        if drop and isinstance(node, dict):
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return copy

    return st.builds(mutate, st.sampled_from(paths), json_values, st.booleans())


@settings(max_examples=400)
@given(st.sampled_from(SAMPLE_DOCS).flatmap(_mutations))
def test_structured_fuzz_of_valid_frames(doc: Any) -> None:
    _decodes_or_venue_error(json.dumps(doc).encode())


@given(
    st.text(min_size=1, max_size=12),
    st.floats(min_value=1e-8, max_value=1e9, allow_nan=False),
    st.integers(min_value=0, max_value=2**53),
)
def test_mark_price_roundtrip(symbol: str, mark: float, event_ms: int) -> None:
    frame = orjson.dumps(
        {
            "stream": "x@markPrice",
            "data": {"e": "markPriceUpdate", "E": event_ms, "s": symbol, "p": repr(mark)},
        }
    )
    assert parse_market(frame) == [MarkPrice(V, symbol, mark, event_ms)]


@given(json_values)
def test_rest_parsers_never_crash(doc: Any) -> None:
    body = json.dumps(doc).encode()
    for parse in (
        lambda b: parse_account_v3(b, V),
        lambda b: parse_position_risk_v3(b, V, "a", event_ms=0),
        lambda b: decode_leverage_brackets(b, V),
        lambda b: parse_premium_index(b, V),
    ):
        with contextlib.suppress(VenueDataError):
            parse(body)


# --- the markPriceUpdate fast path decodes exactly what the general path does -------------------


def _outcome(decode: Any, frame: bytes, account: str | None) -> tuple[str, object]:
    try:
        events = decode(frame, V, account)
    except VenueDataError as exc:
        return "rejected", exc.reason
    return "events", [(type(e), e) for e in events]


def _agree(frame: bytes) -> None:
    for account in (None, "a"):
        fast = _outcome(parse_frame, frame, account)
        assert fast == _outcome(parse_frame_general, frame, account)


_odd = st.sampled_from(["60000.5", "1e-3", "0", "-1", "nan", "inf", "1_0", " 7 ", "", "x", "12"])
_field_values = st.one_of(_odd, json_values, st.floats().map(repr), st.integers())
_mark_fields = st.fixed_dictionaries(
    {},
    optional={
        "e": st.one_of(st.just("markPriceUpdate"), json_values),
        "E": st.one_of(st.integers(min_value=-1, max_value=2**63 - 1), st.just("1562305380000"),
                       json_values),
        "s": st.one_of(st.sampled_from(["BTCUSDT", ""]), json_values),
        "p": _field_values,
        "i": _field_values,
        "P": _field_values,
    },
)  # fmt: skip


@settings(max_examples=400)
@given(_mark_fields, st.sampled_from(["raw", "envelope", "array", "array_envelope"]))
def test_fast_path_agrees_with_the_general_path(data: dict[str, Any], shape: str) -> None:
    payload: Any = data if not shape.startswith("array") else [data, data]
    if shape.endswith("envelope"):
        payload = {"stream": "btcusdt@markPrice@1s", "data": payload}
    _agree(json.dumps(payload).encode())


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12),
            st.floats(min_value=1e-8, max_value=1e12, allow_nan=False),
            st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
            st.integers(min_value=0, max_value=2**62),
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_valid_marks_decode_to_the_constructor_s_events(
    marks: list[tuple[str, float, float | None, int]], array: bool
) -> None:
    docs = [
        {"e": "markPriceUpdate", "E": ms, "s": s, "p": repr(p), "ap": repr(p), "st": 1}
        | ({} if i is None else {"i": repr(i)})
        for s, p, i, ms in marks
    ]
    expected = [MarkPrice(V, s, p, ms, i) for s, p, i, ms in marks]
    frame = orjson.dumps(docs if array else {"stream": "x@markPrice", "data": docs[0]})
    got = parse_market(frame)
    assert got == (expected if array else expected[:1])
    assert all(type(ev) is MarkPrice for ev in got)
    assert [hash(ev) for ev in got] == [hash(ev) for ev in expected[: len(got)]]
    _agree(frame)


@settings(max_examples=300)
@given(st.sampled_from(SAMPLE_DOCS).flatmap(_mutations))
def test_fast_path_agrees_on_mutated_samples(doc: Any) -> None:
    _agree(json.dumps(doc).encode())


def test_both_mark_constructors_build_the_normal_event() -> None:
    ev = make_mark(V, "ETHUSDT", 3001.25, 7, None)
    assert _RETAG and type(ev) is MarkPrice
    assert ev == MarkPrice(V, "ETHUSDT", 3001.25, 7) and repr(ev) == repr(
        MarkPrice(V, "ETHUSDT", 3001.25, 7)
    )
    assert hash(ev) == hash(MarkPrice(V, "ETHUSDT", 3001.25, 7))
    with pytest.raises(AttributeError):
        ev.mark = 1.0  # type: ignore[misc]


def test_a_non_string_symbol_is_rejected() -> None:
    frame = b'{"e":"markPriceUpdate","E":1,"s":7,"p":"1.5"}'
    for decode in (parse_frame, parse_frame_general):
        with pytest.raises(VenueDataError) as info:
            decode(frame, V, None)
        assert info.value.reason == "bad_value"

"""Any byte string fed to the Binance parsers either decodes or raises VenueDataError."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.binance.parse import parse_market, parse_user
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

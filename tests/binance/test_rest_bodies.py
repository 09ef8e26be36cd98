"""A REST body reads the same whether given as bytes or as the values the REST client decoded."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from connectors.binance import snapshots
from connectors.errors import VenueDataError
from rules.types import ContractKind

from .samples import SAMPLES
from .test_parse_properties import _mutations

V = "binance-usdm"
PARSERS: dict[str, Callable[[Any], object]] = {
    "account": lambda b: snapshots.parse_account_v3(b, V),
    "risk": lambda b: snapshots.parse_position_risk_v3(b, V, "a", event_ms=0),
    "brackets": lambda b: snapshots.decode_leverage_brackets(b, V, []),
    "premium": lambda b: snapshots.parse_premium_index(b, V, []),
    "asset_index": lambda b: snapshots.parse_asset_index(b, V, []),
    "exchange_info": lambda b: snapshots.parse_exchange_info(b, V, ContractKind.LINEAR),
    "dual": lambda b: snapshots.parse_dual_side(b, V),
    "time": lambda b: snapshots.parse_server_time(b, V),
}
REST_DOCS = [orjson.loads(p.read_bytes()) for p in sorted(SAMPLES.glob("rest_*.json"))]


def _outcome(parse: Callable[[Any], object], body: Any) -> tuple[str, object]:
    try:
        return "ok", parse(body)
    except VenueDataError as exc:
        return "rejected", (exc.reason, exc.detail)


@settings(max_examples=300)
@given(st.sampled_from(REST_DOCS).flatmap(_mutations), st.sampled_from(sorted(PARSERS)))
def test_bytes_and_decoded_values_read_alike(doc: Any, name: str) -> None:
    assume(not isinstance(doc, str))  # a str body is JSON text, by the parsers' contract
    try:
        body = json.dumps(doc, allow_nan=False).encode()
    except ValueError:  # NaN or infinity: not JSON
        assume(False)
    parse = PARSERS[name]
    assert _outcome(parse, body) == _outcome(parse, json.loads(body))


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("rest_*.json")), ids=lambda p: p.name)
def test_the_recorded_bodies_read_alike(path: Any) -> None:
    body = path.read_bytes()
    for parse in PARSERS.values():
        assert _outcome(parse, body) == _outcome(parse, orjson.loads(body))

"""Any byte string fed to the Binance parsers either decodes or raises VenueDataError."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.binance import parse as binance_parse
from connectors.binance.parse import (
    parse_frame,
    parse_frame_into,
    parse_many,
    parse_market,
    parse_user,
)
from connectors.binance.snapshots import (
    decode_leverage_brackets,
    parse_account_v3,
    parse_position_risk_v3,
    parse_premium_index,
)
from connectors.bounds import EVENT_MS_END, EVENT_MS_MIN
from connectors.errors import VenueDataError
from connectors.events import Event, MarkPrice, MarkRun

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
    st.integers(min_value=EVENT_MS_MIN, max_value=EVENT_MS_END - 1),
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


# --- the batch kernel (parse_many on a market stream: one MarkRun of the decoded structs) decodes
# exactly what the plain path does frame by frame: the same marks and the same rejections ---


def _marks(events: list[Event]) -> list[tuple[str, float, int]]:
    out: list[tuple[str, float, int]] = []
    for ev in events:
        for m in ev.marks() if isinstance(ev, MarkRun) else [ev]:
            assert isinstance(m, MarkPrice)
            out.append((m.symbol, m.mark, m.event_ms))
    return out


def _plain_events(frames: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for frame in frames:
        parse_frame_into(frame, V, None, events, [])
    return events


def _frame_by_frame(frames: list[bytes]) -> tuple[list[tuple[str, float, int]], list[str]]:
    events: list[Event] = []
    errors: list[VenueDataError] = []
    for frame in frames:
        parse_frame_into(frame, V, None, events, errors)
    return _marks(events), [exc.reason for exc in errors]


def _kernel(frames: list[Any]) -> tuple[list[tuple[str, float, int]], list[str]]:
    out: list[Event] = []
    errors = parse_many(frames, out, V)
    return _marks(out), [exc.reason for exc in errors]


def _agree(*frames: bytes) -> None:
    """parse_many on the batch == the frames judged one by one (marks and counted reasons)."""
    batch = list(frames)
    out: list[Event] = []
    errors = parse_many(batch, out, V)
    expected, reasons = _frame_by_frame(batch)
    if not reasons and all(isinstance(ev, MarkPrice) for ev in _plain_events(batch)):
        assert len(out) <= 1 and all(isinstance(ev, MarkRun) for ev in out)  # one run of marks
    assert _marks(out) == expected
    assert [exc.reason for exc in errors] == reasons
    for frame in batch:  # user streams never take the batch path; they must not crash either
        with contextlib.suppress(VenueDataError):
            parse_frame(frame, V, "a")


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
def test_the_batch_path_agrees_on_odd_mark_fields(data: dict[str, Any], shape: str) -> None:
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
            st.integers(min_value=EVENT_MS_MIN, max_value=EVENT_MS_END - 1),
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
def test_the_batch_path_agrees_on_mutated_samples(doc: Any) -> None:
    _agree(json.dumps(doc).encode())


_good = orjson.dumps(
    {"stream": "btcusdt@markPrice@1s",
     "data": {"e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "60000.10",
              "i": "60001.5", "P": "60000.0", "r": "0.0001", "T": 1562306400000}}
)  # fmt: skip


@settings(max_examples=300)
@given(st.lists(st.sampled_from(SAMPLE_DOCS).flatmap(_mutations), min_size=1, max_size=4))
def test_batches_of_mutated_frames_agree(docs: list[Any]) -> None:
    _agree(_good, *(json.dumps(doc).encode() for doc in docs), _good)


@given(st.binary(max_size=80), st.integers(min_value=0, max_value=2))
def test_any_bytes_in_a_batch_of_good_frames(junk: bytes, where: int) -> None:
    frames = [_good, _good]
    frames.insert(where, junk)
    _agree(*frames)


@pytest.mark.parametrize(
    "odd",
    [
        b"",  # an empty frame: the line decoder would skip it, the batch must not
        _good[:-1],  # truncated
        _good + b"\n" + _good,  # two documents in one frame
        _good + _good,  # ... with nothing between them
        _good + b"]\n[" + _good,  # ... with the batch's own separator between them
        b'{"result":null,"id":1}',  # our SUBSCRIBE's acknowledgement
        _good.replace(b'"p":"60000.10"', b'"p":"0"'),  # Binance's mark of a settling symbol
    ],
)
def test_an_odd_frame_is_judged_on_its_own(odd: bytes) -> None:
    marks, _ = _kernel([_good, odd, _good])
    assert marks[0] == marks[-1] == ("BTCUSDT", 60000.10, 1562305380000)  # its neighbours kept
    _agree(_good, odd, _good)


def test_whitespace_and_newlines_between_tokens_are_one_frame() -> None:
    spaced = _good.replace(b',"s"', b',\n "s"').replace(b'{"e"', b'\r\n{"e"') + b"\n"
    assert _kernel([_good, spaced, _good]) == _kernel([_good] * 3)
    _agree(_good, spaced, _good)


def test_frames_that_merge_and_split_cannot_pass_for_a_batch_of_marks() -> None:
    # Three broken frames yielding three documents between them: the first two form one
    # document when merely laid end to end, the third holds two. Each must be judged alone.
    head, tail = _good.split(b'"data":')
    frames = [head + b'"data":', tail, _good + _good]
    assert _kernel(frames) == ([], ["bad_json"] * 3)
    assert _kernel([_good, *frames, _good]) == (_kernel([_good] * 2)[0], ["bad_json"] * 3)
    _agree(_good, *frames, _good)
    assert _frame_by_frame(frames)[1] == ["bad_json"] * 3


def test_a_batch_of_marks_and_arrays_is_one_mark_run() -> None:
    array = orjson.dumps({"stream": "!markPrice@arr@1s", "data": [orjson.loads(_good)["data"]] * 2})
    out: list[Event] = []
    assert parse_many([_good, array, _good], out, V) == []
    assert len(out) == 1 and isinstance(out[0], MarkRun)
    assert _marks(out) == [("BTCUSDT", 60000.10, 1562305380000)] * 4
    assert out[0].marks()[0] == MarkPrice(V, "BTCUSDT", 60000.10, 1562305380000)


def test_a_non_string_symbol_is_rejected() -> None:
    frame = b'{"e":"markPriceUpdate","E":1,"s":7,"p":"1.5"}'
    with pytest.raises(VenueDataError) as info:
        parse_frame(frame, V, None)
    assert info.value.reason == "bad_value"
    assert _kernel([frame]) == ([], ["bad_value"])


@pytest.mark.parametrize(
    "frame",
    [
        _good.replace(b'"T":1562306400000', b'"T":1e400'),
        _good.replace(b'"i":"60001.5"', b'"i":1e400'),  # i is skipped too (never decided a mark)
        _good.replace(b'"r":"0.0001"', b'"r":"\xff"'),  # invalid UTF-8 in a skipped string
    ],
)
def test_fields_the_monitor_does_not_use_are_skipped_on_both_paths(frame: bytes) -> None:
    # A number that overflows float64 or a string that is not UTF-8, in a field the monitor
    # does not use: both paths skip such fields without converting or checking them (one
    # decoder, one judgement), so the mark (well formed) is kept. Binance sends neither;
    # checking for them would cost a second pass per frame.
    (mark,) = parse_frame(frame, V, None)
    assert isinstance(mark, MarkPrice)
    assert mark == MarkPrice(V, "BTCUSDT", 60000.10, 1562305380000, mark.index)
    assert mark.index in (60001.5, None)  # an unreadable index reads as absent
    assert _kernel([frame]) == ([("BTCUSDT", 60000.10, 1562305380000)], [])
    _agree(frame)


@pytest.mark.parametrize(
    "odd",
    [
        _good.replace(b'"BTCUSDT"', b'"BTC\xffUSDT"'),  # not UTF-8 where a string is built
        _good.replace(b'"T":1562306400000', b'"T":' + b"[" * 1100 + b"]" * 1100),  # too deep
    ],
)
def test_frames_msgspec_cannot_read_are_judged_one_by_one(odd: bytes) -> None:
    assert _kernel([_good, odd]) == (_kernel([_good])[0], ["bad_json"])
    _agree(_good, odd, _good)


def test_the_batch_kernel_leaves_the_frames_as_they_were() -> None:
    frames: list[Any] = [_good, bytearray(_good)]
    assert _kernel(frames) == _kernel([_good, _good])
    assert frames == [_good, bytearray(_good)]


@pytest.mark.parametrize(
    ("raw", "index"),
    [(b'"i":"60001.5"', 60001.5), (b'"i":60001', 60001.0), (b'"i":null', None),
     (b'"i":"x"', None), (b'"i":"nan"', None), (b'"i":{}', None), (b'"P":"1"', None)],
)  # fmt: skip
def test_the_index_price_is_shown_when_readable_and_never_costs_the_mark(
    raw: bytes, index: float | None
) -> None:
    frame = _good.replace(b'"i":"60001.5"', raw)
    assert parse_market(frame) == [MarkPrice(V, "BTCUSDT", 60000.10, 1562305380000, index)]
    _agree(frame)


def test_a_mixed_batch_decodes_each_frame_once(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[bytes] = []

    def counting(decode: Any) -> Any:
        def counted(buf: Any) -> Any:
            decoded.append(bytes(buf))
            return decode(buf)

        return counted

    monkeypatch.setattr(binance_parse, "_KERNEL", counting(binance_parse._KERNEL))
    monkeypatch.setattr(binance_parse, "_EVENT", counting(binance_parse._EVENT))
    items = [orjson.loads(_good)["data"], {**orjson.loads(_good)["data"], "p": "0"}]
    array = orjson.dumps({"stream": "!markPrice@arr@1s", "data": items})
    ack, zero = b'{"result":null,"id":1}', _good.replace(b'"p":"60000.10"', b'"p":"0"')
    frames = [_good, ack, zero, b"junk", array, _good]
    out: list[Event] = []
    errors = parse_many(frames, out, V)
    assert _marks(out) == [("BTCUSDT", 60000.10, 1562305380000)] * 3
    assert [exc.reason for exc in errors] == ["bad_value", "bad_json", "bad_value"]
    # Each frame is decoded once, in order; an array's items are skipped by its frame's decode
    # (kept as raw slices, so that each is judged on its own) and each decoded from its slice.
    assert decoded == [*frames[:5], *(orjson.dumps(item) for item in items), frames[5]]

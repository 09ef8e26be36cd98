"""Wire format of the simulated venue ``sim``: pure encoders and parsers, no I/O.

Public stream (``/market``), Binance-like, strings for decimals::

    {"e":"mark","s":"BTC-PERP","p":"60000.5","i":"60001.2","E":1700000000000}   ("i" optional)
    [ {"e":"mark",...}, {"e":"mark",...} ]                                          (batch of marks)

Private stream (``/private?key=<listenKey>``)::

    {"e":"position","a":"alice","s":"BTC-PERP","ps":"BOTH","q":"-1.5","ep":"60000",
     "mt":"cross","E":...}          (q signed; ps BOTH | LONG | SHORT; "lev", "im" optional)
    {"e":"balance","a":"alice","c":"USDT","wb":"10000","E":...}
    {"e":"streamExpired","a":"alice","E":...}

Control frames (acks and pongs) decode to no events. Client requests are ``{"op":"subscribe"}``
and ``{"op":"ping"}``. REST: ``GET /marks``, ``GET /snapshot?account=``,
``GET /listenKey?account=``.

Frames and bodies are decoded once, from their bytes, into the typed shapes of :mod:`.wire`.
Every parser raises :class:`~connectors.errors.VenueDataError` with one of the bounded reasons
``bad_json``, ``unknown_event``, ``bad_price``, ``bad_value``, ``bad_type``, ``missing_field``,
``bad_tiers``, and nothing else, whatever the bytes. (A frame with several faults is refused for
the first one msgspec meets, in document order, before the parser's own checks.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec
import orjson

from connectors.bounds import PRICE_MAX, PRICE_MIN, amount_ok, leverage_ok, price_ok, qty_ok
from connectors.errors import VenueDataError
from connectors.events import (
    AccountSnapshot,
    BalanceUpdate,
    Event,
    Instrument,
    MarkPrice,
    PositionSnapshot,
    StreamExpired,
    TierTableUpdate,
)
from connectors.sim import wire
from rules.errors import TierTableError
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, MarginMode, Side

VENUE = "sim"

_SIDES = {"BOTH": Side.BOTH, "LONG": Side.LONG, "SHORT": Side.SHORT}
_SIDE_WIRE = {v: k for k, v in _SIDES.items()}
_MODES = {"cross": MarginMode.CROSS, "isolated": MarginMode.ISOLATED}
_KINDS = {"linear": ContractKind.LINEAR, "inverse": ContractKind.INVERSE}
S = TypeVar("S")


def _err(reason: str, detail: str = "") -> VenueDataError:
    return VenueDataError(VENUE, reason, detail)


# --- decoding: once, from bytes -------------------------------------------------------------------

_FRAME = msgspec.json.Decoder(wire.Frame).decode
_ValidationError = msgspec.ValidationError
# What msgspec raises on bytes it cannot read: DecodeError, but also UnicodeDecodeError for
# invalid UTF-8 in a string it builds and RecursionError for nesting deeper than it follows.
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_MISSING = "Object missing required field `"


def _rejection(exc: msgspec.ValidationError, what: str = "") -> VenueDataError:
    """The bounded reason for what msgspec refused (its message names the rule and the path)."""
    text, _, where = str(exc).partition(" - at `")
    path = where[:-1] or "$"
    if text.startswith(_MISSING):
        name = text[len(_MISSING) : -1]
        if name == "e" and path.startswith("$["):
            return _err("unknown_event", "batch item")  # a batch holds marks only
        return _err("missing_field", what or name)
    if path.endswith(".e") and (text.startswith("Invalid value") or path != "$.e"):
        return _err("unknown_event", "batch item" if path != "$.e" else "")  # not a mark we know
    return _err("bad_type", what or path[:40])


def _decode_frame(frame: bytes | str) -> wire.Frame:
    try:
        return _FRAME(frame)
    except _ValidationError as exc:
        raise _rejection(exc) from None
    except _UNREADABLE:
        raise _err("bad_json") from None


# --- the mark kernel's constructor ----------------------------------------------------------------

# MarkPrice is a frozen slotted dataclass: its generated __init__ writes each field through
# object.__setattr__ (~0.5 µs, most of a mark frame's budget on the firehose). The mark kernel
# builds the same object by writing its slots through their own descriptors after
# object.__new__ (~0.25 µs): the object is a plain MarkPrice (type, ==, hash, repr, frozen),
# which tests/test_sim_protocol.py checks against the constructor.
_new = object.__new__
_slot: dict[str, Any] = dict(vars(MarkPrice))
_set_venue: Callable[[object, object], None] = _slot["venue"].__set__
_set_symbol: Callable[[object, object], None] = _slot["symbol"].__set__
_set_mark: Callable[[object, object], None] = _slot["mark"].__set__
_set_event_ms: Callable[[object, object], None] = _slot["event_ms"].__set__
_set_index: Callable[[object, object], None] = _slot["index"].__set__


def mark_price(symbol: str, mark: float, event_ms: int, index: float | None) -> MarkPrice:
    """``MarkPrice(VENUE, symbol, mark, event_ms, index)``, built at half the cost."""
    ev: MarkPrice = _new(MarkPrice)
    _set_venue(ev, VENUE)
    _set_symbol(ev, symbol)
    _set_mark(ev, mark)
    _set_event_ms(ev, event_ms)
    _set_index(ev, index)
    return ev


# --- values ---------------------------------------------------------------------------------------


# The bounds are connectors.bounds' (shared by every venue); names and event times are bounded
# by the wire types, decimals (strings here) by these readers.


def _price(raw: str) -> float:
    """A price: a decimal string, > 0 and within the bound (``bad_price``)."""
    try:
        value = float(raw)
    except ValueError:
        raise _err("bad_price") from None
    if not price_ok(value):  # also false for NaN
        raise _err("bad_price")
    return value


def _number(raw: str, what: str, ok: Callable[[float], bool] = amount_ok) -> float:
    """A decimal string of any sign within a bound (amounts; ``qty_ok`` for quantities)."""
    try:
        value = float(raw)
    except ValueError:
        raise _err("bad_value", what) from None
    if not ok(value):  # also false for NaN and infinities
        raise _err("bad_value", what)
    return value


def _leverage(raw: str) -> float:
    """A leverage setting: a decimal string in [1, max] (below 1 divides by zero downstream)."""
    return _number(raw, "lev", leverage_ok)


# --- events ---------------------------------------------------------------------------------------


def _mark(m: wire.Mark) -> MarkPrice:
    return mark_price(m.s, _price(m.p), m.E, None if m.i is None else _price(m.i))


def _batch_mark(item: wire.BatchItem) -> MarkPrice:
    if type(item) is not wire.Mark:
        raise _err("unknown_event", "batch item")
    return _mark(item)


def _position_fields(row: wire.PositionRow, account: str, event_ms: int) -> PositionSnapshot:
    side = _SIDES.get(row.ps)
    qty = _number(row.q, "q", qty_ok)
    mode = _MODES.get(row.mt)
    if side is None or mode is None:
        raise _err("bad_type", "ps/mt")
    # A closed leg may report entry 0; an open one needs a real price.
    entry = _number(row.ep, "ep") if qty == 0.0 else _price(row.ep)
    if not 0.0 <= entry <= PRICE_MAX:
        raise _err("bad_price")
    return PositionSnapshot(
        venue=VENUE,
        account=account,
        symbol=row.s,
        side=side,
        qty=qty,
        entry_price=entry,
        event_ms=event_ms,
        margin_mode=mode,
        leverage=None if row.lev is None else _leverage(row.lev),
        isolated_margin=None if row.im is None else _number(row.im, "im"),
    )


def _position(ev: wire.Position) -> list[Event]:
    return [_position_fields(ev, ev.a, ev.E)]


def _balance(ev: wire.Balance) -> list[Event]:
    return [BalanceUpdate(VENUE, ev.a, ev.c, _number(ev.wb, "wb"), ev.E)]


def _expired(ev: wire.StreamExpired) -> list[Event]:
    return [StreamExpired(VENUE, ev.a, ev.E)]


def _control(ev: object) -> list[Event]:
    return []


_HANDLERS: dict[type, Callable[[Any], list[Event]]] = {
    wire.Mark: lambda ev: [_mark(ev)],
    wire.Position: _position,
    wire.Balance: _balance,
    wire.StreamExpired: _expired,
    wire.Subscribed: _control,
    wire.Pong: _control,
}
"""The one dispatch table: decoded event type → handler."""
EVENT_NAMES = frozenset(t.__struct_config__.tag for t in _HANDLERS)  # type: ignore[attr-defined]


def _events(decoded: wire.Frame) -> list[Event]:
    if isinstance(decoded, list):  # a batch of marks: all or nothing
        return [_batch_mark(m) for m in decoded]
    return _HANDLERS[type(decoded)](decoded)


def parse(frame: bytes | str) -> list[Event]:
    """Decode one websocket frame of the sim venue. Raises :class:`VenueDataError` only."""
    out: list[Event] = []
    rejected = parse_many((frame,), out)
    if rejected:
        raise rejected[0]
    return out


def parse_many(frames: Sequence[bytes | str], out: list[Event]) -> list[VenueDataError]:
    """Decode a batch of frames: each good frame's events are appended to ``out`` in order (a
    frame's events all or none); each bad frame's :class:`VenueDataError` is returned, in order.

    The driver's batch entry point and the mark kernel: each frame is decoded once; a single
    mark (the firehose case) is judged and built inline, every call and lookup here being paid
    per frame, by the same rules as :func:`_mark` (the plain path, :func:`parse_general`, which
    the tests hold it to). Anything but a VenueDataError (a bug) propagates.
    """
    rejected: list[VenueDataError] = []
    decode, mark_type, new, lo, hi = _FRAME, wire.Mark, _new, PRICE_MIN, PRICE_MAX
    for frame in frames:
        try:
            ev = decode(frame)
        except _ValidationError as exc:
            rejected.append(_rejection(exc))
            continue
        except _UNREADABLE:
            rejected.append(_err("bad_json"))
            continue
        if type(ev) is mark_type and ev.i is None:
            try:
                mark = float(ev.p)
            except ValueError:
                mark = -1.0  # the plain path names the reason
            if lo <= mark <= hi:  # _price's bound (the symbol and E: the schema's)
                m: MarkPrice = new(MarkPrice)
                _set_venue(m, VENUE)
                _set_symbol(m, ev.s)
                _set_mark(m, mark)
                _set_event_ms(m, ev.E)
                _set_index(m, None)
                out.append(m)
                continue
        try:
            out += _events(ev)
        except VenueDataError as exc:
            rejected.append(exc)
    return rejected


def parse_general(frame: bytes | str) -> list[Event]:
    """:func:`parse` without its single-mark fast path: the reference the tests hold it to."""
    return _events(_decode_frame(frame))


# --- REST snapshots -------------------------------------------------------------------------------

_MARKS = msgspec.json.Decoder(wire.MarksSnapshot).decode
_ACCOUNT = msgspec.json.Decoder(wire.AccountSnapshot).decode
_LISTEN_KEY = msgspec.json.Decoder(wire.ListenKey).decode


def _body(decode: Callable[[bytes], S], body: bytes, what: str) -> S:
    try:
        return decode(body)
    except _ValidationError as exc:
        raise _rejection(exc, what) from None
    except _UNREADABLE:
        raise _err("bad_json", what) from None


def _tier(cells: wire.Tier) -> TierSpec:
    floor, cap, mmr, max_lev = (_number(c, "tier") for c in cells)
    return TierSpec(floor=floor, cap=cap, mmr=mmr, deduction=None, max_leverage=max_lev)


def parse_marks_snapshot(body: bytes) -> tuple[list[Event], int]:
    """``GET /marks`` → Instrument, TierTableUpdate and MarkPrice per instrument, and venue ms."""
    doc = _body(_MARKS, body, "snapshot")
    event_ms = doc.E
    events: list[Event] = []
    for row in doc.instruments:
        symbol = row.s
        kind = _KINDS.get(row.kind)
        if kind is None:
            raise _err("bad_type", "kind")
        events.append(Instrument(VENUE, symbol, kind, _price(row.cs), row.settle))
        tiers = [_tier(t) for t in row.tiers]
        try:
            model = TierTable.from_tiers(symbol, tiers)
        except TierTableError:
            raise _err("bad_tiers", symbol) from None
        events.append(TierTableUpdate(VENUE, symbol, model, None, event_ms))
        events.append(mark_price(symbol, _price(row.p), event_ms, None))
    return events, event_ms


def parse_account_snapshot(body: bytes) -> tuple[list[Event], int]:
    """``GET /snapshot?account=`` → one AccountSnapshot, and venue ms."""
    doc = _body(_ACCOUNT, body, "snapshot")
    account, event_ms = doc.a, doc.E
    balances = {k: _number(v, "balance") for k, v in doc.balances.items()}
    positions = tuple(_position_fields(row, account, event_ms) for row in doc.positions)
    snap = AccountSnapshot(VENUE, account, balances, positions, event_ms)
    return [snap], event_ms


def parse_listen_key(body: bytes) -> str:
    key = _body(_LISTEN_KEY, body, "listenKey").listenKey
    if not key:
        raise _err("bad_type", "listenKey")
    return key


# --- encoders (the server side; also used to record test frames) ----------------------------------


def fmt(value: float) -> str:
    """Shortest round-tripping decimal string (venues send decimals as strings)."""
    return repr(float(value))


def encode_mark(symbol: str, price: float, event_ms: int) -> bytes:
    return orjson.dumps({"e": "mark", "s": symbol, "p": fmt(price), "E": event_ms})


def encode_marks(marks: Sequence[tuple[str, float]], event_ms: int) -> bytes:
    return orjson.dumps([{"e": "mark", "s": s, "p": fmt(p), "E": event_ms} for s, p in marks])


def position_wire(
    symbol: str, side: Side, qty: float, entry: float, mode: MarginMode = MarginMode.CROSS
) -> dict[str, str]:
    return {
        "s": symbol,
        "ps": _SIDE_WIRE[side],
        "q": fmt(qty),
        "ep": fmt(entry),
        "mt": mode.value,
    }


def encode_position(account: str, wire: Mapping[str, str], event_ms: int) -> bytes:
    return orjson.dumps({"e": "position", "a": account, **wire, "E": event_ms})


def encode_balance(account: str, asset: str, balance: float, event_ms: int) -> bytes:
    return orjson.dumps(
        {"e": "balance", "a": account, "c": asset, "wb": fmt(balance), "E": event_ms}
    )


def encode_expired(account: str, event_ms: int) -> bytes:
    return orjson.dumps({"e": "streamExpired", "a": account, "E": event_ms})

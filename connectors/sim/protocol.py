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

Every parser raises :class:`~connectors.errors.VenueDataError` with one of the bounded reasons
``bad_json``, ``unknown_event``, ``bad_price``, ``bad_value``, ``bad_type``, ``missing_field``,
``bad_tiers``, and nothing else, whatever the bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

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
from rules.errors import TierTableError
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, MarginMode, Side

VENUE = "sim"

_INF = math.inf
_NAN = math.nan
_SIDES = {"BOTH": Side.BOTH, "LONG": Side.LONG, "SHORT": Side.SHORT}
_SIDE_WIRE = {v: k for k, v in _SIDES.items()}
_MODES = {"cross": MarginMode.CROSS, "isolated": MarginMode.ISOLATED}
_KINDS = {"linear": ContractKind.LINEAR, "inverse": ContractKind.INVERSE}


def _err(reason: str, detail: str = "") -> VenueDataError:
    return VenueDataError(VENUE, reason, detail)


_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_new = object.__new__


# MarkPrice is a frozen slotted dataclass; its generated __init__ goes through
# object.__setattr__ per field (~0.55 µs), a big share of the per-frame budget on the mark
# firehose. The cheapest identical (==, same type) object measured: build a plain slotted twin
# with the same slots in the same order, then retag its class (~0.2 µs; writing the slots
# through their descriptors after object.__new__ takes ~0.3 µs). Python allows the retag only
# between identical layouts, so if MarkPrice ever changes, the import-time check below fails and
# the descriptor writes are used instead. Only marks, the one per-frame hot type, take this path.
class _MarkTwin:
    __slots__ = ("event_ms", "index", "mark", "symbol", "venue")  # CPython sorts slots anyway

    def __init__(
        self, venue: str, symbol: str, mark: float, event_ms: int, index: float | None
    ) -> None:
        self.venue = venue
        self.symbol = symbol
        self.mark = mark
        self.event_ms = event_ms
        self.index = index


def _mark_by_retag(symbol: str, mark: float, event_ms: int, index: float | None) -> MarkPrice:
    ev: Any = _MarkTwin(VENUE, symbol, mark, event_ms, index)
    ev.__class__ = MarkPrice
    return ev  # type: ignore[no-any-return]


_slot: dict[str, Any] = dict(vars(MarkPrice))
_set_venue: Callable[[object, object], None] = _slot["venue"].__set__
_set_symbol: Callable[[object, object], None] = _slot["symbol"].__set__
_set_mark: Callable[[object, object], None] = _slot["mark"].__set__
_set_event_ms: Callable[[object, object], None] = _slot["event_ms"].__set__
_set_index: Callable[[object, object], None] = _slot["index"].__set__


def _mark_by_slots(symbol: str, mark: float, event_ms: int, index: float | None) -> MarkPrice:
    ev: MarkPrice = _new(MarkPrice)
    _set_venue(ev, VENUE)
    _set_symbol(ev, symbol)
    _set_mark(ev, mark)
    _set_event_ms(ev, event_ms)
    _set_index(ev, index)
    return ev


def _retag_works() -> bool:
    try:
        probe = _mark_by_retag("X", 1.5, 2, 3.5)
    except TypeError:  # "object layout differs": MarkPrice changed shape
        return False
    return type(probe) is MarkPrice and probe == MarkPrice(VENUE, "X", 1.5, 2, 3.5)


_mark_price: Callable[[str, float, int, float | None], MarkPrice] = (
    _mark_by_retag if _retag_works() else _mark_by_slots
)
_RETAG = _mark_price is _mark_by_retag


def _price(raw: object) -> float:
    """A strictly positive, finite decimal string."""
    if type(raw) is not str:
        raise _err("bad_type", "price")
    try:
        value = float(raw)
    except ValueError:
        raise _err("bad_price") from None
    if not 0.0 < value < _INF:  # also false for NaN
        raise _err("bad_price")
    return value


def _number(raw: object, what: str) -> float:
    """A finite decimal string of any sign (quantities, balances)."""
    if type(raw) is not str:
        raise _err("bad_type", what)
    try:
        value = float(raw)
    except ValueError:
        raise _err("bad_value", what) from None
    if not -_INF < value < _INF:
        raise _err("bad_value", what)
    return value


def _ms(raw: object) -> int:
    if type(raw) is not int or raw < 0:
        raise _err("bad_type", "E")
    return raw


def _str(raw: object, what: str) -> str:
    if type(raw) is not str or not raw:
        raise _err("bad_type", what)
    return raw


def _mark(obj: dict[str, Any]) -> MarkPrice:
    try:
        symbol = obj["s"]
        raw = obj["p"]
        event_ms = obj["E"]
    except KeyError:
        raise _err("missing_field") from None
    if type(symbol) is not str or type(raw) is not str or type(event_ms) is not int:
        raise _err("bad_type", "mark")
    try:
        mark = float(raw)
    except ValueError:
        raise _err("bad_price") from None
    if not 0.0 < mark < _INF or event_ms < 0 or not symbol:
        raise _err("bad_price" if not 0.0 < mark < _INF else "bad_type")
    index_raw = obj.get("i")
    index = None if index_raw is None else _price(index_raw)
    return _mark_price(symbol, mark, event_ms, index)


def _position_fields(obj: Mapping[str, Any], account: str, event_ms: int) -> PositionSnapshot:
    try:
        symbol = _str(obj["s"], "s")
        side = _SIDES.get(obj["ps"])
        qty = _number(obj["q"], "q")
        entry_raw = obj["ep"]
        mode = _MODES.get(obj["mt"])
    except KeyError:
        raise _err("missing_field") from None
    except TypeError:  # unhashable ps/mt (list, dict)
        raise _err("bad_type", "position") from None
    if side is None or mode is None:
        raise _err("bad_type", "ps/mt")
    # A closed leg may report entry 0; an open one needs a real price.
    entry = _number(entry_raw, "ep") if qty == 0.0 else _price(entry_raw)
    if entry < 0.0:
        raise _err("bad_price")
    lev_raw = obj.get("lev")
    leverage = None if lev_raw is None else _price(lev_raw)
    im_raw = obj.get("im")
    isolated = None if im_raw is None else _number(im_raw, "im")
    return PositionSnapshot(
        venue=VENUE,
        account=account,
        symbol=symbol,
        side=side,
        qty=qty,
        entry_price=entry,
        event_ms=event_ms,
        margin_mode=mode,
        leverage=leverage,
        isolated_margin=isolated,
    )


def _account_of(obj: dict[str, Any]) -> tuple[str, int]:
    try:
        return _str(obj["a"], "a"), _ms(obj["E"])
    except KeyError:
        raise _err("missing_field") from None


def _position(obj: dict[str, Any]) -> list[Event]:
    account, event_ms = _account_of(obj)
    return [_position_fields(obj, account, event_ms)]


def _balance(obj: dict[str, Any]) -> list[Event]:
    account, event_ms = _account_of(obj)
    try:
        asset = _str(obj["c"], "c")
        balance = _number(obj["wb"], "wb")
    except KeyError:
        raise _err("missing_field") from None
    return [BalanceUpdate(VENUE, account, asset, balance, event_ms)]


def _expired(obj: dict[str, Any]) -> list[Event]:
    account, event_ms = _account_of(obj)
    return [StreamExpired(VENUE, account, event_ms)]


def _control(obj: dict[str, Any]) -> list[Event]:
    return []


_HANDLERS: dict[str, Callable[[dict[str, Any]], list[Event]]] = {
    "mark": lambda obj: [_mark(obj)],
    "position": _position,
    "balance": _balance,
    "streamExpired": _expired,
    "subscribed": _control,
    "pong": _control,
}


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

    The driver's batch entry point: one call per batch instead of one per frame, no list per
    frame. Anything but a VenueDataError (a bug) propagates.
    """
    rejected: list[VenueDataError] = []
    for frame in frames:
        try:
            obj = _loads(frame)
        except _JSONDecodeError:
            rejected.append(_err("bad_json"))
            continue
        if type(obj) is dict and len(obj) == 4:
            # Fast path for a well-formed single mark (the firehose case), inlined because
            # every call and lookup here is paid per frame; anything unusual (an index price,
            # a bad field, another event) falls through to the general code below, which
            # validates and names the reason. tests/test_sim_protocol.py checks both agree.
            try:
                kind = obj["e"]
                symbol = obj["s"]
                raw = obj["p"]
                event_ms = obj["E"]
            except KeyError:
                pass
            else:
                if (
                    kind == "mark"
                    and type(raw) is str
                    and type(symbol) is str
                    and type(event_ms) is int
                    and event_ms >= 0
                    and symbol
                ):
                    try:
                        mark = float(raw)
                    except ValueError:
                        mark = _NAN  # the general code names the reason
                    if 0.0 < mark < _INF and _RETAG:
                        ev: Any = _new(_MarkTwin)
                        ev.venue = VENUE
                        ev.symbol = symbol
                        ev.mark = mark
                        ev.event_ms = event_ms
                        ev.index = None
                        ev.__class__ = MarkPrice
                        out.append(ev)
                        continue
        try:
            out += _decode(obj)
        except VenueDataError as exc:
            rejected.append(exc)
    return rejected


def parse_general(frame: bytes | str) -> list[Event]:
    """:func:`parse` without its single-mark fast path: the reference the tests hold it to."""
    try:
        obj = _loads(frame)
    except _JSONDecodeError:
        raise _err("bad_json") from None
    return _decode(obj)


def _decode(obj: object) -> list[Event]:
    if type(obj) is dict:
        kind = obj.get("e")
        if kind is None:
            raise _err("missing_field", "e")
        if type(kind) is not str:
            raise _err("bad_type", "e")
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise _err("unknown_event")
        return handler(obj)
    if type(obj) is list:
        out: list[Event] = []
        for item in obj:
            if type(item) is not dict:
                raise _err("bad_type", "batch item")
            if item.get("e") != "mark":
                raise _err("unknown_event", "batch item")
            out.append(_mark(item))
        return out
    raise _err("bad_type", "frame")


# --- REST snapshots ----------------------------------------------------------------------------


def _body(body: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _err("bad_json", "snapshot") from None
    if type(obj) is not dict:
        raise _err("bad_type", "snapshot")
    return obj


def _list(raw: object, what: str) -> list[Any]:
    if type(raw) is not list:
        raise _err("bad_type", what)
    return raw


def _tier(row: object) -> TierSpec:
    cells = _list(row, "tier")
    if len(cells) != 4:
        raise _err("bad_type", "tier")
    floor, cap, mmr, max_lev = (_number(c, "tier") for c in cells)
    return TierSpec(floor=floor, cap=cap, mmr=mmr, deduction=None, max_leverage=max_lev)


def parse_marks_snapshot(body: bytes) -> tuple[list[Event], int]:
    """``GET /marks`` → Instrument, TierTableUpdate and MarkPrice per instrument, and venue ms."""
    obj = _body(body)
    try:
        event_ms = _ms(obj["E"])
        rows = _list(obj["instruments"], "instruments")
        events: list[Event] = []
        for row in rows:
            if type(row) is not dict:
                raise _err("bad_type", "instrument")
            symbol = _str(row["s"], "s")
            kind = _KINDS.get(row["kind"]) if type(row["kind"]) is str else None
            if kind is None:
                raise _err("bad_type", "kind")
            events.append(
                Instrument(VENUE, symbol, kind, _price(row["cs"]), _str(row["settle"], "settle"))
            )
            tiers = [_tier(t) for t in _list(row["tiers"], "tiers")]
            try:
                model = TierTable.from_tiers(symbol, tiers)
            except TierTableError:
                raise _err("bad_tiers", symbol) from None
            events.append(TierTableUpdate(VENUE, symbol, model, None, event_ms))
            events.append(_mark_price(symbol, _price(row["p"]), event_ms, None))
    except KeyError:
        raise _err("missing_field", "snapshot") from None
    return events, event_ms


def parse_account_snapshot(body: bytes) -> tuple[list[Event], int]:
    """``GET /snapshot?account=`` → one AccountSnapshot, and venue ms."""
    obj = _body(body)
    try:
        account, event_ms = _account_of(obj)
        raw_balances = obj["balances"]
        if type(raw_balances) is not dict:
            raise _err("bad_type", "balances")
        balances = {_str(k, "asset"): _number(v, "balance") for k, v in raw_balances.items()}
        positions = []
        for row in _list(obj["positions"], "positions"):
            if type(row) is not dict:
                raise _err("bad_type", "position")
            positions.append(_position_fields(row, account, event_ms))
    except KeyError:
        raise _err("missing_field", "snapshot") from None
    snap = AccountSnapshot(VENUE, account, balances, tuple(positions), event_ms)
    return [snap], event_ms


def parse_listen_key(body: bytes) -> str:
    obj = _body(body)
    try:
        return _str(obj["listenKey"], "listenKey")
    except KeyError:
        raise _err("missing_field", "listenKey") from None


# --- encoders (the server side; also used to record test frames) ------------------------------


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

"""Pure parsers for Binance USDⓈ-M and COIN-M websocket frames: bytes in, domain events out.

One table, :data:`HANDLERS`, maps the exact event name (``e``) to its handler; the frame is
decoded once. Nothing here touches a socket, a clock or the store. Anything we cannot decode
raises :class:`~connectors.errors.VenueDataError` with a bounded ``reason``:

``bad_json``, ``bad_shape`` (not an object/array where one is needed), ``missing_field``,
``bad_value`` (a number or enum we cannot read), ``unknown_event``, ``venue_error`` (an
``{"code":…, "msg":…}`` reply), ``user_event_without_account``.

Position state comes from ``ACCOUNT_UPDATE``, which Binance pushes with the absolute amount of
every position a fill changed; ``ORDER_TRADE_UPDATE`` fills are therefore emitted with
``position_pushed=True`` so the store records them (liquidation / ADL alerts, realised PnL)
without applying the delta a second time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from connectors.binance import wire
from connectors.errors import VenueDataError
from connectors.events import (
    BalanceUpdate,
    CollateralModeUpdate,
    Event,
    LeverageUpdate,
    MarginCall,
    MarginCallPosition,
    MarkPrice,
    PositionFill,
    PositionSnapshot,
    StreamExpired,
)
from rules.types import MarginMode, Side

USDM_VENUE = "binance-usdm"

Handler = Callable[[dict[str, Any], str, str | None], list[Event]]

SIDES: dict[str, Side] = {"BOTH": Side.BOTH, "LONG": Side.LONG, "SHORT": Side.SHORT}
# ACCOUNT_UPDATE says "cross"/"isolated"; MARGIN_CALL says "CROSSED"/"ISOLATED".
MARGIN_MODES: dict[str, MarginMode] = {
    "cross": MarginMode.CROSS,
    "crossed": MarginMode.CROSS,
    "CROSSED": MarginMode.CROSS,
    "isolated": MarginMode.ISOLATED,
    "ISOLATED": MarginMode.ISOLATED,
}
_SIGNS: dict[str, float] = {"BUY": 1.0, "SELL": -1.0}
_INF = math.inf
_NAN = math.nan
_MARK = wire.MARK_PRICE_UPDATE
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


def num(value: object) -> float:
    """A finite float from Binance's decimal string (or a JSON number); else ``ValueError``."""
    if type(value) is str or type(value) is float or type(value) is int:
        x = float(value)
        if -_INF < x < _INF:
            return x
    raise ValueError("not a finite number")


def ms(value: object) -> int:
    """Event time in ms: an int, or a decimal string (the docs' ``listenKeyExpired`` example)."""
    if type(value) is int:
        return value
    if type(value) is str and value.isdigit():
        return int(value)
    raise ValueError("not a millisecond timestamp")


# MarkPrice's generated frozen __init__ costs ~0.55 µs (object.__setattr__ per field) on the
# hottest path Binance has. A plain slotted twin with MarkPrice's slots, retagged to MarkPrice,
# is an identical (==, same type, frozen) object for ~0.2 µs. CPython allows the retag only
# between identical layouts; the import-time check falls back to the normal constructor if
# MarkPrice ever changes shape.
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


def _retagged_mark(
    venue: str, symbol: str, mark: float, event_ms: int, index: float | None
) -> MarkPrice:
    ev: Any = _MarkTwin(venue, symbol, mark, event_ms, index)
    ev.__class__ = MarkPrice
    return ev  # type: ignore[no-any-return]


def _retag_works() -> bool:
    try:
        probe = _retagged_mark("v", "X", 1.5, 2, 3.5)
    except TypeError:  # "object layout differs"
        return False
    return type(probe) is MarkPrice and probe == MarkPrice("v", "X", 1.5, 2, 3.5)


_RETAG = _retag_works()
_new = object.__new__
make_mark: Callable[[str, str, float, int, float | None], MarkPrice] = (
    _retagged_mark if _RETAG else MarkPrice
)
"""``make_mark(venue, symbol, mark, event_ms, index)`` == ``MarkPrice(...)``, built cheaply."""


def _mark_price(d: dict[str, Any], venue: str, account: str | None) -> list[Event]:
    # The hot path: one dict lookup per field, float() once each, one event, no helper calls.
    p = d["p"]
    if type(p) is not str:
        raise ValueError("mark is not a decimal string")
    mark = float(p)
    event_ms = d["E"]
    if type(event_ms) is not int:
        event_ms = ms(event_ms)
    symbol = d["s"]
    if type(symbol) is not str:
        raise ValueError("symbol is not a string")
    i = d.get("i")
    index = None if i is None else float(i)
    if not (0.0 < mark < _INF and (index is None or -_INF < index < _INF)):
        raise ValueError("mark out of range")
    return [make_mark(venue, symbol, mark, event_ms, index)]


def _require_account(venue: str, account: str | None) -> str:
    if account is None:
        raise VenueDataError(venue, "user_event_without_account")
    return account


def position_from_wire(
    p: dict[str, Any], venue: str, account: str, event_ms: int
) -> PositionSnapshot:
    mode = MARGIN_MODES[p["mt"]]
    return PositionSnapshot(
        venue,
        account,
        p["s"],
        SIDES[p["ps"]],
        num(p["pa"]),
        num(p["ep"]),
        event_ms,
        margin_mode=mode,
        isolated_margin=num(p["iw"]) if mode is MarginMode.ISOLATED else None,
    )


def _account_update(d: dict[str, Any], venue: str, account: str | None) -> list[Event]:
    acct = _require_account(venue, account)
    event_ms = ms(d["E"])
    body = d["a"]
    # Only the changed assets and positions are pushed; either list may be empty or absent
    # (a cross FUNDING_FEE pushes B alone). The cross wallet is the cross pool's collateral.
    out: list[Event] = [
        BalanceUpdate(venue, acct, b["a"], num(b["cw"]), event_ms) for b in body.get("B") or ()
    ]
    out.extend(position_from_wire(p, venue, acct, event_ms) for p in body.get("P") or ())
    return out


def _order_trade_update(d: dict[str, Any], venue: str, account: str | None) -> list[Event]:
    acct = _require_account(venue, account)
    o = d["o"]
    execution = o["x"]
    if execution not in wire.FILL_EXECUTIONS:
        return []  # NEW, CANCELED, EXPIRED, AMENDMENT...: no position change
    last_qty = num(o["l"])
    if last_qty == 0.0:
        return []
    client_id = o["c"]
    if type(client_id) is not str:
        raise ValueError("client id")
    rp = o.get("rp")
    return [
        PositionFill(
            venue,
            acct,
            o["s"],
            SIDES[o["ps"]],
            _SIGNS[o["S"]] * last_qty,
            num(o["L"]),
            ms(d["E"]),
            liquidation=execution == wire.LIQUIDATION_EXECUTION
            or client_id.startswith(wire.LIQUIDATION_CLIENT_PREFIX),
            adl=client_id.startswith(wire.ADL_CLIENT_ID),
            realized_pnl=None if rp is None else num(rp),
            position_pushed=True,
            order_id=_opt_id(o.get("i")),
            trade_id=_opt_id(o.get("t")),
        )
    ]


def _opt_id(value: object) -> str | None:
    """An order/trade id (Binance sends integers) as text; absent stays ``None``."""
    if value is None:
        return None
    if type(value) is int or type(value) is str:
        return str(value)
    raise ValueError("id is not an integer")


def _margin_call(d: dict[str, Any], venue: str, account: str | None) -> list[Event]:
    acct = _require_account(venue, account)
    cw = d.get("cw")
    positions = tuple(
        MarginCallPosition(
            p["s"], SIDES[p["ps"]], num(p["pa"]), num(p["mp"]), num(p["mm"]), num(p["up"])
        )
        for p in d["p"]
    )
    return [MarginCall(venue, acct, ms(d["E"]), positions, None if cw is None else num(cw))]


def _listen_key_expired(d: dict[str, Any], venue: str, account: str | None) -> list[Event]:
    return [StreamExpired(venue, _require_account(venue, account), ms(d["E"]))]


def _account_config_update(d: dict[str, Any], venue: str, account: str | None) -> list[Event]:
    acct = _require_account(venue, account)
    event_ms = ms(d["E"])
    out: list[Event] = []
    ac = d.get("ac")
    if ac is not None:
        out.append(LeverageUpdate(venue, acct, ac["s"], num(ac["l"]), event_ms))
    ai = d.get("ai")
    if ai is not None:
        multi = ai["j"]
        if type(multi) is not bool:
            raise ValueError("multi-assets flag")
        out.append(CollateralModeUpdate(venue, acct, multi, event_ms))
    return out


def _ignore(d: dict[str, Any], venue: str, account: str | None) -> list[Event]:
    return []


HANDLERS: dict[str, Handler] = {
    wire.MARK_PRICE_UPDATE: _mark_price,
    wire.ACCOUNT_UPDATE: _account_update,
    wire.ORDER_TRADE_UPDATE: _order_trade_update,
    wire.MARGIN_CALL: _margin_call,
    wire.LISTEN_KEY_EXPIRED: _listen_key_expired,
    wire.ACCOUNT_CONFIG_UPDATE: _account_config_update,
    **dict.fromkeys(wire.IGNORED_MARKET_EVENTS | wire.IGNORED_USER_EVENTS, _ignore),
}
"""The one dispatch table: exact event name → handler(payload, venue, account)."""
_handler_for: Callable[[object], Handler | None] = HANDLERS.get  # type: ignore[assignment]


def _dispatch(payload: object, venue: str, account: str | None) -> list[Event]:
    if type(payload) is dict:
        handler = HANDLERS.get(payload.get("e"))  # type: ignore[arg-type]
        if handler is None:
            raise VenueDataError(venue, "unknown_event")
        return handler(payload, venue, account)
    if type(payload) is list:  # !markPrice@arr: an array of markPriceUpdate objects
        out: list[Event] = []
        for item in payload:
            out.extend(_dispatch_item(item, venue, account))
        return out
    raise VenueDataError(venue, "bad_shape")


def _dispatch_item(item: object, venue: str, account: str | None) -> list[Event]:
    if type(item) is not dict:
        raise VenueDataError(venue, "bad_shape")
    return _dispatch(item, venue, account)


def parse_frame(frame: bytes | str, venue: str, account: str | None) -> list[Event]:
    """Decode one frame from any Binance futures stream (raw or combined envelope).

    An array frame (``!markPrice@arr``) is judged item by item: the good items' events are
    returned and a bad item is skipped; the frame is rejected (the first item's error raised)
    only when no item decoded. Callers that must count each skipped item use
    :func:`parse_frame_into` or :func:`parse_many`.
    """
    out: list[Event] = []
    errors: list[VenueDataError] = []
    parse_frame_into(frame, venue, account, out, errors)
    if errors and not out:
        raise errors[0]
    return out


def parse_many(
    frames: Sequence[bytes | str], out: list[Event], venue: str, account: str | None = None
) -> list[VenueDataError]:
    """Decode a batch: events appended to ``out`` in order; one error per rejected frame or
    skipped array item, in order (the driver counts each). Anything else (a bug) propagates."""
    errors: list[VenueDataError] = []
    for frame in frames:
        parse_frame_into(frame, venue, account, out, errors)
    return errors


def parse_frame_into(
    frame: bytes | str,
    venue: str,
    account: str | None,
    out: list[Event],
    errors: list[VenueDataError],
) -> None:
    """Decode one frame, appending its events to ``out`` and its rejections to ``errors``.

    A non-array frame is all or nothing (one error, no events). An array is per item: one bad
    mark (``p`` "0" for a settling symbol, say) must not blind the whole venue for a second.
    Well-formed ``markPriceUpdate`` payloads (single, in a combined envelope, or array items)
    are decoded inline; anything else, or anything unusual in one (a missing or odd field, a
    string ``E``), goes through :func:`parse_frame_general`'s code, which the tests hold the
    fast path to.
    """
    try:
        doc = _loads(frame)
    except _JSONDecodeError as exc:
        errors.append(VenueDataError(venue, "bad_json"))
        errors[-1].__cause__ = exc
        return
    payload = doc.get("data", doc) if type(doc) is dict else doc
    if type(payload) is dict:
        if payload.get("e") == _MARK:
            p = payload.get("p")
            symbol = payload.get("s")
            event_ms = payload.get("E")
            i = payload.get("i")
            if type(p) is str and type(symbol) is str and type(event_ms) is int:
                if i is None:
                    try:
                        mark = float(p)
                    except ValueError:
                        mark = _NAN
                    if 0.0 < mark < _INF and _RETAG:
                        ev: Any = _new(_MarkTwin)
                        ev.venue = venue
                        ev.symbol = symbol
                        ev.mark = mark
                        ev.event_ms = event_ms
                        ev.index = None
                        ev.__class__ = MarkPrice
                        out.append(ev)
                        return
                elif type(i) is str:
                    try:
                        mark = float(p)
                        index = float(i)
                    except ValueError:
                        mark = _NAN
                        index = _NAN
                    if 0.0 < mark < _INF and -_INF < index < _INF and _RETAG:
                        ev = _new(_MarkTwin)
                        ev.venue = venue
                        ev.symbol = symbol
                        ev.mark = mark
                        ev.event_ms = event_ms
                        ev.index = index
                        ev.__class__ = MarkPrice
                        out.append(ev)
                        return
    elif type(payload) is list:
        for item in payload:
            if type(item) is dict and item.get("e") == _MARK:
                p = item.get("p")
                symbol = item.get("s")
                event_ms = item.get("E")
                i = item.get("i")
                if type(p) is str and type(symbol) is str and type(event_ms) is int:
                    if type(i) is str:
                        try:
                            mark = float(p)
                            index = float(i)
                        except ValueError:
                            mark = _NAN
                            index = _NAN
                        if 0.0 < mark < _INF and -_INF < index < _INF:
                            out.append(make_mark(venue, symbol, mark, event_ms, index))
                            continue
                    elif i is None:
                        try:
                            mark = float(p)
                        except ValueError:
                            mark = _NAN
                        if 0.0 < mark < _INF:
                            out.append(make_mark(venue, symbol, mark, event_ms, None))
                            continue
            # Not a plain mark: the general code decides (events, or this item's rejection).
            try:
                out.extend(_decoded(_dispatch_item, item, venue, account))
            except VenueDataError as exc:
                errors.append(exc)
        return
    _general_into(doc, venue, account, out, errors)


def parse_frame_general(frame: bytes | str, venue: str, account: str | None) -> list[Event]:
    """:func:`parse_frame` without its mark fast path: the reference the tests hold it to."""
    try:
        doc = _loads(frame)
    except _JSONDecodeError as exc:
        raise VenueDataError(venue, "bad_json") from exc
    out: list[Event] = []
    errors: list[VenueDataError] = []
    _general_into(doc, venue, account, out, errors)
    if errors and not out:
        raise errors[0]
    return out


def _general_into(
    doc: object,
    venue: str,
    account: str | None,
    out: list[Event],
    errors: list[VenueDataError],
) -> None:
    payload = doc.get("data", doc) if type(doc) is dict else doc
    if type(payload) is list:
        for item in payload:
            try:
                out.extend(_decoded(_dispatch_item, item, venue, account))
            except VenueDataError as exc:
                errors.append(exc)
        return
    try:
        out.extend(_decoded(_general, doc, venue, account))
    except VenueDataError as exc:
        errors.append(exc)


def _decoded(
    decode: Callable[[Any, str, str | None], list[Event]],
    doc: object,
    venue: str,
    account: str | None,
) -> list[Event]:
    """Run a decoder, mapping what a malformed payload raises to bounded reasons."""
    try:
        return decode(doc, venue, account)
    except VenueDataError:
        raise
    except KeyError as exc:
        raise VenueDataError(venue, "missing_field", str(exc)[:40]) from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise VenueDataError(venue, "bad_value") from exc


def _general(doc: object, venue: str, account: str | None) -> list[Event]:
    if type(doc) is dict:
        # Combined stream {"stream": name, "data": payload}, or a raw payload.
        payload = doc.get("data", doc)
        if type(payload) is dict:
            handler = _handler_for(payload.get("e"))
            if handler is not None:
                return handler(payload, venue, account)
            if payload is doc and "e" not in doc:
                return _control(doc, venue)
            raise VenueDataError(venue, "unknown_event")
        return _dispatch(payload, venue, account)
    return _dispatch(doc, venue, account)


def _control(doc: dict[str, Any], venue: str) -> list[Event]:
    """Replies to our own requests: ``{"result":…, "id":…}`` acks carry no events."""
    if "id" in doc and "result" in doc:
        return []
    if "code" in doc:
        raise VenueDataError(venue, "venue_error", str(doc.get("code"))[:12])
    raise VenueDataError(venue, "unknown_event")


def parse_market(frame: bytes | str, venue: str = USDM_VENUE) -> list[Event]:
    """Mark-price frames (single, ``!markPrice@arr`` arrays, raw or combined) → events."""
    return parse_frame(frame, venue, None)


def parse_user(frame: bytes | str, venue: str, account: str) -> list[Event]:
    """User-data frames of one account → events (positions, balances, fills, alerts, control)."""
    return parse_frame(frame, venue, account)


def parse_any(frame: bytes | str, venue: str = USDM_VENUE, account: str = "decode") -> list[Event]:
    """Either kind of frame, for offline decoding (``marginwatch decode``) of mixed captures."""
    return parse_frame(frame, venue, account)

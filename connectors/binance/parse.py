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

from connectors.binance import marks, wire
from connectors.errors import VenueDataError
from connectors.events import (
    BalanceUpdate,
    CollateralModeUpdate,
    Event,
    LeverageUpdate,
    MarginCall,
    MarginCallPosition,
    MarkPrice,
    MarkRun,
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


def _mark_price(d: dict[str, Any], venue: str, account: str | None) -> list[Event]:
    u = marks.from_payload(d)  # the schema the batch decoder uses: one judgement of a mark
    return [MarkPrice(venue, u.symbol, u.mark, u.event_ms, marks.index_of(d))]


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
    skipped array item, in order (the driver counts each). Anything else (a bug) propagates.

    A market batch made only of mark frames (the usual one) decodes in one call to one
    :class:`~connectors.events.MarkRun` (:func:`connectors.binance.marks.decode_batch`); any
    other batch, or one with a single odd frame, is decoded frame by frame, so each frame is
    judged, and counted, on its own. Both paths judge a mark by the same schema.
    """
    if account is None:
        quotes = marks.decode_batch(frames)  # type: ignore[arg-type]  # str frames: None
        if quotes is not None:
            if quotes:
                out.append(MarkRun(venue, quotes))
            return []
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
    """
    try:
        doc = _loads(frame)
    except _JSONDecodeError as exc:
        errors.append(VenueDataError(venue, "bad_json"))
        errors[-1].__cause__ = exc
        return
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

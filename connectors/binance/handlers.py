"""Typed Binance events in, domain events out: the one dispatch table, :data:`HANDLERS`.

Each handler takes one event of the tagged union in :mod:`.wire` (decoded by :mod:`.parse`)
and returns the domain events (:mod:`connectors.events`) it means; values are converted here,
once, at the edge: the wire types already hold every value inside the bounds of
:mod:`connectors.bounds` (see :mod:`.wire`); the handlers check what a bound cannot say alone
(an open leg's entry > 0, a fill's price > 0). A value a handler cannot read raises
:class:`~connectors.errors.VenueDataError` (:func:`handled` maps ``KeyError`` to
``missing_field`` and ``ValueError``/``TypeError`` to ``bad_value``, as the parsers always have).

Position state comes from ``ACCOUNT_UPDATE``, which Binance pushes with the absolute amount of
every position a fill changed; ``ORDER_TRADE_UPDATE`` fills are therefore emitted with
``position_pushed=True`` so the store records them (liquidation / ADL alerts, realised PnL)
without applying the delta a second time.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import UnsetType

from connectors.binance import wire
from connectors.bounds import price_ok, qty_ok
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

T = TypeVar("T")
Handler = Callable[[Any, str, str | None], list[Event]]

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
_MAX = sys.float_info.max
_INDEX = msgspec.json.Decoder(Annotated[float, msgspec.Meta(ge=-_MAX, le=_MAX)], strict=False)
# What msgspec raises on bytes it cannot read (see parse.py).
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def num(value: object) -> float:
    """A finite float from Binance's decimal string (or a JSON number); else ``ValueError``.
    (REST bodies, :mod:`.snapshots`: the websocket wire types read their numbers themselves.)"""
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


def need(value: T | UnsetType, name: str) -> T:
    """A field the wire type leaves optional, required where the parser reads it."""
    if isinstance(value, UnsetType):
        raise KeyError(name)
    return value


def index_of(update: wire.MarkUpdate) -> float | None:
    """The update's index price ``i`` when it reads as a finite number (the same lax reading
    as ``p``); else ``None``: informational only, it never decides whether the mark is kept."""
    raw = update.index
    if raw is msgspec.UNSET:
        return None
    try:
        return _INDEX.decode(raw)
    except _UNREADABLE:  # incl. ValidationError
        return None


def _require_account(venue: str, account: str | None) -> str:
    if account is None:
        raise VenueDataError(venue, "user_event_without_account")
    return account


def _mark_price(u: wire.MarkUpdate, venue: str, account: str | None) -> list[Event]:
    return [MarkPrice(venue, u.symbol, u.mark, u.event_ms, index_of(u))]


def position_from_wire(
    p: wire.PositionWire, venue: str, account: str, event_ms: int
) -> PositionSnapshot:
    mode = MARGIN_MODES[p.mt]
    if not qty_ok(p.pa):
        raise ValueError("quantity")
    if p.pa != 0.0 and not price_ok(p.ep):
        raise ValueError("an open leg without an entry price")  # a closed one may say 0
    return PositionSnapshot(
        venue,
        account,
        p.s,
        SIDES[p.ps],
        p.pa,
        p.ep,
        event_ms,
        margin_mode=mode,
        isolated_margin=need(p.iw, "iw") if mode is MarginMode.ISOLATED else None,
    )


def _account_update(u: wire.AccountUpdate, venue: str, account: str | None) -> list[Event]:
    acct = _require_account(venue, account)
    event_ms = u.E
    # The cross wallet is the cross pool's collateral.
    out: list[Event] = [BalanceUpdate(venue, acct, b.a, b.cw, event_ms) for b in u.a.B or ()]
    out.extend(position_from_wire(p, venue, acct, event_ms) for p in u.a.P or ())
    return out


def _order_trade_update(u: wire.OrderTradeUpdate, venue: str, account: str | None) -> list[Event]:
    acct = _require_account(venue, account)
    o = u.o
    execution = o.x
    if execution not in wire.FILL_EXECUTIONS:
        return []  # NEW, CANCELED, EXPIRED, AMENDMENT...: no position change
    last_qty = need(o.l, "l")
    if last_qty == 0.0:
        return []
    client_id = need(o.c, "c")
    price = need(o.L, "L")
    if not (qty_ok(last_qty) and price_ok(price)):
        raise ValueError("a fill's size or price")  # 0 is what an unfilled order says
    return [
        PositionFill(
            venue,
            acct,
            need(o.s, "s"),
            SIDES[need(o.ps, "ps")],
            _SIGNS[need(o.S, "S")] * last_qty,
            price,
            need(u.E, "E"),
            liquidation=execution == wire.LIQUIDATION_EXECUTION
            or client_id.startswith(wire.LIQUIDATION_CLIENT_PREFIX),
            adl=client_id.startswith(wire.ADL_CLIENT_ID),
            realized_pnl=o.rp,
            position_pushed=True,
            order_id=_opt_id(o.i),
            trade_id=_opt_id(o.t),
        )
    ]


def _opt_id(value: int | str | None) -> str | None:
    """An order/trade id (Binance sends integers) as text; absent stays ``None``."""
    return None if value is None else str(value)


def _margin_call(u: wire.MarginCallWire, venue: str, account: str | None) -> list[Event]:
    acct = _require_account(venue, account)
    if not all(qty_ok(p.pa) for p in u.p):
        raise ValueError("quantity")
    positions = tuple(MarginCallPosition(p.s, SIDES[p.ps], p.pa, p.mp, p.mm, p.up) for p in u.p)
    return [MarginCall(venue, acct, u.E, positions, u.cw)]


def _listen_key_expired(u: wire.ListenKeyExpired, venue: str, account: str | None) -> list[Event]:
    return [StreamExpired(venue, _require_account(venue, account), u.E)]


def _account_config_update(
    u: wire.AccountConfigUpdate, venue: str, account: str | None
) -> list[Event]:
    acct = _require_account(venue, account)
    event_ms = u.E
    out: list[Event] = []
    if u.ac is not None:
        out.append(LeverageUpdate(venue, acct, u.ac.s, u.ac.l, event_ms))
    if u.ai is not None:
        multi = u.ai.j
        if type(multi) is not bool:
            raise ValueError("multi-assets flag")
        out.append(CollateralModeUpdate(venue, acct, multi, event_ms))
    return out


def _ignore(u: object, venue: str, account: str | None) -> list[Event]:
    return []


HANDLERS: dict[type, Handler] = {
    wire.MarkUpdate: _mark_price,
    wire.AccountUpdate: _account_update,
    wire.OrderTradeUpdate: _order_trade_update,
    wire.MarginCallWire: _margin_call,
    wire.ListenKeyExpired: _listen_key_expired,
    wire.AccountConfigUpdate: _account_config_update,
    **dict.fromkeys(wire.IGNORED, _ignore),
}
"""The one dispatch table: decoded event type → handler(event, venue, account)."""


def handled(event: object, venue: str, account: str | None) -> list[Event]:
    """Run an event's handler, mapping what a value it cannot read raises to bounded reasons."""
    handler = HANDLERS[type(event)]  # outside the try: a type missing here is our bug
    try:
        return handler(event, venue, account)
    except VenueDataError:
        raise
    except KeyError as exc:  # a field required here, or a value outside a table (SIDES...)
        raise VenueDataError(venue, "missing_field", str(exc)[:40]) from exc
    except (TypeError, ValueError) as exc:
        raise VenueDataError(venue, "bad_value") from exc

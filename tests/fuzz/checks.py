"""What the harness judges: events a parser should have refused, and a store in a bad state.

:func:`violations` holds every emitted event to :mod:`connectors.bounds` (the rules the parsers
promise); it is written out field by field, not through the wire types, so that a schema that
forgets a bound is caught here. :func:`bad_state` reads the store only through its public read
methods (``accounts``, ``figures``, ``legs``), so it keeps working while the store's internals
change.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from connectors.bounds import (
    AMOUNT_MAX,
    PRICE_MAX,
    PRICE_MIN,
    amount_ok,
    event_ms_ok,
    leverage_ok,
    name_ok,
    price_ok,
    qty_ok,
)
from connectors.events import (
    BalanceUpdate,
    CollateralModeUpdate,
    Event,
    LeverageUpdate,
    MarginCall,
    MarkPrice,
    MarkRun,
    PositionFill,
    PositionSnapshot,
    StreamExpired,
)
from monitor.store import Store


def _time(value: object) -> bool:
    return type(value) is int and event_ms_ok(value)


def _float(value: object) -> bool:
    return type(value) is float


def _price(value: object) -> bool:
    return _float(value) and price_ok(value)  # type: ignore[arg-type]


def _qty(value: object) -> bool:
    return _float(value) and qty_ok(value)  # type: ignore[arg-type]


def _amount(value: object) -> bool:
    return _float(value) and amount_ok(value)  # type: ignore[arg-type]


def _optional(value: object, ok: bool) -> bool:
    return value is None or ok


def _mark_faults(symbol: object, mark: object, event_ms: object) -> Iterator[str]:
    if not name_ok(symbol):
        yield "mark.symbol"
    if not _price(mark):
        yield "mark.price"
    if not _time(event_ms):
        yield "mark.event_ms"


def violations(ev: Event) -> Iterator[str]:
    """The rules ``ev`` breaks, as ``type.field`` labels (none for a valid event)."""
    if isinstance(ev, MarkPrice):
        yield from _mark_faults(ev.symbol, ev.mark, ev.event_ms)
        if not _optional(ev.index, _float(ev.index) and math.isfinite(ev.index or 0.0)):
            yield "mark.index"
    elif isinstance(ev, MarkRun):
        for q in ev.quotes:
            yield from _mark_faults(q.symbol, q.mark, q.event_ms)
    elif isinstance(ev, PositionSnapshot):
        if not (name_ok(ev.symbol) and name_ok(ev.account)):
            yield "position.name"
        if not _qty(ev.qty):
            yield "position.qty"
        entry = ev.entry_price
        if not (_float(entry) and 0.0 <= entry <= PRICE_MAX) or (
            ev.qty != 0.0 and entry < PRICE_MIN
        ):
            yield "position.entry"
        if not _optional(ev.leverage, _float(ev.leverage) and leverage_ok(ev.leverage or 0.0)):
            yield "position.leverage"
        if not _optional(ev.isolated_margin, _amount(ev.isolated_margin)):
            yield "position.isolated_margin"
        if not _time(ev.event_ms):
            yield "position.event_ms"
    elif isinstance(ev, PositionFill):
        if not (name_ok(ev.symbol) and name_ok(ev.account)):
            yield "fill.name"
        if not _qty(ev.qty_delta):
            yield "fill.qty"
        if not _price(ev.price):
            yield "fill.price"
        if not _optional(ev.realized_pnl, _amount(ev.realized_pnl)):
            yield "fill.realized_pnl"
        if not _time(ev.event_ms):
            yield "fill.event_ms"
    elif isinstance(ev, BalanceUpdate):
        if not (name_ok(ev.asset) and name_ok(ev.account)):
            yield "balance.name"
        if not _amount(ev.wallet_balance):
            yield "balance.amount"
        if not _time(ev.event_ms):
            yield "balance.event_ms"
    elif isinstance(ev, LeverageUpdate):
        if not (name_ok(ev.symbol) and name_ok(ev.account)):
            yield "leverage.name"
        if not (_float(ev.leverage) and leverage_ok(ev.leverage)):
            yield "leverage.value"
        if not _time(ev.event_ms):
            yield "leverage.event_ms"
    elif isinstance(ev, CollateralModeUpdate):
        if type(ev.multi_asset) is not bool:
            yield "collateral_mode.flag"
        if not _time(ev.event_ms):
            yield "collateral_mode.event_ms"
    elif isinstance(ev, MarginCall):
        if not name_ok(ev.account):
            yield "margin_call.name"
        for p in ev.positions:
            if not name_ok(p.symbol):
                yield "margin_call.symbol"
            if not (_qty(p.qty) and _price(p.mark) and _amount(p.upnl)):
                yield "margin_call.position"
            if not (_float(p.maintenance_margin) and 0.0 <= p.maintenance_margin <= AMOUNT_MAX):
                yield "margin_call.maintenance_margin"
        if not _optional(ev.cross_wallet_balance, _amount(ev.cross_wallet_balance)):
            yield "margin_call.cross_wallet"
        if not _time(ev.event_ms):
            yield "margin_call.event_ms"
    elif isinstance(ev, StreamExpired):
        if not name_ok(ev.account):
            yield "stream_expired.name"
        if not _time(ev.event_ms):
            yield "stream_expired.event_ms"
    else:
        yield f"unexpected.{type(ev).__name__}"  # a websocket parser emits none of the others


def bad_state(store: Store) -> str | None:
    """What is wrong with the store's state, or ``None``: a complete account with a non-finite
    equity, MM or IM, or a leg with a negative or non-finite entry or quantity."""
    for key in store.accounts():
        fig = store.figures(key)
        if fig.complete:
            for name in ("equity", "maintenance_margin", "initial_margin"):
                if not math.isfinite(getattr(fig, name)):
                    return f"non-finite {name}"
        for leg in store.legs(key):
            if not (math.isfinite(leg.entry) and leg.entry >= 0.0):
                return "negative or non-finite entry"
            if not math.isfinite(leg.qty):
                return "non-finite qty"
    return None

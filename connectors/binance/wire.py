"""Binance futures websocket wire shapes: msgspec ``Struct``s with the venue's own field names.

Every frame the connector reads is decoded once, from its bytes, into these types (see
:mod:`.parse`); they stay inside ``connectors.binance``. Events form one tagged union on the
event name ``e`` (:data:`AnyEvent`), so dispatch is on the decoded type (:mod:`.handlers`),
never on a string compared by hand; frames are :data:`MarketFrame` and :data:`UserFrame`. REST
bodies are in :mod:`.rest_wire`.

Only the fields the parsers read are declared: msgspec validates the rest of a frame as JSON
and skips it, so Binance adding fields (``ap``/``st`` on ``markPriceUpdate``, ``bep`` on
positions, ``V`` on orders) changes nothing. Unread fields are named in each docstring.

Types are the edge's validation (issue #11: a hostile venue never stops the monitor): every
field the parsers read is typed with a bound of :mod:`connectors.bounds` (a non-empty name, a
finite price > 0 and below a sane bound, a bounded quantity or amount, leverage >= 1, an event
time inside the plausible window), so a value outside it fails the decode, per item, with the
reason :func:`.parse.rejection` gives (``bad_value``), and never reaches a handler or the store.
Decimals arrive as strings (``"11794.15000000"``) or JSON numbers and are read as floats; event
times as integers or decimal strings (the docs' ``listenKeyExpired`` example). What a bound
cannot say alone (a fill's price > 0 on fills only, an open leg's entry > 0, a non-zero
quantity no smaller than ``QTY_MIN``) the handler checks, with the same bounds' predicates.
Enumerations (``ps``, ``mt``, ``S``, ``x``) are names looked up in a table by the handler (a
value outside it is rejected there). A field that may be absent is ``UNSET`` by default and
required by the parser where it reads it.

The decoders run in msgspec's lax mode, which converts a string to a non-string type where the
field's type has no ``str``: that is how decimal strings and string event times are read (one
reading of a number everywhere, see :class:`MarkQuote`). The multi-assets flag ``j`` stays
untyped, so that lax mode cannot read ``"true"`` as a boolean; its handler checks it.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from connectors.bounds import (
    Amount,
    EventMs,
    Leverage,
    Margin,
    Name,
    Price,
    PriceOrZero,
    Qty,
    Size,
)

# Websocket event names (the ``e`` field), exactly as Binance sends them.
MARK_PRICE_UPDATE = "markPriceUpdate"
ACCOUNT_UPDATE = "ACCOUNT_UPDATE"
ORDER_TRADE_UPDATE = "ORDER_TRADE_UPDATE"
MARGIN_CALL = "MARGIN_CALL"
LISTEN_KEY_EXPIRED = "listenKeyExpired"
ACCOUNT_CONFIG_UPDATE = "ACCOUNT_CONFIG_UPDATE"

# Order execution types (``o.x``) that move a position, and liquidation / ADL client-id markers.
FILL_EXECUTIONS = frozenset({"TRADE", "CALCULATED"})
LIQUIDATION_EXECUTION = "CALCULATED"
LIQUIDATION_CLIENT_PREFIX = "autoclose-"
ADL_CLIENT_ID = "adl_autoclose"

# The REST bodies' loose types (:mod:`.rest_wire`; the websocket events below are bounded).
Num = str | float
"""A decimal: Binance sends strings (``"11794.15000000"``); a JSON number is read too."""
Ms = int | str
"""Milliseconds since the epoch: an integer, or its decimal string."""
Unchecked = Any
"""Any JSON value, its docstring saying what Binance sends."""
OrderId = (
    Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | Annotated[str, msgspec.Meta(max_length=64)]
)
"""An order or trade id: Binance sends integers; text is read too."""
E_co = TypeVar("E_co", covariant=True)


class _Event(Struct, tag_field="e", frozen=True, gc=False):
    """Base of every event: ``e`` (the event name) is the tag. Wire structs are immutable and
    hold no cycles (so the collector is kept off them)."""


# --- market events --------------------------------------------------------------------------------


class MarkQuote(
    _Event,
    tag=MARK_PRICE_UPDATE,
    frozen=True,
    rename={"event_ms": "E", "symbol": "s", "mark": "p"},
):
    """``markPriceUpdate`` as the batch kernel reads it, with our names: a
    :class:`~connectors.events.MarkQuote`, so a batch of them is handed to the store as is (see
    :func:`.parse.parse_many`). The plain path reads :class:`MarkUpdate`, the same and ``i``.

    ``E`` an integer (or an integral number or numeric string: lax mode, which the docs'
    string-``E`` examples need) in the plausible window, ``s`` a non-empty name, ``p`` a decimal
    string or number, finite, > 0 and within :data:`connectors.bounds.PRICE_MAX`.
    Unread: ``P`` (estimated settle price), ``r`` (funding rate), ``T`` (next funding
    time), ``ap``, ``st``.
    """

    event_ms: EventMs
    """``E``: event time, ms."""
    symbol: Name
    """``s``: the contract, e.g. ``BTCUSDT``."""
    mark: Price
    """``p``: the mark price."""


class MarkUpdate(
    MarkQuote,
    tag=MARK_PRICE_UPDATE,
    frozen=True,
    rename={"event_ms": "E", "symbol": "s", "mark": "p", "index": "i"},
):
    """``markPriceUpdate`` on the plain path: :class:`MarkQuote` and the index price. (The
    kernel leaves ``i`` out: an object per mark that nothing downstream of it reads costs
    some 6 % of a mark frame's decode.)"""

    index: Raw | UnsetType = UNSET
    """``i``: the index price, kept undecoded: informational (``marginwatch decode`` shows it),
    it never decides whether the mark is kept, so an unreadable one reads as absent."""


class BookTicker(_Event, tag="bookTicker", frozen=True):
    """Best bid/ask: carries nothing the monitor needs (recognised, then dropped)."""


class AggTrade(_Event, tag="aggTrade", frozen=True):
    """Aggregated trade: dropped."""


class Ticker24h(_Event, tag="24hrTicker", frozen=True):
    """24-hour rolling statistics: dropped."""


class Kline(_Event, tag="kline", frozen=True):
    """Candle: dropped."""


class ForceOrder(_Event, tag="forceOrder", frozen=True):
    """A liquidation order on the market (anyone's): dropped."""


# --- user-data events -----------------------------------------------------------------------------


class BalanceWire(Struct, frozen=True, gc=False):
    """One asset of ``ACCOUNT_UPDATE.a.B``. Unread: ``wb`` (wallet balance), ``bc``."""

    a: Name
    """Asset, e.g. ``USDT``."""
    cw: Amount
    """Cross wallet balance: the cross pool's collateral before uPnL."""


class PositionWire(Struct, frozen=True, gc=False):
    """One position leg of ``ACCOUNT_UPDATE.a.P``. Unread: ``up`` (uPnL), ``bep``."""

    s: Name
    """Symbol."""
    pa: Qty
    """Position amount, signed."""
    ep: PriceOrZero
    """Entry price (0 on a closed leg; the handler requires > 0 on an open one)."""
    mt: Name
    """Margin type: ``cross`` | ``isolated``."""
    ps: Name
    """Position side: ``BOTH`` | ``LONG`` | ``SHORT``."""
    iw: Amount | UnsetType = UNSET
    """Isolated wallet; read, and required, when ``mt`` is isolated."""


class AccountUpdateBody(Struct, frozen=True, gc=False):
    """``ACCOUNT_UPDATE.a``. Only changed assets and positions are pushed; either list may be
    empty, ``null`` or absent (a cross ``FUNDING_FEE`` pushes ``B`` alone). Unread: ``m``."""

    B: list[BalanceWire] | None = None
    """Balances."""
    P: list[PositionWire] | None = None
    """Positions (absolute amounts)."""


class AccountUpdate(_Event, tag=ACCOUNT_UPDATE, frozen=True):
    """``ACCOUNT_UPDATE``: balances and positions changed. Unread: ``T`` (transaction time)."""

    E: EventMs
    """Event time."""
    a: AccountUpdateBody
    """The update."""


class OrderWire(Struct, frozen=True, gc=False):
    """``ORDER_TRADE_UPDATE.o``. Only ``x`` is read for executions that move no position, so
    every other field is required by the parser, for fills only. Unread: ``o``, ``f``, ``q``,
    ``p``, ``ap``, ``sp``, ``X``, ``z``, ``N``, ``n``, ``T``, ``b``, ``a``, ``m``, ``R``,
    ``wt``, ``ot``, ``cp``, ``V``, ``pm``, ``gtd``..."""

    x: Name
    """Execution type: ``NEW``, ``TRADE``, ``CALCULATED`` (liquidation)..."""
    s: Name | UnsetType = UNSET
    """Symbol."""
    c: Annotated[str, msgspec.Meta(max_length=64)] | UnsetType = UNSET
    """Client order id: ``autoclose-…`` (liquidation), ``adl_autoclose``."""
    S: Name | UnsetType = UNSET
    """Side: ``BUY`` | ``SELL``."""
    l: Size | UnsetType = UNSET  # noqa: E741 (Binance's field name)
    """Last filled quantity (0 on an order that did not fill)."""
    L: PriceOrZero | UnsetType = UNSET
    """Last filled price (0 on an order that did not fill; the handler requires > 0 on a fill)."""
    ps: Name | UnsetType = UNSET
    """Position side: ``BOTH`` | ``LONG`` | ``SHORT``."""
    rp: Amount | None = None
    """Realised profit of the trade."""
    i: OrderId | None = None
    """Order id."""
    t: OrderId | None = None
    """Trade id."""


class OrderTradeUpdate(_Event, tag=ORDER_TRADE_UPDATE, frozen=True):
    """``ORDER_TRADE_UPDATE``: an order changed; fills carry the executed quantity."""

    o: OrderWire
    """The order."""
    E: EventMs | UnsetType = UNSET
    """Event time (read for fills only)."""


class MarginCallPositionWire(Struct, frozen=True, gc=False):
    """One position of ``MARGIN_CALL.p``. Unread: ``mt``, ``iw``."""

    s: Name
    """Symbol."""
    ps: Name
    """Position side."""
    pa: Qty
    """Position amount."""
    mp: Price
    """Mark price."""
    mm: Margin
    """Maintenance margin required."""
    up: Amount
    """Unrealised PnL."""


class MarginCallWire(_Event, tag=MARGIN_CALL, frozen=True):
    """``MARGIN_CALL``: the venue's own warning, relayed as an alert."""

    E: EventMs
    """Event time."""
    p: list[MarginCallPositionWire]
    """The positions at risk."""
    cw: Amount | None = None
    """Cross wallet balance (absent for isolated-only calls)."""


class ListenKeyExpired(_Event, tag=LISTEN_KEY_EXPIRED, frozen=True):
    """``listenKeyExpired``: the user stream's key is dead. Unread: ``listenKey``."""

    E: EventMs
    """Event time (a string in the docs' example)."""


class LeverageConfig(Struct, frozen=True, gc=False):
    """``ACCOUNT_CONFIG_UPDATE.ac``: a symbol's leverage changed."""

    s: Name
    """Symbol."""
    l: Leverage  # noqa: E741 (Binance's field name)
    """The new leverage."""


class AssetModeConfig(Struct, frozen=True, gc=False):
    """``ACCOUNT_CONFIG_UPDATE.ai``: the multi-assets mode changed."""

    j: bool | str
    """Multi-assets mode on: a JSON boolean. A string is let through to the parser, which
    refuses it (lax mode would otherwise read ``"true"`` as a boolean); anything else, nested
    values included, fails the decode."""


class AccountConfigUpdate(_Event, tag=ACCOUNT_CONFIG_UPDATE, frozen=True):
    """``ACCOUNT_CONFIG_UPDATE``: leverage (``ac``) or asset mode (``ai``) changed."""

    E: EventMs
    """Event time."""
    ac: LeverageConfig | None = None
    """Present when a symbol's leverage changed."""
    ai: AssetModeConfig | None = None
    """Present when the multi-assets mode changed."""


class TradeLite(_Event, tag="TRADE_LITE", frozen=True):
    """A lighter duplicate of fills (``ORDER_TRADE_UPDATE`` carries them): dropped."""


class AlgoUpdate(_Event, tag="ALGO_UPDATE", frozen=True):
    """Algo-order lifecycle: dropped."""


class ConditionalOrderTriggerReject(_Event, tag="CONDITIONAL_ORDER_TRIGGER_REJECT", frozen=True):
    """A conditional order failed to trigger: dropped."""


class StrategyUpdate(_Event, tag="STRATEGY_UPDATE", frozen=True):
    """Strategy-trading lifecycle: dropped."""


class GridUpdate(_Event, tag="GRID_UPDATE", frozen=True):
    """Grid-trading lifecycle: dropped."""


IGNORED: tuple[type[_Event], ...] = (
    BookTicker,
    AggTrade,
    Ticker24h,
    Kline,
    ForceOrder,
    TradeLite,
    AlgoUpdate,
    ConditionalOrderTriggerReject,
    StrategyUpdate,
    GridUpdate,
)
"""Events Binance sends that carry nothing the margin monitor needs."""

_OtherEvent = (
    AccountUpdate
    | OrderTradeUpdate
    | MarginCallWire
    | ListenKeyExpired
    | AccountConfigUpdate
    | BookTicker
    | AggTrade
    | Ticker24h
    | Kline
    | ForceOrder
    | TradeLite
    | AlgoUpdate
    | ConditionalOrderTriggerReject
    | StrategyUpdate
    | GridUpdate
)
AnyEvent = MarkUpdate | _OtherEvent
"""Every event, tagged on ``e``: an unknown name fails the decode (``unknown_event``)."""
KernelEvent = MarkQuote | _OtherEvent
"""Every event, as the mark batch kernel reads them (marks without their index price)."""


# --- frames ---------------------------------------------------------------------------------------


class Envelope(Struct, Generic[E_co], frozen=True, gc=False):
    """An object frame without an event name of its own: the combined-stream envelope, or a
    reply to our request. Raw events are recognised by ``e`` here (and decoded as events).
    Unread: ``stream`` (the stream's name: the event names itself).

    Replies: ``{"result": null, "id": 1}`` acknowledges a ``SUBSCRIBE``; ``{"code": -1121,
    "msg": "Invalid symbol."}`` (sometimes with ``id``) is the venue refusing something.
    """

    data: E_co | list[Raw] | UnsetType = UNSET
    """The event, or ``!markPrice@arr``'s array of them (each judged on its own)."""
    e: str | UnsetType = UNSET
    """Set on a raw (not enveloped) event: only its presence is read here (a name that is not a
    string is ``unknown_event``, as the event decode would say)."""
    result: Any = UNSET
    """A request's result (``null`` for ``SUBSCRIBE``): only its presence is read."""
    id: int | Annotated[str, msgspec.Meta(max_length=64)] | UnsetType | None = UNSET
    """The request id we sent (an integer): only its presence is read."""
    code: int | Annotated[str, msgspec.Meta(max_length=64)] | UnsetType = UNSET
    """An error code (Binance sends an integer): shown (truncated) in the ``venue_error``
    detail. Typed so that no nested value is ever turned into text."""


MarketFrame = Envelope[AnyEvent] | list[Raw]
"""What a market connection (``/stream``, combined) sends: envelopes, acks, or a raw array."""
KernelFrame = Envelope[KernelEvent] | list[Raw]
"""The same, as the mark batch kernel reads it."""
UserFrame = AnyEvent | list[Raw]
"""What a user-data connection (``/ws``, raw) sends: events."""

"""Binance futures wire shapes: the venue's own field names, kept inside ``connectors.binance``.

These ``TypedDict``s document what the parsers read (and what the fake writes); parsers index
them directly so a missing field is a ``KeyError`` that becomes a ``VenueDataError``. Only the
fields we use are listed; Binance adds fields over time (``ap``/``st`` on ``markPriceUpdate``,
``bep`` on positions, ``V`` on orders) and extra keys are ignored.

Numbers arrive as decimal strings (``"11794.15000000"``) and are converted with ``float()`` once,
here at the edge. Event times ``E`` are integers, except that the docs' ``listenKeyExpired``
example has a string ``E``: both are accepted.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

# Websocket event names (the ``e`` field), exactly as Binance sends them.
MARK_PRICE_UPDATE = "markPriceUpdate"
ACCOUNT_UPDATE = "ACCOUNT_UPDATE"
ORDER_TRADE_UPDATE = "ORDER_TRADE_UPDATE"
MARGIN_CALL = "MARGIN_CALL"
LISTEN_KEY_EXPIRED = "listenKeyExpired"
ACCOUNT_CONFIG_UPDATE = "ACCOUNT_CONFIG_UPDATE"

# Events Binance sends that carry nothing the margin monitor needs (recognised, then dropped).
IGNORED_MARKET_EVENTS = frozenset({"bookTicker", "aggTrade", "24hrTicker", "kline", "forceOrder"})
IGNORED_USER_EVENTS = frozenset(
    {
        "TRADE_LITE",
        "ALGO_UPDATE",
        "CONDITIONAL_ORDER_TRIGGER_REJECT",
        "STRATEGY_UPDATE",
        "GRID_UPDATE",
    }
)

# Order execution types (``o.x``) that move a position, and liquidation / ADL client-id markers.
FILL_EXECUTIONS = frozenset({"TRADE", "CALCULATED"})
LIQUIDATION_EXECUTION = "CALCULATED"
LIQUIDATION_CLIENT_PREFIX = "autoclose-"
ADL_CLIENT_ID = "adl_autoclose"

PositionSideWire = Literal["BOTH", "LONG", "SHORT"]


class MarkPriceUpdate(TypedDict):
    e: str
    E: int
    s: str
    p: str
    i: NotRequired[str]
    P: NotRequired[str]
    r: NotRequired[str]
    T: NotRequired[int]


class CombinedEnvelope(TypedDict):
    stream: str
    data: object


class BalanceWire(TypedDict):
    a: str
    wb: str
    cw: str
    bc: NotRequired[str]


class PositionWire(TypedDict):
    s: str
    pa: str
    ep: str
    up: NotRequired[str]
    mt: str
    iw: str
    ps: PositionSideWire


class AccountUpdateBody(TypedDict):
    m: str
    B: list[BalanceWire]
    P: list[PositionWire]


class OrderWire(TypedDict):
    s: str
    c: str
    S: Literal["BUY", "SELL"]
    x: str
    X: str
    l: str  # noqa: E741 (Binance's field name: last filled quantity)
    L: str
    ps: PositionSideWire
    rp: NotRequired[str]


class MarginCallPositionWire(TypedDict):
    s: str
    ps: PositionSideWire
    pa: str
    mt: str
    mp: str
    up: str
    mm: str


class BracketWire(TypedDict):
    """One leverage bracket. USDⓈ-M sizes by quote notional, COIN-M by coin quantity."""

    bracket: int
    initialLeverage: int
    notionalCap: NotRequired[float]
    notionalFloor: NotRequired[float]
    qtyCap: NotRequired[float]
    qtyFloor: NotRequired[float]
    maintMarginRatio: float
    cum: float


class SymbolBracketsWire(TypedDict):
    symbol: str
    brackets: list[BracketWire]
    notionalCoef: NotRequired[float]


class ErrorWire(TypedDict):
    code: int
    msg: str

"""Domain events: what every venue parser emits and the state store applies.

Frozen, slotted, with our names (venue wire names stay inside each venue module). Prices and
quantities are float64, parsed once at the edge. Times are venue event times in milliseconds
since the epoch (``event_ms``); the driver stamps receive times separately. ``None`` means
"unknown", never zero.

Keys: instruments are ``(venue, symbol)``; accounts are ``(venue, account)`` where ``account`` is
the name the user gave the account in the config (never an API key).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rules.model import MarginModel
from rules.types import ContractKind, MarginMode, Side


@dataclass(frozen=True, slots=True)
class MarkPrice:
    venue: str
    symbol: str
    mark: float
    event_ms: int
    index: float | None = None


class MarkQuote(Protocol):
    """One mark in a :class:`MarkRun`: what the store needs of a mark, read-only.

    :class:`MarkPrice` is one; a venue's hot-path decoder may hand over its own decoded objects
    instead of building a ``MarkPrice`` per mark (the Binance connector does).
    """

    @property
    def symbol(self) -> str: ...
    @property
    def mark(self) -> float: ...
    @property
    def event_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class MarkRun:
    """Mark prices of one venue in arrival order, applied as one batch.

    Equivalent to ``MarkPrice(venue, q.symbol, q.mark, q.event_ms)`` for each quote in order
    (:meth:`marks`), without the object per mark: a market feed's batch of frames decodes to
    one of these. Every ``mark`` is finite and positive (the decoder's contract).
    """

    venue: str
    quotes: Sequence[MarkQuote]

    def marks(self) -> list[MarkPrice]:
        venue = self.venue
        return [MarkPrice(venue, q.symbol, q.mark, q.event_ms) for q in self.quotes]

    def newer_than(self, snapshot_ms: int) -> MarkRun | None:
        """The quotes after ``snapshot_ms`` (a resync keeps only pushes newer than its
        snapshot), or ``None`` if none is."""
        kept = [q for q in self.quotes if q.event_ms > snapshot_ms]
        if len(kept) == len(self.quotes):
            return self
        return MarkRun(self.venue, kept) if kept else None


@dataclass(frozen=True, slots=True)
class AssetPrice:
    """USD value of one unit of a collateral asset (for multi-asset collateral)."""

    venue: str
    asset: str
    price: float
    event_ms: int


@dataclass(frozen=True, slots=True)
class Instrument:
    """Static contract facts; must precede positions on the symbol (snapshots carry them)."""

    venue: str
    symbol: str
    kind: ContractKind
    contract_size: float
    settle_asset: str


@dataclass(frozen=True, slots=True)
class TierTableUpdate:
    """A margin model for a symbol; ``account`` set for per-account tables (Binance brackets)."""

    venue: str
    symbol: str
    model: MarginModel
    account: str | None = None
    event_ms: int = 0


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """The absolute state of one position leg (replaces it; ``qty == 0`` closes it)."""

    venue: str
    account: str
    symbol: str
    side: Side
    qty: float
    entry_price: float
    event_ms: int
    margin_mode: MarginMode = MarginMode.CROSS
    leverage: float | None = None
    isolated_margin: float | None = None


@dataclass(frozen=True, slots=True)
class PositionFill:
    """A fill that changes a position by ``qty_delta`` (signed) at ``price``."""

    venue: str
    account: str
    symbol: str
    side: Side
    qty_delta: float
    price: float
    event_ms: int
    liquidation: bool = False
    adl: bool = False
    realized_pnl: float | None = None
    position_pushed: bool = False
    """True when the venue also pushes the resulting absolute position in its own event
    (Binance ``ACCOUNT_UPDATE``): the store must NOT apply ``qty_delta`` then (it would count
    the fill twice); the fill still drives liquidation/ADL alerts and realised PnL."""
    order_id: str | None = None
    """The venue's order id (Binance ``o.i``), as text; ``None`` when the venue gives none."""
    trade_id: str | None = None
    """The venue's trade id (Binance ``o.t``), as text: with ``order_id``, unique per fill, so
    alerts derived from a fill (``position_liquidated``) get distinct ids."""


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    """Absolute wallet balance of one asset (cross wallet for cross accounts)."""

    venue: str
    account: str
    asset: str
    wallet_balance: float
    event_ms: int


@dataclass(frozen=True, slots=True)
class LeverageUpdate:
    venue: str
    account: str
    symbol: str
    leverage: float
    event_ms: int


@dataclass(frozen=True, slots=True)
class CollateralModeUpdate:
    """Multi-assets (haircut collateral) mode switched on or off."""

    venue: str
    account: str
    multi_asset: bool
    event_ms: int


@dataclass(frozen=True, slots=True)
class VenueFigures:
    """Figures the venue itself reported at ``event_ms``, for the model-drift check."""

    total_maintenance_margin: float | None
    position_maintenance_margin: Mapping[tuple[str, Side], float] = field(default_factory=dict)
    total_margin_balance: float | None = None
    mark_prices: Mapping[str, float] = field(default_factory=dict)
    """The marks (by symbol) the venue used for these figures, so the drift check can compute
    our MM at the same instant instead of at the live marks."""


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """A full account state from a REST snapshot: replaces everything the store held for it."""

    venue: str
    account: str
    balances: Mapping[str, float]
    positions: tuple[PositionSnapshot, ...]
    event_ms: int
    collateral_ratios: Mapping[str, float] = field(default_factory=dict)
    multi_asset: bool = False
    reported: VenueFigures | None = None


@dataclass(frozen=True, slots=True)
class MarginCallPosition:
    symbol: str
    side: Side
    qty: float
    mark: float
    maintenance_margin: float
    upnl: float


@dataclass(frozen=True, slots=True)
class MarginCall:
    """The venue's own margin call: relayed as an alert, never used as state."""

    venue: str
    account: str
    event_ms: int
    positions: tuple[MarginCallPosition, ...]
    cross_wallet_balance: float | None = None


class FeedState(enum.Enum):
    CONNECTED = "connected"
    STALE = "stale"
    RESYNCED = "resynced"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """Emitted by the driver, not by parsers: a feed's health changed."""

    venue: str
    feed: str
    state: FeedState
    event_ms: int
    account: str | None = None


@dataclass(frozen=True, slots=True)
class RestBan:
    """Emitted by the driver, not by parsers: the venue banned our IP from its REST API (Binance
    HTTP 418) from ``since_ms`` until ``until_ms``. No snapshot or resync of any feed of the venue
    can run until then; streams stay up. Each feed of the venue reports the ban it meets once:
    ``(venue, since_ms)`` names one ban, however many feeds report it."""

    venue: str
    feed: str
    since_ms: int
    until_ms: int
    event_ms: int
    account: str | None = None


@dataclass(frozen=True, slots=True)
class StreamExpired:
    """Session control: the private stream's credential expired (Binance ``listenKeyExpired``).

    The driver reacts (new key, full resync); the store ignores it.
    """

    venue: str
    account: str
    event_ms: int


Event = (
    MarkPrice
    | MarkRun
    | AssetPrice
    | Instrument
    | TierTableUpdate
    | PositionSnapshot
    | PositionFill
    | BalanceUpdate
    | LeverageUpdate
    | CollateralModeUpdate
    | AccountSnapshot
    | MarginCall
    | FeedStatus
    | RestBan
    | StreamExpired
)

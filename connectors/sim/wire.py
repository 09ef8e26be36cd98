"""Wire shapes of the simulated venue ``sim``: msgspec ``Struct``s with the venue's field names.

Frames are decoded once, from their bytes, into these types (see :mod:`.protocol`). Events form
a tagged union on ``e``. Names and event times carry the shared bounds of
:mod:`connectors.bounds` (a non-empty name, a time inside the plausible window), so a frame
outside them is refused by the decode (``bad_type``). Decimals are strings, converted with
``float()`` by the parser, which checks the same bounds (``bad_price`` or ``bad_value``);
enumerations (``ps``, ``mt``, ``kind``) are strings the parser looks up. Unknown fields are
skipped.
"""

from __future__ import annotations

from msgspec import Struct

from connectors.bounds import EventMs, Name

Tier = tuple[str, str, str, str]
"""One tier of a ``GET /marks`` instrument: floor, cap, MMR, max leverage (decimal strings)."""


class _Event(Struct, tag_field="e", frozen=True, gc=False):
    """Base of every event: ``e`` is the event name. Immutable, never in a cycle: no GC."""


class Mark(_Event, tag="mark", frozen=True):
    """``{"e":"mark","s":"BTC-PERP","p":"60000.5","i":"60001.2","E":…}``: a mark price."""

    s: Name
    """Symbol (non-empty)."""
    p: str
    """Mark price: finite, > 0."""
    E: EventMs
    """Event time, ms (inside the plausible window)."""
    i: str | None = None
    """Index price, when the venue sends one: finite, > 0."""


class PositionRow(Struct, frozen=True, gc=False):
    """One position leg, absolute: in a ``position`` event and in an account snapshot."""

    s: Name
    """Symbol (non-empty)."""
    ps: str
    """Position side: ``BOTH`` | ``LONG`` | ``SHORT``."""
    q: str
    """Quantity, signed."""
    ep: str
    """Entry price (> 0 for an open leg; a closed one may say 0)."""
    mt: str
    """Margin type: ``cross`` | ``isolated``."""
    lev: str | None = None
    """Leverage, when set."""
    im: str | None = None
    """Isolated margin, for an isolated leg."""


class Position(PositionRow, _Event, tag="position", frozen=True, kw_only=True):
    """``{"e":"position","a":"alice",<PositionRow>,"E":…}``: a leg's new state."""

    a: Name
    """Account name (non-empty)."""
    E: EventMs
    """Event time, ms (inside the plausible window)."""


class Balance(_Event, tag="balance", frozen=True):
    """``{"e":"balance","a":"alice","c":"USDT","wb":"10000","E":…}``: a wallet balance."""

    a: Name
    """Account name (non-empty)."""
    c: Name
    """Asset (non-empty)."""
    wb: str
    """Wallet balance: finite."""
    E: EventMs
    """Event time, ms (inside the plausible window)."""


class StreamExpired(_Event, tag="streamExpired", frozen=True):
    """``{"e":"streamExpired","a":"alice","E":…}``: the private stream's key is dead."""

    a: Name
    """Account name (non-empty)."""
    E: EventMs
    """Event time, ms (inside the plausible window)."""


class Subscribed(_Event, tag="subscribed", frozen=True):
    """Acknowledges ``{"op":"subscribe"}``: no events."""


class Pong(_Event, tag="pong", frozen=True):
    """Answers ``{"op":"ping"}``: no events."""


AnyEvent = Mark | Position | Balance | StreamExpired | Subscribed | Pong


class _NotAMark(_Event, frozen=True):
    """Another event where a batch holds marks only: recognised by name alone (so that it is
    refused as ``unknown_event``, as it always has been, whatever its fields)."""


class _PositionInBatch(_NotAMark, tag="position", frozen=True): ...


class _BalanceInBatch(_NotAMark, tag="balance", frozen=True): ...


class _StreamExpiredInBatch(_NotAMark, tag="streamExpired", frozen=True): ...


class _SubscribedInBatch(_NotAMark, tag="subscribed", frozen=True): ...


class _PongInBatch(_NotAMark, tag="pong", frozen=True): ...


BatchItem = (
    Mark
    | _PositionInBatch
    | _BalanceInBatch
    | _StreamExpiredInBatch
    | _SubscribedInBatch
    | _PongInBatch
)
"""An item of a batch, tagged (a union's members must carry ``e``: an item without it has
never passed for a mark)."""
Frame = AnyEvent | list[BatchItem]
"""A websocket frame: one event, or a batch of marks."""


# --- REST bodies ----------------------------------------------------------------------------------


class InstrumentRow(Struct, frozen=True, gc=False):
    """One instrument of ``GET /marks``."""

    s: Name
    """Symbol (non-empty)."""
    kind: str
    """``linear`` | ``inverse``."""
    cs: str
    """Contract size: finite, > 0."""
    settle: Name
    """Settlement asset (non-empty)."""
    p: str
    """Mark price: finite, > 0."""
    tiers: list[Tier]
    """The maintenance-margin tiers, lowest first."""


class MarksSnapshot(Struct, frozen=True, gc=False):
    """``GET /marks``: every instrument with its tiers and mark."""

    E: EventMs
    """Venue time, ms (inside the plausible window)."""
    instruments: list[InstrumentRow]
    """Every instrument the venue lists."""


class AccountSnapshot(Struct, frozen=True, gc=False):
    """``GET /snapshot?account=``: an account's whole state."""

    a: Name
    """Account name (non-empty)."""
    E: EventMs
    """Venue time, ms (inside the plausible window)."""
    balances: dict[Name, str]
    """Wallet balance per asset (finite decimals)."""
    positions: list[PositionRow]
    """Every open (or just closed) leg."""


class ListenKey(Struct, frozen=True, gc=False):
    """``GET /listenKey?account=``."""

    listenKey: str  # noqa: N815 (the venue's field name)
    """The key for ``/private?key=`` (non-empty)."""

"""Pure parsers for Binance USDⓈ-M and COIN-M websocket frames: bytes in, domain events out.

Each frame is decoded once, from its bytes, by msgspec into the typed shapes of :mod:`.wire`
(events are a tagged union on ``e``); one table, :data:`.handlers.HANDLERS`, maps each event
type to the function that turns it into domain events. Nothing here touches a socket, a clock
or the store.
Anything we cannot decode raises :class:`~connectors.errors.VenueDataError` with a bounded
``reason``:

``bad_json``, ``bad_shape`` (not an object/array where one is needed), ``missing_field``,
``bad_value`` (a number or enum we cannot read), ``unknown_event``, ``venue_error`` (an
``{"code":…, "msg":…}`` reply), ``user_event_without_account``. A frame with several faults is
refused for the first one msgspec meets, in document order, before the handlers' own checks.

Two routes, one schema. :func:`parse_frame` (and :func:`parse_frame_into`) is the plain path:
a mark becomes a :class:`~connectors.events.MarkPrice`. :func:`parse_many` on a market stream
is the hot path's kernel (mark prices are nearly all of a market connection's traffic): the
same decode, but the decoded :class:`~.wire.MarkQuote` structs are handed over as they are, in
one :class:`~connectors.events.MarkRun` per batch, instead of an event object per mark (its
schema differs only in leaving out the index price, which a run does not carry). The tests hold
the two to the same marks and the same rejections.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from msgspec import UnsetType

from connectors.binance import wire
from connectors.binance.handlers import handled
from connectors.errors import VenueDataError
from connectors.events import Event, MarkRun

USDM_VENUE = "binance-usdm"

# --- decoding: once, from bytes -------------------------------------------------------------------

# Lax mode: see wire.py (it reads the mark's string E and p; every other field keeps strings).
_MARKET = msgspec.json.Decoder(wire.MarketFrame, strict=False).decode
_KERNEL = msgspec.json.Decoder(wire.KernelFrame, strict=False).decode
_USER = msgspec.json.Decoder(wire.UserFrame, strict=False).decode
_EVENT = msgspec.json.Decoder(wire.AnyEvent, strict=False).decode
_ValidationError = msgspec.ValidationError
# What msgspec raises on bytes it cannot read: DecodeError, but also UnicodeDecodeError for
# invalid UTF-8 in a string it builds and RecursionError for nesting deeper than it follows.
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_MISSING = "Object missing required field `"
_NO_EVENT_NAME = _MISSING + "e`"

Decoded = wire.Envelope[wire.KernelEvent] | wire.KernelEvent | list[msgspec.Raw]
"""A decoded frame (``KernelEvent`` covers both paths' events: a ``MarkUpdate`` is a quote)."""


def _decode(frame: bytes | str, venue: str, account: str | None) -> Decoded:
    """One frame, decoded once by the shape its connection sends: a market connection sends
    envelopes and replies, a user-data one raw events. A frame of the other shape (tests,
    ``marginwatch decode`` of mixed captures) is recognised by the first decode and decoded
    as what it is."""
    try:
        if account is None:
            doc: Decoded = _MARKET(frame)
            if (
                type(doc) is wire.Envelope
                and doc.data is msgspec.UNSET
                and doc.e is not msgspec.UNSET
            ):
                return _EVENT(frame)  # a raw event
            return doc
        try:
            return _USER(frame)
        except _ValidationError as exc:
            if str(exc) != _NO_EVENT_NAME:
                raise
        return _MARKET(frame)  # no "e": an envelope or a reply
    except _ValidationError as exc:
        raise rejection(exc, venue) from exc
    except _UNREADABLE as exc:
        raise VenueDataError(venue, "bad_json") from exc


def rejection(exc: msgspec.ValidationError, venue: str) -> VenueDataError:
    """The bounded reason for what msgspec refused (its message names the rule and the path)."""
    text, _, where = str(exc).partition(" - at `")
    path = where[:-1] or "$"
    if text.startswith(_MISSING):
        name = text[len(_MISSING) : -1]
        if name == "e":
            return VenueDataError(venue, "unknown_event")
        return VenueDataError(venue, "missing_field", repr(name)[:40])
    if path.endswith(".e") and (text.startswith("Invalid value") or text == "Expected `str`"):
        return VenueDataError(venue, "unknown_event")  # the tag: not an event we know
    if text.startswith("Expected `object") and path in ("$", "$.data"):
        return VenueDataError(venue, "bad_shape")
    return VenueDataError(venue, "bad_value")


# --- frames: the plain path and the batch kernel --------------------------------------------------


def _emit(
    doc: Decoded,
    venue: str,
    account: str | None,
    out: list[Event],
    errors: list[VenueDataError],
    *,
    quotes: list[wire.MarkQuote] | None,
) -> None:
    """The events of one decoded frame, appended to ``out``; rejections to ``errors``.

    A non-array frame is all or nothing (one error, no events). An array is per item: one bad
    mark (``p`` "0" for a settling symbol, say) must not blind the whole venue for a second.
    With ``quotes`` (the kernel), marks are collected there instead of becoming ``MarkPrice``s,
    and any other event first closes the run collected so far, so that order is kept.
    """
    data: Decoded | UnsetType
    if type(doc) is wire.Envelope:
        data = doc.data
        if data is msgspec.UNSET:  # a reply to one of our requests
            if doc.result is not msgspec.UNSET and doc.id is not msgspec.UNSET:
                return  # {"result":…, "id":…} acknowledges; no events
            if doc.code is not msgspec.UNSET:
                errors.append(VenueDataError(venue, "venue_error", str(doc.code)[:12]))
            else:
                errors.append(VenueDataError(venue, "unknown_event"))
            return
    else:
        data = doc
    if isinstance(data, list):
        for item in data:
            try:
                event = _EVENT(item)
            except _ValidationError as exc:
                errors.append(rejection(exc, venue))
                continue
            except _UNREADABLE:
                errors.append(VenueDataError(venue, "bad_json"))
                continue
            _one(event, venue, account, out, errors, quotes=quotes)
        return
    _one(data, venue, account, out, errors, quotes=quotes)


def _one(
    event: object,
    venue: str,
    account: str | None,
    out: list[Event],
    errors: list[VenueDataError],
    *,
    quotes: list[wire.MarkQuote] | None,
) -> None:
    if quotes is not None and isinstance(event, wire.MarkQuote):
        quotes.append(event)
        return
    try:
        events = handled(event, venue, account)
    except VenueDataError as exc:
        errors.append(exc)
        return
    if events:
        if quotes:
            out.append(MarkRun(venue, quotes[:]))
            quotes.clear()
        out += events


def parse_frame_into(
    frame: bytes | str,
    venue: str,
    account: str | None,
    out: list[Event],
    errors: list[VenueDataError],
) -> None:
    """Decode one frame, appending its events to ``out`` and its rejections to ``errors``."""
    try:
        doc = _decode(frame, venue, account)
    except VenueDataError as exc:
        errors.append(exc)
        return
    _emit(doc, venue, account, out, errors, quotes=None)


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

    The kernel. On a market stream (``account`` None) the marks of the batch are handed over
    as one :class:`~connectors.events.MarkRun` of the decoded structs (a run is closed early
    only where another event must keep its place). Each frame is decoded once, by the plain
    path's schema less the index price (which never decides a verdict, so a frame is accepted
    or refused, and why, alike); what is not a single enveloped mark (the usual frame) takes
    the plain path's judgement of that decoded frame.
    """
    errors: list[VenueDataError] = []
    if account is not None:
        for frame in frames:
            parse_frame_into(frame, venue, account, out, errors)
        return errors
    quotes: list[wire.MarkQuote] = []
    decode, envelope, mark = _KERNEL, wire.Envelope, wire.MarkQuote
    doc: Decoded
    for frame in frames:
        try:
            doc = decode(frame)
            if type(doc) is envelope:
                data = doc.data
                if type(data) is mark:
                    quotes.append(data)
                    continue
                if data is msgspec.UNSET and doc.e is not msgspec.UNSET:
                    doc = _EVENT(frame)  # a raw event (as in _decode)
        except _ValidationError as exc:
            errors.append(rejection(exc, venue))
            continue
        except _UNREADABLE:
            errors.append(VenueDataError(venue, "bad_json"))
            continue
        _emit(doc, venue, None, out, errors, quotes=quotes)
    if quotes:
        out.append(MarkRun(venue, quotes))
    return errors


def parse_market(frame: bytes | str, venue: str = USDM_VENUE) -> list[Event]:
    """Mark-price frames (single, ``!markPrice@arr`` arrays, raw or combined) → events."""
    return parse_frame(frame, venue, None)


def parse_user(frame: bytes | str, venue: str, account: str) -> list[Event]:
    """User-data frames of one account → events (positions, balances, fills, alerts, control)."""
    return parse_frame(frame, venue, account)


def parse_any(frame: bytes | str, venue: str = USDM_VENUE, account: str = "decode") -> list[Event]:
    """Either kind of frame, for offline decoding (``marginwatch decode``) of mixed captures."""
    return parse_frame(frame, venue, account)

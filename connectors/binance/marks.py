"""``markPriceUpdate``: one schema for every mark Binance sends, and the batch decoder.

Mark prices are nearly all of a market connection's traffic (one frame per symbol per second,
or every symbol in one ``!markPrice@arr`` frame), so their decoding is the hot path. Generic
JSON decoding builds a dict, a key and a value object for all ten fields of each update only
for us to read three; here a typed schema (:class:`MarkUpdate`) is decoded straight from the
frame's bytes by msgspec, which validates the whole frame as JSON but materialises only the
fields named below, already converted and range-checked. A batch of frames is decoded in one
call (:func:`decode_batch`).

The same schema judges marks on the general path too (:func:`from_payload`, used on objects
orjson decoded), so a mark is accepted, and decodes to the same values, whichever path it
takes; the tests hold the two paths to each other.

Accepted: ``E`` an integer (or an integral number or numeric string: msgspec's lax mode,
which the docs' string-``E`` examples need), ``p`` a decimal string or number that is finite
and > 0. A mark is judged on what the monitor uses; every other field (``i``, ``P``, ``r``,
``ap``, ``T``, ``st`` and whatever Binance adds next) is validated as JSON and skipped. The index
price ``i`` is shown by ``marginwatch decode`` (:func:`index_of`) but moves nothing, so it is
not built for the hot path and an unreadable one reads as absent rather than costing the mark.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec

from connectors.binance import wire

_MAX = sys.float_info.max
_MISSING = "Object missing required field"


class MarkUpdate(
    msgspec.Struct,
    frozen=True,
    gc=False,  # flat, immutable, never in a cycle: keep the collector off them
    rename={"kind": "e", "event_ms": "E", "symbol": "s", "mark": "p"},
):
    """One ``markPriceUpdate``, with our field names (a :class:`~connectors.events.MarkQuote`)."""

    kind: Literal["markPriceUpdate"]
    event_ms: Annotated[int, msgspec.Meta(ge=0)]
    symbol: str
    mark: Annotated[float, msgspec.Meta(gt=0.0, le=_MAX)]  # > 0 and finite (nan fails gt)


_Finite = Annotated[float, msgspec.Meta(ge=-_MAX, le=_MAX)]


class _One(msgspec.Struct, gc=False):
    data: MarkUpdate  # combined-stream envelope of one symbol's stream


class _Any(msgspec.Struct, gc=False):
    data: MarkUpdate | list[MarkUpdate]  # ... or of !markPrice@arr


# Each frame is decoded as the one item of an array (see decode_batch).
_ONE = msgspec.json.Decoder(tuple[_One], strict=False)
_ANY = msgspec.json.Decoder(tuple[_Any], strict=False)
_SEP = b"]\n["
# What msgspec raises on frames it cannot read: DecodeError (and ValidationError), but also
# UnicodeDecodeError for invalid UTF-8 in a string it builds and RecursionError for nesting
# deeper than it follows. Any of them sends the batch frame by frame, where each is judged.
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_CONVERT = msgspec.convert
assert wire.MARK_PRICE_UPDATE == "markPriceUpdate"  # the Literal above must name the event


def decode_batch(frames: Sequence[bytes]) -> list[MarkUpdate] | None:
    """The marks of a batch of combined-stream mark frames, in order; ``None`` unless every
    frame is one (the caller then decodes frame by frame, which judges and counts each).

    The batch is decoded in one call as ``[f1]\n[f2]\n…[fn]``, each document a one-item array.
    That is exact, not merely likely: the line decoder reads documents one after another, with
    newlines as mere whitespace, so frames could otherwise merge into one document or split into
    two. Here every ``]\n[`` between frames ends a document: a ``]`` inside a string would put
    a raw newline in it (invalid JSON), one closing an inner array would be followed by ``[``
    where only ``,``, ``]`` or ``}`` may stand. So each frame yields at least one document
    (its text starts one with ``[``), and n documents mean exactly one per frame, ``[frame]``:
    the frame is one complete JSON value. No scan of the frames is needed.
    """
    n = len(frames)
    if n == 0:
        return []
    parts = list(frames)  # brackets added to the end frames only: no second copy of the batch
    try:
        parts[0] = b"[" + parts[0]
        parts[-1] = parts[-1] + b"]"  # not +=: a bytearray frame would change in place
        buf = _SEP.join(parts)
    except TypeError:  # str frames (tests, offline tools): the frame-by-frame path
        return None
    try:
        docs: list[Any] = _ONE.decode_lines(buf)
    except _UNREADABLE:  # incl. ValidationError: an array, a bad mark, not a mark...
        try:
            docs = _ANY.decode_lines(buf)
        except _UNREADABLE:
            return None
        if len(docs) != n:
            return None
        out: list[MarkUpdate] = []
        for (doc,) in docs:
            data: MarkUpdate | list[MarkUpdate] = doc.data
            if isinstance(data, list):
                out += data
            else:
                out.append(data)
        return out
    if len(docs) != n:
        return None
    return [doc.data for (doc,) in docs]


def from_payload(payload: dict[str, Any]) -> MarkUpdate:
    """Judge one decoded ``markPriceUpdate`` object by the same schema. Raises ``KeyError``
    (a required field is missing) or ``ValueError`` (a field we cannot read)."""
    try:
        return _CONVERT(payload, MarkUpdate, strict=False)
    except msgspec.ValidationError as exc:
        if str(exc).startswith(_MISSING):
            raise KeyError(str(exc).rpartition("`")[0].rpartition("`")[2]) from exc
        raise


def index_of(payload: dict[str, Any]) -> float | None:
    """The update's index price ``i`` when it reads as a finite number (the same lax reading
    as ``p``); else ``None``: informational only, it never decides whether the mark is kept."""
    value = payload.get("i")
    if value is None:
        return None
    try:
        return _CONVERT(value, _Finite, strict=False)
    except msgspec.ValidationError:
        return None

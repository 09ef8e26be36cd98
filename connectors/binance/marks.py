"""``markPriceUpdate``: one schema for every mark Binance sends, and the batch decoder.

Mark prices are nearly all of a market connection's traffic (one frame per symbol per second,
or every symbol in one ``!markPrice@arr`` frame), so their decoding is the hot path. Generic
JSON decoding builds a dict, a key and a value object for all ten fields of each update only
for us to read three; here a typed schema (:class:`MarkUpdate`) is decoded straight from the
frame's bytes by msgspec, which validates the whole frame as JSON but materialises only the
fields named below, already converted and range-checked. A batch of frames is decoded in one
call (:func:`decode_batch`), one document per line.

The same schema judges marks on the general path too (:func:`from_payload`, used on objects
orjson decoded), so a mark is accepted, and decodes to the same values, whichever path it
takes; the tests hold the two paths to each other.

Accepted: ``E`` an integer (or an integral number or numeric string: msgspec's lax mode,
which the docs' string-``E`` examples need), ``p`` a decimal string or number that is finite
and > 0, ``i`` absent, null, or finite. Unknown fields (``P``, ``r``, ``ap``, ``T``, ``st``
and whatever Binance adds next) are validated as JSON and skipped.
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
    rename={"kind": "e", "event_ms": "E", "symbol": "s", "mark": "p", "index": "i"},
):
    """One ``markPriceUpdate``, with our field names (a :class:`~connectors.events.MarkQuote`)."""

    kind: Literal["markPriceUpdate"]
    event_ms: Annotated[int, msgspec.Meta(ge=0)]
    symbol: str
    mark: Annotated[float, msgspec.Meta(gt=0.0, le=_MAX)]  # > 0 and finite (nan fails gt)
    index: Annotated[float, msgspec.Meta(ge=-_MAX, le=_MAX)] | None = None


class _One(msgspec.Struct, gc=False):
    data: MarkUpdate  # combined-stream envelope of one symbol's stream


class _Any(msgspec.Struct, gc=False):
    data: MarkUpdate | list[MarkUpdate]  # ... or of !markPrice@arr


_ONE = msgspec.json.Decoder(_One, strict=False)
_ANY = msgspec.json.Decoder(_Any, strict=False)
_CONVERT = msgspec.convert
assert wire.MARK_PRICE_UPDATE == "markPriceUpdate"  # the Literal above must name the event


def decode_batch(frames: Sequence[bytes]) -> list[MarkUpdate] | None:
    """The marks of a batch of combined-stream mark frames, in order; ``None`` unless every
    frame is one (the caller then decodes frame by frame, which judges and counts each).

    Frames are joined one per line and decoded in one call. That is exact, not merely likely:
    a frame holding a newline (JSON allows one between tokens) would change the line count,
    and an empty line (skipped by the line decoder) the document count; both are checked, so
    each document is exactly one frame.
    """
    n = len(frames)
    if n == 0:
        return []
    try:
        buf = b"\n".join(frames)
    except TypeError:  # str frames (tests, offline tools): the frame-by-frame path
        return None
    if buf.count(b"\n") != n - 1:
        return None
    try:
        docs: list[Any] = _ONE.decode_lines(buf)
    except msgspec.DecodeError:  # incl. ValidationError: an array, a bad mark, not a mark...
        try:
            docs = _ANY.decode_lines(buf)
        except msgspec.DecodeError:
            return None
        if len(docs) != n:
            return None
        out: list[MarkUpdate] = []
        for doc in docs:
            data: MarkUpdate | list[MarkUpdate] = doc.data
            if isinstance(data, list):
                out += data
            else:
                out.append(data)
        return out
    if len(docs) != n:
        return None
    return [doc.data for doc in docs]


def from_payload(payload: dict[str, Any]) -> MarkUpdate:
    """Judge one decoded ``markPriceUpdate`` object by the same schema. Raises ``KeyError``
    (a required field is missing) or ``ValueError`` (a field we cannot read)."""
    try:
        return _CONVERT(payload, MarkUpdate, strict=False)
    except msgspec.ValidationError as exc:
        if str(exc).startswith(_MISSING):
            raise KeyError(str(exc).rpartition("`")[0].rpartition("`")[2]) from exc
        raise

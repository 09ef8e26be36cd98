"""``marginwatch decode --venue VENUE FILE|-``: raw venue frames in, domain events out.

Input is one frame per line, or a whole file that is a single JSON document (one frame; a JSON
array is one array frame, e.g. Binance ``!markPrice@arr``). Each event prints as one JSON line
``{"type": <event class>, <field>: <value>, ...}`` with enums as their values. A frame that does
not decode prints ``line N: <reason>`` on stderr; the exit status is then 1. Every venue in
:mod:`connectors.venues` is accepted.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from connectors import venues
from connectors.errors import VenueDataError
from connectors.events import Event
from connectors.venues import FrameParser
from monitor.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--venue",
        required=True,
        help=f"venue whose frames FILE holds ({', '.join(sorted(venues.parser_keys()))})",
    )
    parser.add_argument("file", metavar="FILE", help="file of raw frames, or - for stdin")


def _default(value: object) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {_key(k): v for k, v in value.items()}
    return repr(value)  # e.g. a margin model object: named, not serialised


def _key(key: object) -> str:
    if isinstance(key, tuple):
        return "/".join(str(_default(k) if isinstance(k, enum.Enum) else k) for k in key)
    return str(key)


def event_json(event: Event) -> bytes:
    """One event as a JSON object with its class name under ``type``.

    orjson refuses integers beyond 64 bits; the standard library writes them exactly, so a frame
    carrying one still shows what it decoded to.
    """
    doc: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        doc[f.name] = getattr(event, f.name)
    try:
        return orjson.dumps(doc, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(_plain(doc), separators=(",", ":"), default=_default).encode()


def _plain(value: object) -> object:
    """``value`` with non-string mapping keys named as :func:`_key` names them."""
    if isinstance(value, Mapping):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def frames(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, frame): the whole input if it is one JSON document, else each line.

    Lines end at ``\n`` only (a bare ``\r`` inside a frame is part of it), so ``line N`` is what
    ``sed -n Np`` shows.
    """
    stripped = data.strip()
    if not stripped:
        return
    try:
        orjson.loads(stripped)
    except orjson.JSONDecodeError:
        pass
    else:
        yield 1, stripped
        return
    for n, line in enumerate(data.split(b"\n"), start=1):
        if line.strip():
            yield n, line.rstrip(b"\r")


def _read(path: str) -> bytes:
    if path == "-":
        stream: BinaryIO = sys.stdin.buffer
        return stream.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from exc


def _decode_line(parse: FrameParser, frame: bytes, out: BinaryIO) -> str | None:
    """Write the frame's events as JSON lines; the reason it failed, else ``None``.

    Any exception is an answer for this line, never the end of the run: the rest of the file
    still decodes. A parser that raises anything but ``VenueDataError`` has a bug, said as such.
    """
    try:
        lines = [event_json(event) for event in parse(frame)]
    except VenueDataError as exc:
        return exc.reason + (f" ({exc.detail})" if exc.detail else "")
    except RecursionError:
        return "too_deep (nesting beyond what the parser follows)"
    except Exception as exc:  # noqa: BLE001 - one bad line is reported, the run goes on
        return f"parser_error ({type(exc).__name__}: a bug; please report the frame)"
    for line in lines:
        out.write(line + b"\n")
    return None


def run(args: argparse.Namespace) -> int:
    try:
        parse = venues.frame_parser(args.venue)
    except KeyError:
        known = ", ".join(sorted(venues.parser_keys()))
        raise UsageError(f"--venue: unknown venue {args.venue!r} (known: {known})") from None
    except ImportError:
        raise UsageError(f"--venue: {args.venue}: parser not available in this build") from None
    data = _read(args.file)
    out = sys.stdout.buffer
    failed = 0
    for n, frame in frames(data):
        reason = _decode_line(parse, frame, out)
        if reason is not None:
            failed += 1
            print(f"line {n}: {reason}", file=sys.stderr)
    out.flush()
    return 1 if failed else 0

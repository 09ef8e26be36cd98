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
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from connectors import venues
from connectors.errors import VenueDataError
from connectors.events import Event
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
    """One event as a JSON object with its class name under ``type``."""
    doc: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        doc[f.name] = getattr(event, f.name)
    return orjson.dumps(doc, default=_default, option=orjson.OPT_NON_STR_KEYS)


def frames(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, frame): the whole input if it is one JSON document, else each line."""
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
    for n, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            yield n, line


def _read(path: str) -> bytes:
    if path == "-":
        stream: BinaryIO = sys.stdin.buffer
        return stream.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from exc


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
        try:
            events = parse(frame)
        except VenueDataError as exc:
            failed += 1
            detail = f" ({exc.detail})" if exc.detail else ""
            print(f"line {n}: {exc.reason}{detail}", file=sys.stderr)
            continue
        for event in events:
            out.write(event_json(event) + b"\n")
    out.flush()
    return 1 if failed else 0

"""How a config error reads: one line naming the file and the key, in the file's own terms.

    deploy/marginwatch.toml: [daemon].htp: unknown key (did you mean 'http'?)
    deploy/marginwatch.toml: accounts[1].stale_after_s: expected a number, got string

A key in a table reached from the top by names is shown under the table's header, as the
operator wrote it (``[sinks.kafka].spool``); inside an array of tables it is shown by index
(``accounts[0].alerts.warnng``), since ``[accounts.alerts]`` would not say which one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
from collections.abc import Iterable, Sequence

from monitor.errors import UsageError

#: A position in the parsed TOML document: table keys and array indexes from the top.
Segments = Sequence[str | int]


def toml_type_name(value: object) -> str:
    """The TOML name of a parsed value's type, as a user would call it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return "datetime"
    return type(value).__name__


def shown(text: str) -> str:
    """``text`` as it may appear in a one-line message: as is when printable, else quoted with
    escapes (a quoted TOML key or a name may hold a newline)."""
    return text if text.isprintable() else json.dumps(text)


def table_path(segments: Segments) -> str:
    """A table's name: ``[sinks.kafka]`` from the top, ``accounts[0].alerts`` inside an array."""
    if not segments:
        return ""
    if any(isinstance(s, int) for s in segments):
        return _dotted(segments)
    return "[" + ".".join(shown(str(s)) for s in segments) + "]"


def key_path(segments: Segments) -> str:
    """A key's name: ``[daemon].http``, ``accounts[0].name``; a top-level key is bare."""
    if len(segments) <= 1 or any(isinstance(s, int) for s in segments):
        return _dotted(segments)
    return f"{table_path(segments[:-1])}.{shown(str(segments[-1]))}"


def _dotted(segments: Segments) -> str:
    out = ""
    for s in segments:
        out += f"[{s}]" if isinstance(s, int) else (f".{shown(s)}" if out else shown(s))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Where:
    """A table in the config file, rendered into every error message about its keys."""

    file: str
    path: str  # "[daemon]", "accounts[1]", "accounts.alice.alerts", "" for the top

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | None, message: str) -> UsageError:
        where = self.path if key is None else self.key(key)
        return UsageError(f"{self.file}: {where}: {message}")

    def child(self, key: str) -> Where:
        return Where(self.file, self.key(key))


def did_you_mean(value: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'http'?)`` for the closest candidate, or nothing when none is close."""
    close = difflib.get_close_matches(value, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_key(value: str, candidates: Iterable[str]) -> str:
    return f"unknown key{did_you_mean(value, candidates)}"


def not_one_of(value: object, choices: Sequence[str]) -> str:
    """``must be one of 'a', 'b', got 'c' (did you mean 'a'?)``."""
    options = ", ".join(repr(c) for c in choices)
    hint = did_you_mean(value, choices) if isinstance(value, str) else ""
    return f"must be one of {options}, got {value!r}{hint}"

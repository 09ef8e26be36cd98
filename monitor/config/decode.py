"""Parsed TOML -> :class:`RawConfig` in one ``msgspec.convert``, errors in the file's own terms.

msgspec reports the first problem as ``Object contains unknown field `htp` - at `$.daemon```;
:func:`decode` turns that into ``FILE: [daemon].htp: unknown key (did you mean 'http'?)``. The
path says where; the schema (walked with ``msgspec.inspect``) says which keys and choices were
possible there; the parsed document says what the file actually holds there (so a message can
quote the value, and name its TOML type the way the operator would).
"""

from __future__ import annotations

import enum
import operator
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import msgspec.inspect as mi

from monitor.config.messages import (
    Segments,
    did_you_mean,
    key_path,
    not_one_of,
    shown,
    table_path,
    toml_type_name,
    unknown_key,
)
from monitor.config.schema import RawConfig
from monitor.config.secrets import file_keys
from monitor.errors import UsageError
from monitor.sinks.config_types import Secret


def decode(data: Mapping[str, Any], file: str, config_dir: Path) -> RawConfig:
    """Check ``data`` against the schema; a relative path in it is relative to ``config_dir``.

    Sink secrets must already be resolved (:func:`monitor.config.secrets.resolve_sink_secrets`).
    """
    try:
        return msgspec.convert(data, RawConfig, dec_hook=_dec_hook(config_dir))
    except msgspec.ValidationError as exc:
        raise translate(str(exc), data, file) from exc


def _dec_hook(config_dir: Path) -> Callable[[type, Any], Any]:
    """Types TOML has no word for: paths (relative to the config file, not to wherever the
    daemon started) and secrets (already read; the file never holds one)."""

    def hook(type_: type, value: Any) -> Any:
        if type_ is Path:
            if not isinstance(value, str):
                raise TypeError(f"expected a path string, got {toml_type_name(value)}")
            path = Path(value).expanduser()
            return path if path.is_absolute() else config_dir / path
        if type_ is Secret:
            if isinstance(value, Secret):
                return value
            # Never quote the value: it is a secret written where it should not be.
            raise TypeError("a secret is read from <key>_env or <key>_file, never written here")
        raise NotImplementedError(type_)

    return hook


_AT = re.compile(r"(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_SEGMENT = re.compile(r"\.(?P<key>[A-Za-z_][A-Za-z0-9_]*)|\[(?P<index>\d+)\]")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<key>.*)`")
_MISSING = re.compile(r"Object missing required field `(?P<key>.*)`")
_EXPECTED = re.compile(r"Expected `(?P<type>[^`]+)`, got `[^`]+`")
_BOUND = re.compile(r"Expected `[^`]+` (?:>|>=|<|<=) \S+")
_ENUM = re.compile(r"Invalid enum value .*")
_NOUNS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "a boolean",
    "object": "a table",
    "array": "an array",
}


def split_path(text: str) -> tuple[str, list[str | int]]:
    """``"Expected `int`, got `str` - at `$.a[0].b`"`` -> ``("Expected ...", ["a", 0, "b"])``."""
    m = _AT.fullmatch(text)
    assert m is not None  # the pattern matches any text
    segments: list[str | int] = []
    for s in _SEGMENT.finditer(m["path"] or ""):
        segments.append(int(s["index"]) if s["index"] is not None else s["key"])
    return m["message"], segments


def translate(text: str, data: Mapping[str, Any], file: str) -> UsageError:
    """One msgspec validation message as today's one-line :class:`UsageError`."""
    message, segments = split_path(text)
    schema = _type_at(segments)
    if m := _UNKNOWN.fullmatch(message):
        key = m["key"]
        keys = file_keys(schema) if isinstance(schema, mi.StructType) else []
        if not segments:  # the top level's keys are the sections
            hint = did_you_mean(key, keys)
            return UsageError(f"{file}: [{shown(key)}]: unknown section{hint}")
        return UsageError(f"{file}: {key_path([*segments, key])}: {unknown_key(key, keys)}")
    if m := _MISSING.fullmatch(message):
        return UsageError(f"{file}: {key_path([*segments, m['key']])}: missing required key")
    value = _value_at(data, segments)
    if m := _EXPECTED.fullmatch(message):
        what = _expected(m["type"], schema, segments)
        return UsageError(
            f"{file}: {key_path(segments)}: expected {what}, got {toml_type_name(value)}"
        )
    if _BOUND.fullmatch(message) and schema is not None:
        return UsageError(f"{file}: {key_path(segments)}: {_out_of_bounds(schema, value, message)}")
    if _ENUM.fullmatch(message):
        return UsageError(f"{file}: {key_path(segments)}: {not_one_of(value, _choices(segments))}")
    # A type's own check (``__post_init__``: the message names its key) or the path hook's.
    where = table_path(segments) if isinstance(schema, mi.StructType) else key_path(segments)
    message = shown(message)
    return UsageError(f"{file}: {where}: {message}" if where else f"{file}: {message}")


def _type_at(segments: Segments) -> mi.Type | None:
    """The schema's type at ``segments`` (optional arms unwrapped), ``None`` if off the schema."""
    t: mi.Type | None = _unwrap(mi.type_info(RawConfig))
    for s in segments:
        if isinstance(s, int) and isinstance(t, mi.ListType):
            t = _unwrap(t.item_type)
        elif isinstance(s, str) and isinstance(t, mi.StructType):
            t = next((_unwrap(f.type) for f in t.fields if f.name == s), None)
        else:
            return None
    return t


def _unwrap(t: mi.Type) -> mi.Type:
    """``X | None`` and ``X | UNSET`` (a key that may be left out) are ``X`` in the file."""
    if isinstance(t, mi.UnionType):
        arms = [a for a in t.types if not isinstance(a, mi.NoneType)]  # inspect drops UNSET
        if len(arms) == 1:
            return arms[0]
    return t


def _value_at(data: Any, segments: Segments) -> Any:
    for s in segments:
        data = data[s]  # the path came from walking this very document
    return data


def _expected(type_name: str, schema: mi.Type | None, segments: Segments) -> str:
    if isinstance(schema, mi.ListType) and isinstance(schema.item_type, mi.StructType):
        return f"an array of tables ([[{segments[-1]}]])"
    name = type_name.removesuffix(" | null")
    return _NOUNS.get(name, f"`{name}`")


_BOUNDS: tuple[tuple[str, str, Callable[[Any, Any], bool]], ...] = (
    ("gt", ">", operator.gt),
    ("ge", ">=", operator.ge),
    ("lt", "<", operator.lt),
    ("le", "<=", operator.le),
)


def _out_of_bounds(schema: mi.Type, value: Any, fallback: str) -> str:
    """``must be > 0, got 0``: the first bound of ``schema`` (a ``Meta``) that ``value`` breaks."""
    for attr, symbol, holds in _BOUNDS:
        bound = getattr(schema, attr, None)
        if bound is not None and not holds(value, bound):  # NaN holds no bound: "got nan"
            return f"must be {symbol} {bound:g}, got {value:g}"
    return fallback


def _choices(segments: Segments) -> tuple[str, ...]:
    """The values a ``Literal`` or enum field allows, in the order its type lists them (read
    from the annotation: ``msgspec.inspect`` sorts a Literal's values)."""
    parent = _type_at(segments[:-1])
    if not segments or not isinstance(parent, mi.StructType):
        return ()
    hint = typing.get_type_hints(parent.cls).get(str(segments[-1]))
    for arm in typing.get_args(hint) if _is_union(hint) else (hint,):
        if typing.get_origin(arm) is Literal:
            return tuple(str(v) for v in typing.get_args(arm))
        if isinstance(arm, type) and issubclass(arm, enum.Enum):
            return tuple(str(m.value) for m in arm)
    return ()


def _is_union(hint: object) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)

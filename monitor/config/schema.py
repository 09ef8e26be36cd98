"""Typed reading of TOML tables: the checks every config section shares.

tomllib gives us plain dicts; everything here turns one table into checked Python values or
raises :class:`monitor.errors.UsageError` with one line naming the file and the key:

    deploy/marginwatch.toml: [daemon].htp: unknown key (did you mean 'http'?)
    deploy/marginwatch.toml: accounts[1].stale_after_s: expected a number, got string

:func:`dataclass_kwargs` maps a table onto another module's frozen dataclass (``AlertConfig``,
``KafkaConfig``, ``MqttConfig``) by its field names and type hints, so a field added there is
configurable without touching this module, and a misspelled key is still an error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import enum
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from monitor.errors import UsageError

Table = Mapping[str, Any]


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


@dataclasses.dataclass(frozen=True, slots=True)
class Where:
    """A position in the config file, rendered into every error message."""

    file: str
    path: str  # "[daemon]", "accounts[1]", "[sinks.kafka]", "accounts[0].alerts"

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | None, message: str) -> UsageError:
        where = self.path if key is None else self.key(key)
        return UsageError(f"{self.file}: {where}: {message}")

    def child(self, key: str) -> Where:
        return Where(self.file, self.key(key))

    def item(self, key: str, index: int) -> Where:
        return Where(self.file, f"{self.key(key) if self.path else key}[{index}]")


def check_keys(table: Table, allowed: typing.Iterable[str], where: Where) -> None:
    """Reject the first key not in ``allowed``, suggesting the closest allowed spelling."""
    allowed = list(allowed)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise where.error(key, f"unknown key{hint}")


def require_table(value: object, where: Where, key: str) -> Table:
    if not isinstance(value, dict):
        raise where.error(key, f"expected a table, got {toml_type_name(value)}")
    return value


def get_str(table: Table, key: str, where: Where, default: str | None = None) -> str:
    value = table.get(key, default)
    if value is None:
        raise where.error(key, "missing required key")
    if not isinstance(value, str):
        raise where.error(key, f"expected a string, got {toml_type_name(value)}")
    return value


def get_opt_str(table: Table, key: str, where: Where) -> str | None:
    if key not in table:
        return None
    return get_str(table, key, where)


def get_number(table: Table, key: str, where: Where, default: float | None = None) -> float:
    value = table.get(key, default)
    if value is None:
        raise where.error(key, "missing required key")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(key, f"expected a number, got {toml_type_name(value)}")
    return float(value)


def get_positive(table: Table, key: str, where: Where, default: float) -> float:
    value = get_number(table, key, where, default)
    if not value > 0:
        raise where.error(key, f"must be > 0, got {value:g}")
    return value


def get_bool(table: Table, key: str, where: Where, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise where.error(key, f"expected a boolean, got {toml_type_name(value)}")
    return value


def get_choice(
    table: Table, key: str, where: Where, choices: typing.Sequence[str], default: str | None = None
) -> str:
    value = get_str(table, key, where, default)
    if value not in choices:
        close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        options = ", ".join(repr(c) for c in choices)
        raise where.error(key, f"must be one of {options}, got {value!r}{hint}")
    return value


def get_str_list(table: Table, key: str, where: Where) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise where.error(key, f"expected an array of strings, got {toml_type_name(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise where.error(f"{key}[{i}]", f"expected a string, got {toml_type_name(item)}")
    return tuple(value)


# --- secrets -----------------------------------------------------------------------------------

SECRET_SUFFIXES = ("_env", "_file")


def read_secret(
    table: Table,
    base: str,
    where: Where,
    environ: Mapping[str, str],
    config_dir: Path,
    *,
    required: bool,
) -> str | None:
    """Resolve ``<base>_env`` / ``<base>_file`` to the secret's text.

    The value itself never appears in an error; only the variable or file name does.
    """
    env_key, file_key = f"{base}_env", f"{base}_file"
    if env_key in table and file_key in table:
        raise where.error(env_key, f"give either {env_key} or {file_key}, not both")
    if env_key in table:
        var = get_str(table, env_key, where)
        value = environ.get(var)
        if value is None or value == "":
            raise where.error(env_key, f"environment variable {var} is not set")
        return value
    if file_key in table:
        name = get_str(table, file_key, where)
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = config_dir / path
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise where.error(file_key, f"cannot read {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            # Never quote the bytes: they are (part of) the secret.
            raise where.error(file_key, f"secret file {path} is not UTF-8 text") from exc
        if not text:
            raise where.error(file_key, f"secret file {path} is empty")
        return text
    if required:
        raise where.error(None, f"missing {env_key} or {file_key}")
    return None


# --- mapping a table onto a foreign frozen dataclass -------------------------------------------

_NONE = type(None)


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not _NONE]
        optional = len(args) != len(typing.get_args(hint))
        if len(args) == 1:
            return args[0], optional
        return typing.Union[tuple(args)], optional  # noqa: UP007 - rebuilding a runtime union
    return hint, False


def _coerce(hint: Any, value: object, where: Where, key: str, base: Path = Path()) -> object:
    """Check ``value`` (from TOML) against a type hint; convert where TOML has no such type."""
    hint, _ = _unwrap_optional(hint)
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise where.error(key, f"expected a boolean, got {toml_type_name(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise where.error(key, f"expected an integer, got {toml_type_name(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise where.error(key, f"expected a number, got {toml_type_name(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise where.error(key, f"expected a string, got {toml_type_name(value)}")
        return value
    if hint is Path:
        if not isinstance(value, str):
            raise where.error(key, f"expected a path string, got {toml_type_name(value)}")
        path = Path(value).expanduser()
        # Relative paths are relative to the config file, not to wherever the daemon started.
        return path if path.is_absolute() else base / path
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        choices = [m.value for m in hint] + [m.name.lower() for m in hint]
        for member in hint:
            if value in (member.value, member.name.lower(), member.name):
                return member
        raise where.error(key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise where.error(key, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if origin in (tuple, list) or origin is typing.Sequence:
        if not isinstance(value, list):
            raise where.error(key, f"expected an array, got {toml_type_name(value)}")
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise where.error(key, f"expected an array of {len(args)} items, got {len(value)}")
            return tuple(
                _coerce(a, v, where, f"{key}[{i}]", base)
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        return tuple(_coerce(item, v, where, f"{key}[{i}]", base) for i, v in enumerate(value))
    if origin in (dict, Mapping) or origin is typing.Mapping:
        if not isinstance(value, dict):
            raise where.error(key, f"expected a table, got {toml_type_name(value)}")
        k_hint, v_hint = typing.get_args(hint) or (Any, Any)
        return {
            _coerce(k_hint, k, where, f"{key}.{k}"): _coerce(v_hint, v, where, f"{key}.{k}", base)
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        table = require_table(value, where, key)
        kwargs = dataclass_kwargs(hint, table, where.child(key), config_dir=base)
        try:
            return hint(**kwargs)
        except (ValueError, TypeError) as exc:  # the nested type's own checks name the field
            raise where.error(key, str(exc)) from exc
    if isinstance(hint, type):
        if not isinstance(value, hint):
            raise where.error(key, f"expected {hint.__name__}, got {toml_type_name(value)}")
        return value
    # A union of several non-None types: accept the first that fits.
    for arm in typing.get_args(hint):
        try:
            return _coerce(arm, value, where, key, base)
        except UsageError:
            continue
    raise where.error(key, f"unexpected {toml_type_name(value)}")


def dataclass_kwargs(
    cls: type[Any],
    table: Table,
    where: Where,
    *,
    secret_type: type[Any] | None = None,
    secret_factory: Callable[[str], object] | None = None,
    environ: Mapping[str, str] | None = None,
    config_dir: Path = Path(),
    skip: typing.Collection[str] = (),
    required: bool = True,
) -> dict[str, Any]:
    """Checked keyword arguments for ``cls`` from ``table``.

    Fields whose type is ``secret_type`` are read from ``<field>_env`` / ``<field>_file`` and
    wrapped with ``secret_factory``. With ``required=False`` (per-account overrides) fields
    without a value are simply left out instead of reported missing.
    """
    hints = typing.get_type_hints(cls)
    allowed: list[str] = []
    secret_fields: list[dataclasses.Field[Any]] = []
    plain_fields: list[dataclasses.Field[Any]] = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        base, _ = _unwrap_optional(hints[f.name])
        if secret_type is not None and base is secret_type:
            secret_fields.append(f)
            allowed.extend(f.name + s for s in SECRET_SUFFIXES)
        else:
            plain_fields.append(f)
            allowed.append(f.name)
    check_keys(table, allowed, where)
    kwargs: dict[str, Any] = {}
    for f in plain_fields:
        if f.name in table:
            kwargs[f.name] = _coerce(hints[f.name], table[f.name], where, f.name, config_dir)
        elif required and _no_default(f):
            raise where.error(f.name, "missing required key")
    for f in secret_fields:
        _, optional = _unwrap_optional(hints[f.name])
        must = required and _no_default(f) and not optional
        text = read_secret(table, f.name, where, environ or {}, config_dir, required=must)
        if text is not None:
            assert secret_factory is not None
            kwargs[f.name] = secret_factory(text)
    return kwargs


def _no_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING

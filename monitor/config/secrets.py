"""Secrets named in the config: ``<secret>_env`` (a variable's name) or ``<secret>_file`` (a path).

The file never holds a secret; it says where to find one. The value itself never appears in an
error message: only the variable's or the file's name does.

Account keys are plain fields of :class:`monitor.config.schema.AccountSection` (whether they
are required depends on the venue). A sink's password is a field of type
:class:`~monitor.sinks.config_types.Secret` on the sink's own settings Struct; its table says
``password_env``/``password_file`` instead, so :func:`resolve_sink_secrets` reads those keys and
puts the :class:`Secret` in their place before the table is decoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from monitor.config.messages import Where, shown, table_path, toml_type_name, unknown_key
from monitor.sinks.config_types import KafkaConfig, MqttConfig, Secret

#: The sink tables whose settings hold a secret, by their key under ``[sinks]``.
SINKS_WITH_SECRETS: tuple[tuple[str, type[msgspec.Struct]], ...] = (
    ("kafka", KafkaConfig),
    ("mqtt", MqttConfig),
)


def read_secret(
    base: str,
    env_var: str | None,
    file_name: str | None,
    where: Where,
    *,
    environ: Mapping[str, str],
    config_dir: Path,
    required: bool,
) -> str | None:
    """The text of the secret ``base`` given as ``<base>_env = env_var`` or
    ``<base>_file = file_name`` (``None``: not given); ``None`` if neither and not required."""
    env_key, file_key = f"{base}_env", f"{base}_file"
    if env_var is not None and file_name is not None:
        raise where.error(env_key, f"give either {env_key} or {file_key}, not both")
    if env_var is not None:
        value = environ.get(env_var)
        if value is None or value == "":
            raise where.error(env_key, f"environment variable {shown(env_var)} is not set")
        return value
    if file_name is not None:
        path = Path(file_name).expanduser()
        if not path.is_absolute():
            path = config_dir / path
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise where.error(file_key, f"cannot read {shown(str(path))}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            # Never quote the bytes: they are (part of) the secret.
            raise where.error(
                file_key, f"secret file {shown(str(path))} is not UTF-8 text"
            ) from exc
        if not text:
            raise where.error(file_key, f"secret file {shown(str(path))} is empty")
        return text
    if required:
        raise where.error(None, f"missing {env_key} or {file_key}")
    return None


def secret_fields(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields of ``cls`` that hold a :class:`Secret` (optional or not)."""
    return tuple(f.name for f in _struct_info(cls).fields if _holds_secret(f.type))


def _struct_info(cls: type[msgspec.Struct]) -> mi.StructType:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)  # a Struct class inspects as one
    return info


def _holds_secret(t: mi.Type) -> bool:
    arms = t.types if isinstance(t, mi.UnionType) else (t,)
    return any(isinstance(a, mi.CustomType) and a.cls is Secret for a in arms)


def file_keys(info: mi.StructType) -> list[str]:
    """The keys a table decoded into ``info`` may hold: a secret field ``x`` is written
    ``x_env`` or ``x_file``."""
    keys: list[str] = []
    for f in info.fields:
        keys.extend((f"{f.name}_env", f"{f.name}_file") if _holds_secret(f.type) else (f.name,))
    return keys


def resolve_sink_secrets(
    data: Mapping[str, Any], file: str, environ: Mapping[str, str], config_dir: Path
) -> Mapping[str, Any]:
    """``data`` with each sink table's secret references replaced by the :class:`Secret` read.

    Tables that are not tables are left for the decoder to report.
    """
    sinks = data.get("sinks")
    if not isinstance(sinks, dict):
        return data
    resolved = dict(sinks)
    for key, cls in SINKS_WITH_SECRETS:
        table = sinks.get(key)
        if isinstance(table, dict):
            where = Where(file, table_path(("sinks", key)))
            resolved[key] = _resolve(table, cls, where, environ, config_dir)
    return {**data, "sinks": resolved}


def _resolve(
    table: Mapping[str, Any],
    cls: type[msgspec.Struct],
    where: Where,
    environ: Mapping[str, str],
    config_dir: Path,
) -> dict[str, Any]:
    out = dict(table)
    for base in secret_fields(cls):
        if base in out:  # a secret written in plain text: not a key the file may hold
            raise where.error(base, unknown_key(base, file_keys(_struct_info(cls))))
        env_var = _opt_str(out.pop(f"{base}_env", None), where, f"{base}_env")
        file_name = _opt_str(out.pop(f"{base}_file", None), where, f"{base}_file")
        text = read_secret(
            base, env_var, file_name, where, environ=environ, config_dir=config_dir, required=False
        )
        if text is not None:
            out[base] = Secret(text)
    return out


def _opt_str(value: object, where: Where, key: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise where.error(key, f"expected a string, got {toml_type_name(value)}")

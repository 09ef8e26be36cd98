"""Local resources the sinks need, checked by ``run --check`` and reported the same at start.

Opening nothing for good: the JSONL file can be appended to, the Kafka spool directory can be
created and written and is not locked by another process. Each problem is one
:class:`UsageError` line naming the config file, the key and the path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.errors import UsageError
from monitor.sinks.spool import SpoolError, check_directory

if TYPE_CHECKING:
    from monitor.config.core import Config


def resource_error(cfg: Config, key: str, path: Path, exc: Exception) -> UsageError:
    """``<file>: <key>: <path>: <what is wrong>``: one line for an unusable file or directory."""
    if isinstance(exc, OSError):
        what = f"cannot create or write: {exc.strerror or exc}"
    else:  # SpoolError, or the sink's own UsageError: its message starts with the path
        what = str(exc).removeprefix(f"{path}: ")
    return UsageError(f"{cfg.path}: {key}: {path}: {what}")


def check_local_resources(cfg: Config) -> None:
    """Check, without starting anything, what the sinks will open. Raises
    :class:`UsageError` naming the key and the path."""
    jsonl = cfg.sinks.jsonl
    if jsonl is not None:
        try:
            if jsonl.path.exists():
                with jsonl.path.open("ab"):
                    pass
            elif not os.access(jsonl.path.parent, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied or no such directory")
        except OSError as exc:
            raise resource_error(cfg, "[sinks.jsonl].path", jsonl.path, exc) from exc
    kafka = cfg.sinks.kafka
    if kafka is not None:
        directory = kafka.spool.directory
        try:
            check_directory(directory)
        except (SpoolError, OSError) as exc:
            raise resource_error(cfg, "[sinks.kafka.spool].directory", directory, exc) from exc

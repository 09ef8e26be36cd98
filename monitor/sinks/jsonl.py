"""JSONL file sink: every alert appended as one schema-1 JSON line.

Lines are written and flushed per batch (what the queue holds when ``run`` wakes) and the file
is fsynced on ``close``, so a clean shutdown leaves every alert on disk. A write error is not
swallowed: the alert stays queued and ``run`` raises, which fails the daemon visibly.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from pathlib import Path
from typing import BinaryIO

from monitor.errors import DeliveryError, UsageError
from rules.alert_doc import Alert, StateDocument

log = logging.getLogger(__name__)


class JsonlSink:
    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        try:
            # Opened at construction so a bad path is a start-up error, not a 3 a.m. one.
            self._file: BinaryIO | None = open(self._path, "ab")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise UsageError(f"{self._path}: cannot open for append: {exc.strerror}") from exc
        self._queue: collections.deque[Alert] = collections.deque()
        self._ready = asyncio.Event()
        self.written = 0

    @property
    def name(self) -> str:
        return "jsonl"

    @property
    def path(self) -> Path:
        return self._path

    def submit(self, alert: Alert) -> None:
        self._queue.append(alert)
        self._ready.set()

    def submit_state(self, state: StateDocument) -> None:
        """Alerts only: the file is an audit trail of transitions, not of state."""

    def pending(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            self._write_batch()

    async def close(self) -> None:
        if self._file is None:
            return
        self._write_batch()
        fh, self._file = self._file, None
        try:
            # fsync can take a while on a busy disk: keep it off the event loop.
            await asyncio.to_thread(os.fsync, fh.fileno())
        finally:
            fh.close()
        log.info("jsonl: %d alerts written to %s", self.written, self._path)

    def _write_batch(self) -> None:
        if not self._queue:
            return
        if self._file is None:
            raise DeliveryError(f"jsonl: {len(self._queue)} alerts submitted after close")
        batch = list(self._queue)
        try:
            self._file.write(b"".join(a.to_json() + b"\n" for a in batch))
            self._file.flush()
        except OSError as exc:
            raise DeliveryError(f"jsonl: cannot write {self._path}: {exc.strerror}") from exc
        # Only now are they delivered; without an await in between nothing else ran meanwhile.
        for _ in batch:
            self._queue.popleft()
        self.written += len(batch)

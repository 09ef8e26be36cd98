"""JSONL file sink: every alert appended as one schema-1 JSON line.

Lines are written per batch (what the queue holds when ``run`` wakes) and the file is fsynced
on ``close``, so a clean shutdown leaves every alert on disk. An alert leaves the queue only
once its line is written. A write error (disk full, I/O error) cuts the file back to the last
whole line and keeps the batch queued: it is counted, reported as ``delivery_failing`` on the
other sinks and retried with a backoff; it never stops the daemon. The file being unusable at
start-up is a usage error. Each alert is encoded on its own (:mod:`monitor.sinks.encode`): one
that does not encode is written repaired, and the rest of its batch as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from connectors.backoff import Backoff
from monitor.errors import DeliveryError, UsageError
from monitor.sinks.encode import encoded
from monitor.sinks.local import LocalSink
from monitor.sinks.observer import NULL_OBSERVER, DeliveryObserver

log = logging.getLogger(__name__)


class JsonlSink(LocalSink):
    def __init__(
        self,
        path: Path | str,
        *,
        observer: DeliveryObserver = NULL_OBSERVER,
        on_delivery_failing: Callable[[str, str], None] | None = None,
        on_delivery_resumed: Callable[[str], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._path = Path(path)
        try:
            # Opened at construction so a bad path is a start-up error, not a 3 a.m. one.
            # Unbuffered: a failed write leaves nothing behind in a buffer to land later.
            self._fd: int | None = os.open(
                self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
            )
        except OSError as exc:
            raise UsageError(f"{self._path}: cannot open for append: {exc.strerror}") from exc
        super().__init__(
            log,
            observer=observer,
            on_delivery_failing=on_delivery_failing,
            on_delivery_resumed=on_delivery_resumed,
            backoff=backoff,
        )
        self.written = 0

    @property
    def name(self) -> str:
        return "jsonl"

    @property
    def path(self) -> Path:
        return self._path

    @property
    def _what(self) -> str:
        return f"jsonl {self._path}"

    async def close(self) -> None:
        if self._fd is None:
            return
        try:
            self._write()
        except OSError as exc:
            raise DeliveryError(
                f"jsonl: cannot write {self._path}: {exc.strerror}; {len(self._queue)} alerts lost"
            ) from exc
        finally:
            fd, self._fd = self._fd, None
            try:
                # fsync can take a while on a busy disk: keep it off the event loop.
                await asyncio.to_thread(os.fsync, fd)
            finally:
                os.close(fd)
        log.info("jsonl: %d alerts written to %s", self.written, self._path)

    def _write(self) -> int:
        """Write the queue as lines; raise ``OSError`` having written no partial line."""
        if not self._queue:
            return 0
        if self._fd is None:
            raise DeliveryError(f"jsonl: {len(self._queue)} alerts submitted after close")
        batch = list(self._queue)
        fd = self._fd
        lines: list[bytes] = []
        repaired = 0
        for alert in batch:  # one by one: an alert that does not encode is repaired alone
            _, value, fixed = encoded(alert, self.name)
            lines += (value, b"\n")
            repaired += fixed
        start = os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(b"".join(lines))
        try:
            while view:  # unbuffered: a short write is not an error, just continue
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)  # no torn line for a reader (or before the retry)
            raise
        # Only now are they delivered; without an await in between nothing else ran meanwhile.
        for _ in batch:
            self._queue.popleft()
        self.written += len(batch)
        self._observer.delivered(self.name, len(batch))
        self._count_repaired(repaired)
        return len(batch)

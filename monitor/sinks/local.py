"""What the console and JSONL sinks share: alerts queued by ``submit``, written by ``run``.

Both write to something on this machine (a terminal, a file). ``submit`` never blocks the
engine; ``run`` writes whatever is queued when woken, and a failed write is reported and
retried with backoff (:func:`~monitor.sinks.delivery.retry_local_writes`), never dropped.
Subclasses give ``name``, ``_write()`` (write the queue, return how many) and ``_what`` (how
failures name the target in logs).
"""

from __future__ import annotations

import abc
import asyncio
import collections
import logging
from collections.abc import Callable

from connectors.backoff import Backoff
from monitor.sinks.delivery import FailingReport, retry_local_writes
from monitor.sinks.observer import NULL_OBSERVER, DeliveryObserver
from rules.alert_doc import Alert, StateDocument


class LocalSink(abc.ABC):
    def __init__(
        self,
        logger: logging.Logger,
        *,
        observer: DeliveryObserver = NULL_OBSERVER,
        on_delivery_failing: Callable[[str, str], None] | None = None,
        on_delivery_resumed: Callable[[str], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._log = logger
        self._observer = observer
        self._backoff = backoff or Backoff(initial_s=0.2, max_s=10.0, floor=0.5)
        self._report = FailingReport(
            self.name,
            observer,
            self._backoff,
            on_delivery_failing,
            logger,
            on_resumed=on_delivery_resumed,
        )
        self._queue: collections.deque[Alert] = collections.deque()
        self._ready = asyncio.Event()
        #: Alerts written repaired because they did not encode as they were.
        self.repaired = 0

    @property
    @abc.abstractmethod
    def name(self) -> str: ...

    @property
    def _what(self) -> str:
        return self.name

    @abc.abstractmethod
    def _write(self) -> int: ...

    def submit(self, alert: Alert) -> None:
        self._queue.append(alert)
        self._ready.set()

    def submit_state(self, state: StateDocument) -> None:  # noqa: B027 - a no-op on purpose
        """Alerts only: these sinks print or keep transitions, not state."""

    def pending(self) -> int:
        return len(self._queue)

    def _count_repaired(self, n: int) -> None:
        """``n`` alerts just written were repaired versions (counted once they are written)."""
        if n:
            self.repaired += n
            self._observer.repaired(self.name, n)

    async def run(self) -> None:
        await retry_local_writes(
            self._write,
            self._ready,
            self._report,
            self._backoff,
            pending=self.pending,
            what=self._what,
            logger=self._log,
        )

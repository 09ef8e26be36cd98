"""The sink protocol.

The engine hands alerts and account-state documents to every sink with a *synchronous*
``submit``/``submit_state`` that only enqueues: nothing on the tick path awaits a broker. Each
sink's ``run`` task drains its queue, retries failures and surfaces them (metrics, a delivery
alert); an alert is never logged-and-forgotten. ``close`` flushes everything still queued.
"""

from __future__ import annotations

from typing import Protocol

from rules.alerts import Alert, StateDocument


class Sink(Protocol):
    @property
    def name(self) -> str:
        """Bounded label used in metrics, e.g. ``kafka``, ``mqtt``, ``jsonl``, ``console``."""
        ...

    def submit(self, alert: Alert) -> None:
        """Enqueue an alert for delivery. Never blocks, never drops."""
        ...

    def submit_state(self, state: StateDocument) -> None:
        """Enqueue the latest state of one account (compacted topic / retained message).

        Sinks without a notion of state may ignore it.
        """
        ...

    async def run(self) -> None:
        """Deliver until cancelled; failures are retried and counted, never swallowed."""
        ...

    async def close(self) -> None:
        """Flush everything queued (bounded by the sink's own timeout), then release resources."""
        ...

    def pending(self) -> int:
        """Alerts accepted but not yet acknowledged (queue + spool)."""
        ...

"""State publication: each evaluated account's state document to every sink.

A document leaves on every alert transition and after the account's first complete evaluation,
and again every ``interval_ms`` (at most ``STATE_BATCH`` per timer call) so the compacted topic
and retained MQTT state stay current without an alert. An incomplete account keeps its last
document until it is complete again.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

from monitor.sinks.base import Sink
from rules.alerts import StateDocument

# Every evaluated account's state document is republished this often.
STATE_REPUBLISH_MS = 60_000
STATE_BATCH = 256


class StatePublisher:
    """When each account's state document last left, and when it is due again."""

    def __init__(self, sinks: Sequence[Sink], interval_ms: int) -> None:
        self._sinks = sinks
        self._interval = interval_ms
        self._sent: dict[int, int] = {}  # account -> when its state document last left
        self._heap: list[tuple[int, int]] = []  # (due, account) republication clocks

    def published(self, i: int) -> bool:
        """Whether account ``i``'s document has left at least once."""
        return i in self._sent

    def publish(self, i: int, doc: StateDocument, now_ms: int) -> None:
        if i not in self._sent:
            heapq.heappush(self._heap, (now_ms + self._interval, i))
        self._send(i, doc, now_ms)

    def republish(
        self,
        now_ms: int,
        complete: Callable[[int], bool],
        document: Callable[[int, int], StateDocument],
    ) -> None:
        """Slow timer: documents due again, built by ``document(i, now_ms)`` for accounts
        ``complete(i)`` (bounded per call)."""
        heap = self._heap
        done = 0
        while heap and heap[0][0] <= now_ms and done < STATE_BATCH:
            _, i = heapq.heappop(heap)
            due = self._sent[i] + self._interval
            if due > now_ms or not complete(i):
                heapq.heappush(heap, (max(due, now_ms + 1), i))
                continue
            self._send(i, document(i, now_ms), now_ms)
            heapq.heappush(heap, (now_ms + self._interval, i))
            done += 1

    def _send(self, i: int, doc: StateDocument, now_ms: int) -> None:
        self._sent[i] = now_ms
        for sink in self._sinks:
            sink.submit_state(doc)

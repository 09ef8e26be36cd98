"""The engine's deferred-evaluation queue: accounts awaiting an evaluation with their
liquidation distance (a root search, ~0.33 ms for a 20-leg account).

A FIFO with one entry per account. Re-queueing an account keeps its place and takes the newer
event/receive times but keeps the receive time it was first queued at (alert latency counts from
the first queued input); the account's figures are read from the store when it is evaluated, so
one evaluation on the latest figures stands for every update while it waited. The queue only
keeps this bookkeeping; :class:`monitor.engine.core.Engine` evaluates what
:meth:`DeferredQueue.batch`
hands it, and the batch stops at a count or time bound so a burst of near accounts never blocks
the event loop for long.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator

# Deferred (liquidation-distance) evaluations per handle/tick_timers/drain_pending call: stop
# once this much time went into them (at least one runs per call, so the queue always moves).
DEFERRED_BUDGET_S = 0.002

# (event_ms, recv_ms, first recv_ms) of a queued account.
Deferred = tuple[int, int, int]


class DeferredQueue:
    """FIFO of account indices awaiting a deferred evaluation, worked off within a bound.

    ``budget_s`` / ``limit``: time and count bounds on one bounded :meth:`batch`; ``None`` for
    no bound of that kind.
    """

    __slots__ = ("_budget_s", "_entries", "_limit")

    def __init__(self, budget_s: float | None, limit: int | None) -> None:
        self._budget_s = budget_s
        self._limit = limit
        self._entries: OrderedDict[int, Deferred] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, i: int) -> bool:
        return i in self._entries

    def push(self, i: int, event_ms: int, recv_ms: int) -> None:
        """Queue account ``i``, or refresh its times in place if it is queued already."""
        entries = self._entries
        first = entries[i][2] if i in entries else recv_ms
        entries[i] = (event_ms, recv_ms, first)

    def take(self, i: int) -> Deferred | None:
        """Remove and return account ``i``'s entry (it is being evaluated now), if queued."""
        return self._entries.pop(i, None)

    def batch(self, *, bounded: bool) -> Iterator[tuple[int, Deferred]]:
        """Pop entries in FIFO order for the caller to evaluate; ``bounded``: stop at the count
        or time bound (checked after each evaluation, so at least one runs per call)."""
        entries = self._entries
        if not entries:
            return
        limit = self._limit if bounded else None
        budget = self._budget_s if bounded else None
        started = time.perf_counter()
        done = 0
        while entries:
            yield entries.popitem(last=False)
            done += 1
            if limit is not None and done >= limit:
                break
            if budget is not None and time.perf_counter() - started >= budget:
                break

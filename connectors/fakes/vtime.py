"""Virtual time for loopback runs: an event loop whose clock jumps ahead whenever it is idle.

The fake venue and the real connectors run in one process, talking over loopback sockets. When
no socket is readable or writable and no callback is ready, nothing can happen before the next
timer, so :class:`VirtualTimeLoop` moves its clock straight to that timer instead of sleeping.
Fifteen minutes of a thousand accounts taking turns in a rate limit then run in the seconds of
CPU they need. Every ``asyncio.sleep``/``asyncio.timeout`` runs on this clock; pass
:meth:`VirtualTimeLoop.wall_ms` (or a :class:`LoopClock` to the fake) wherever a wall clock is
injected, so the fake's minutes and the clients' budgets count the same time.

Limits: work done in other threads (``run_in_executor``, name resolution) is invisible to the
idle check, so use numeric addresses (``127.0.0.1``). The idle check is one poll of the sockets
without waiting: on Linux, loopback bytes and handshakes reach the peer's socket within the
sender's own system call, so "nothing readable now" means nothing is on its way (a fleet of 400
accounts runs bit-for-bit the same with a real-time grace before each jump, at 7x the cost;
``idle_grace_s`` brings one back for a platform where that does not hold).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Mapping
from typing import Any

EPOCH_MS = 1_700_000_000_000
"""Where the virtual wall clock starts (2023-11-14 22:13:20 UTC, mid-minute for no reason)."""


class _JumpingSelector(selectors.BaseSelector):
    def __init__(self, loop: VirtualTimeLoop, idle_grace_s: float) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop = loop
        self._grace_s = idle_grace_s

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if self._grace_s > 0.0:
            ready = self._inner.select(self._grace_s)
            if ready:
                return ready
        if timeout is None:  # no timer at all: only a socket can wake us
            return self._inner.select(None)
        self._loop.advance(timeout)
        return []

    def close(self) -> None:
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``time()`` is virtual seconds from 0; it only moves when the loop is idle (or
    :meth:`advance` is called)."""

    def __init__(self, epoch_ms: int = EPOCH_MS, idle_grace_s: float = 0.0) -> None:
        self._now = 0.0
        self.epoch_ms = epoch_ms
        self.jumps = 0
        super().__init__(_JumpingSelector(self, idle_grace_s))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self.jumps += 1

    def wall_ms(self) -> int:
        """The virtual wall clock in epoch milliseconds."""
        return self.epoch_ms + int(self._now * 1000.0)


class LoopClock:
    """The running loop's wall clock as the fake venue wants it (``now_ms()``): virtual under
    a :class:`VirtualTimeLoop`."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop

    def now_ms(self) -> int:
        return self._loop.wall_ms()

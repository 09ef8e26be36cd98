"""Clocks the fake venue runs on: wall time (optionally sped up) or a hand-driven test clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class WallClock:
    """Real time, optionally sped up ``scale`` times from the moment of creation (for the demo:
    ``scale=60`` makes the 3 min ping interval 3 s and the 60 min listenKey a minute)."""

    def __init__(self, scale: float = 1.0) -> None:
        self._scale = scale
        self._start_wall = time.time()
        self._start_mono = time.monotonic()

    def now_ms(self) -> int:
        elapsed = (time.monotonic() - self._start_mono) * self._scale
        return int((self._start_wall + elapsed) * 1000.0)


class ManualClock:
    """Moves only when a test says so."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms

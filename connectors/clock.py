"""The wall clock in the unit every event carries: integer milliseconds since the epoch.

One function, so code that stamps receive times, the engine's timers and the fakes agree on the
unit; anything that must be testable takes a clock callable defaulting to this one.
"""

from __future__ import annotations

import time


def wall_ms() -> int:
    return time.time_ns() // 1_000_000

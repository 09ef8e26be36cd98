"""Jittered exponential backoff for reconnects ("full jitter": uniform in ``[0, cap]``).

Full jitter spreads a fleet of monitors that lost the venue at the same instant, so they do not
reconnect in lock-step and trip the venue's connection rate limits. The random source is
injectable so tests can pin the bounds.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delay before attempt ``n`` is uniform in ``[floor·cap, cap]``, ``cap = min(max_s, initial_s ·
    factor**n)``. Reconnects use full jitter (``floor`` 0); a sink retrying its own broker uses
    ``floor`` 0.5, so a retry never comes back at once after a failure.

    The attempt counter resets once a connection stayed healthy for ``reset_after_s`` seconds
    (:meth:`connection_ended`), so a feed that drops once a day reconnects at once, while a
    venue that accepts and immediately drops connections is backed off up to ``max_s``.
    """

    def __init__(
        self,
        *,
        initial_s: float = 0.2,
        factor: float = 2.0,
        max_s: float = 30.0,
        reset_after_s: float = 60.0,
        floor: float = 0.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if initial_s <= 0.0 or factor < 1.0 or max_s < initial_s or reset_after_s < 0.0:
            raise ValueError("backoff: need initial_s > 0, factor >= 1, max_s >= initial_s")
        if not 0.0 <= floor <= 1.0:
            raise ValueError("backoff: need 0 <= floor <= 1")
        self.floor = floor
        self.initial_s = initial_s
        self.factor = factor
        self.max_s = max_s
        self.reset_after_s = reset_after_s
        self._rng = rng
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """Failed attempts since the last reset."""
        return self._attempt

    def cap(self) -> float:
        """Upper bound of the next delay."""
        # Clamp the exponent: factor**attempt overflows long before anyone waits that long.
        exponent = min(self._attempt, 64)
        return min(self.max_s, self.initial_s * self.factor**exponent)

    def next_delay(self) -> float:
        """The delay to wait before the next attempt; advances the attempt counter."""
        cap = self.cap()
        delay = cap * (self.floor + (1.0 - self.floor) * self._rng())
        self._attempt += 1
        return delay

    def reset(self) -> None:
        self._attempt = 0

    def connection_ended(self, healthy_for_s: float) -> None:
        """Report how long the connection that just ended was healthy (0 if it never was)."""
        if healthy_for_s >= self.reset_after_s:
            self._attempt = 0

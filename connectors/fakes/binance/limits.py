"""The fake venue's per-IP request-weight limit, answered as Binance answers it.

Binance counts request weight per IP per calendar minute (2,400 on USDⓈ-M ``/fapi``) and
reports the count in ``X-MBX-USED-WEIGHT-1M`` on every answer. A request that takes the count
over the limit is refused with HTTP 429 and ``Retry-After`` (the seconds left in the minute).
An IP that keeps sending after being told to back off is banned: HTTP 418 with ``Retry-After``
until the ban ends, the ban growing for repeat offenders (Binance: "from 2 minutes to 3
days"). Both carry code ``-1003``.

Binance does not publish how much it tolerates after a 429 before it bans; the fake's rule:
requests that were already on their way are forgiven for :data:`GRACE_MS`, and the first
request after that while the ``Retry-After`` still runs starts a ban. Refused requests count
their weight too, as Binance's do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LIMIT_1M = 2400
WINDOW_MS = 60_000
GRACE_MS = 1_000
FIRST_BAN_MS = 2 * 60_000
MAX_BAN_MS = 3 * 24 * 3600_000


@dataclass(slots=True)
class Verdict:
    """What to answer one request: ``status`` 0 to serve it, else 429 or 418."""

    status: int
    used: int
    retry_after_s: int = 0
    until_ms: int = 0


@dataclass(slots=True)
class _Ip:
    window: int = -1
    used: int = 0
    backoff_until_ms: int = 0
    told_at_ms: int = 0
    banned_until_ms: int = 0
    bans: int = 0


class WeightLimits:
    """Per-IP weight counters, 429s and bans; :attr:`max_used` is the highest count any IP
    reached in any minute (tests assert the clients stayed under the limit)."""

    def __init__(self, limit: int = LIMIT_1M) -> None:
        self.limit = limit
        self._ips: dict[str, _Ip] = {}
        self.max_used = 0
        self.too_many = 0
        """429 answers given."""
        self.bans = 0
        """Bans started."""

    def used(self, ip: str, now_ms: int) -> int:
        state = self._state(ip, now_ms)
        return state.used

    def spend(self, ip: str, weight: int, now_ms: int) -> None:
        """Weight spent by someone else on this IP (another program behind the same NAT)."""
        state = self._state(ip, now_ms)
        state.used += weight
        self.max_used = max(self.max_used, state.used)

    def check(self, ip: str, weight: int, now_ms: int) -> Verdict:
        state = self._state(ip, now_ms)
        if now_ms < state.banned_until_ms:
            return self._ban_verdict(state, now_ms)
        state.used += weight
        self.max_used = max(self.max_used, state.used)
        if now_ms < state.backoff_until_ms and now_ms - state.told_at_ms > GRACE_MS:
            # Told to back off and still sending: ban, longer each time.
            span = min(FIRST_BAN_MS * 2**state.bans, MAX_BAN_MS)
            state.bans += 1
            self.bans += 1
            state.banned_until_ms = now_ms + span
            state.backoff_until_ms = 0
            return self._ban_verdict(state, now_ms)
        if state.used > self.limit:
            next_window = (now_ms // WINDOW_MS + 1) * WINDOW_MS
            if now_ms >= state.backoff_until_ms:
                state.told_at_ms = now_ms
            state.backoff_until_ms = next_window
            self.too_many += 1
            retry = max(1, math.ceil((next_window - now_ms) / 1000))
            return Verdict(429, state.used, retry)
        return Verdict(0, state.used)

    def _ban_verdict(self, state: _Ip, now_ms: int) -> Verdict:
        retry = max(1, math.ceil((state.banned_until_ms - now_ms) / 1000))
        return Verdict(418, state.used, retry, state.banned_until_ms)

    def _state(self, ip: str, now_ms: int) -> _Ip:
        state = self._ips.setdefault(ip, _Ip())
        window = now_ms // WINDOW_MS
        if window != state.window:
            state.window, state.used = window, 0
        return state

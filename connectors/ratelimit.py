"""One request-weight budget per venue and egress IP, shared by every REST client behind it.

Venues limit REST weight per IP, not per API key: Binance USDⓈ-M allows 2,400 weight per
minute, counted per calendar minute and reported back in ``X-MBX-USED-WEIGHT-1M``. A client per
account that tracks that number on its own cannot see the others: two hundred of them each wait
for the next minute and fire together. So every client of a venue (its market feed and every
account) takes its weight from one :class:`WeightBudget` before it sends a request.

How the budget keeps the sum under the limit (with ``headroom`` left for other software on the
same IP and for the venue's own counting):

* **A hard sliding limit.** The weight sent in the last window (a log of our own requests) plus
  a request's weight never exceeds the usable weight: over *any* stretch of one window, so over
  the venue's calendar windows too, whatever the weights.
* **Pacing, no herd.** Within that, weight is drawn from a token bucket holding ``burst`` of
  the usable weight and refilling at ``(usable - burst) / window``, so a crowd is sent evenly
  through the window instead of all at its start (a request heavier than the bucket waits for
  a full one and leaves it in debt).
* **The venue's own count.** Per venue window the budget keeps a conservative estimate of the
  venue's counter: what we sent in it, raised to the used-weight header plus what we still have
  in flight whenever an answer reports more (another process on the same IP). A request waits
  for the next window when it would take that estimate over the usable weight.
* **Fair turns.** Requests that must wait queue in arrival order within a :class:`Priority`
  (from the :data:`PRIORITY` context variable): a feed without a snapshot goes before a repair
  resync, which goes before a timer resync. The head of the queue is never overtaken, so a
  heavy request is not starved by light ones.
* **429** (:meth:`too_many`): every client of the budget pauses for ``Retry-After``.
* **418** (:meth:`banned`): an IP ban. Every queued and every later request fails at once with
  :class:`RestBanned` until the ban ends, so nothing at all reaches the venue; one warning.

Time spent queued here is not the venue being slow: a caller running under a deadline it set
with :func:`queue_time_exempt` (the driver's snapshot timeout) has that deadline paused while
it waits its turn.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import heapq
import itertools
import logging
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from connectors.errors import TransientError

log = logging.getLogger(__name__)


class Priority(enum.IntEnum):
    """Whose request goes first when the budget is short; lower goes first."""

    UNSYNCED = 0
    """A connection without its snapshot (a new account, a reconnect) and credential upkeep."""
    REPAIR = 1
    """A resync the stream asked for: the store may be wrong until it lands."""
    ROUTINE = 2
    """A timer resync of a feed that is synced and live."""


PRIORITY: ContextVar[Priority] = ContextVar("rest_priority", default=Priority.UNSYNCED)
"""The priority of the REST calls made in this context (the driver sets it per snapshot)."""


class RateLimited(TransientError):  # noqa: N818 - the venues' own term; it is an error
    """The venue asked us to slow down (HTTP 429), or a request could not be sent in time."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RestBanned(RateLimited):
    """The venue banned this IP from its REST API (Binance: HTTP 418) until ``until_ms``.

    ``since_ms`` is when the budget learnt of the ban: with the venue it names one ban, however
    many clients' requests fail with it."""

    def __init__(self, venue: str, since_ms: int, until_ms: int, retry_after_s: float) -> None:
        super().__init__(f"{venue}: REST banned for this IP until {until_ms} ms", retry_after_s)
        self.venue = venue
        self.since_ms = since_ms
        self.until_ms = until_ms


@dataclass(frozen=True, slots=True)
class WeightRule:
    """A venue's per-IP request-weight limit."""

    limit: int
    """Weight allowed per window."""
    window_ms: int
    """Window length; the venue counts per window aligned to the epoch (Binance: a minute)."""
    used_header: str | None
    """Lower-cased answer header carrying the venue's count for the current window."""
    headroom: float = 0.1
    """Fraction of ``limit`` never used: other software on the IP, the venue's own rounding."""
    burst: float = 1 / 12
    """Fraction of the usable weight that may be sent at once after a quiet spell."""

    def __post_init__(self) -> None:
        if self.limit <= 0 or self.window_ms <= 0:
            raise ValueError("weight rule: need limit > 0 and window_ms > 0")
        if not 0.0 <= self.headroom < 1.0 or not 0.0 < self.burst < 1.0:
            raise ValueError("weight rule: need 0 <= headroom < 1 and 0 < burst < 1")

    @property
    def usable(self) -> float:
        return self.limit * (1.0 - self.headroom)


class PausableDeadline:
    """An ``asyncio.timeout`` that stops running while its task waits for a budget turn."""

    def __init__(self, timeout: asyncio.Timeout) -> None:
        self._timeout = timeout
        self._paused = 0
        self._remaining: float | None = None

    def pause(self) -> None:
        self._paused += 1
        if self._paused == 1:
            when = self._timeout.when()
            loop = asyncio.get_running_loop()
            self._remaining = None if when is None else max(0.0, when - loop.time())
            if not self._timeout.expired():
                self._timeout.reschedule(None)

    def resume(self) -> None:
        self._paused -= 1
        if self._paused == 0 and self._remaining is not None and not self._timeout.expired():
            self._timeout.reschedule(asyncio.get_running_loop().time() + self._remaining)


_DEADLINE: ContextVar[PausableDeadline | None] = ContextVar("rest_deadline", default=None)


@contextlib.contextmanager
def queue_time_exempt(timeout: asyncio.Timeout) -> Iterator[None]:
    """Within this block, time queued for a budget turn does not run ``timeout`` down."""
    token = _DEADLINE.set(PausableDeadline(timeout))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


@dataclass(eq=False, slots=True)
class _Waiter:
    priority: int
    seq: int
    weight: int
    future: asyncio.Future[None]

    def __lt__(self, other: _Waiter) -> bool:
        return (self.priority, self.seq) < (other.priority, other.seq)


class WeightBudget:
    """The request weight of one venue and egress IP; see the module docstring."""

    def __init__(self, venue: str, rule: WeightRule, *, now_ms: Callable[[], float]) -> None:
        self.venue = venue
        self.rule = rule
        self._now_ms = now_ms
        usable = rule.usable
        self._usable = usable
        self._capacity = usable * rule.burst
        self._rate = (usable - self._capacity) / rule.window_ms  # weight per ms
        self._tokens = self._capacity
        self._tokens_at: float | None = None
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        """(when, weight) of what we sent in the last window, oldest first."""
        self._recent_sum = 0
        self._window: int | None = None
        self.window_used = 0.0
        """Our estimate of the venue's count in its current window (sent plus in flight)."""
        self.inflight = 0
        self._paused_until = 0.0
        self._ban: RestBanned | None = None
        self._queue: list[_Waiter] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self.sent_weight = 0
        """Weight admitted since start (a flow counter for tests and metrics)."""

    # --- taking a turn -------------------------------------------------------------------------

    async def take(self, weight: int) -> None:
        """Wait for this request's turn and count its ``weight`` as sent.

        Raises :class:`RestBanned` during a ban (at once, or when a ban starts while queued).
        The caller reports the answer with :meth:`answered`, whatever it was."""
        if not 0 < weight <= self._usable:
            raise ValueError(f"{self.venue}: request weight {weight} outside (0, usable]")
        now = self._now_ms()
        self._check_ban(now)
        if not self._queue and self._delay_ms(weight, now) <= 0.0:
            self._admit(weight, now)
            return
        loop = asyncio.get_running_loop()
        waiter = _Waiter(PRIORITY.get(), next(self._seq), weight, loop.create_future())
        heapq.heappush(self._queue, waiter)
        deadline = _DEADLINE.get()
        if deadline is not None:
            deadline.pause()
        try:
            self._pump()
            await waiter.future
        except BaseException:
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                # Admitted, but the caller was cancelled before it could send: the weight is
                # not in flight (it stays spent, the cautious side).
                self.answered(weight, None)
            raise
        finally:
            if deadline is not None:
                deadline.resume()
            if not waiter.future.done():
                waiter.future.cancel()  # cancelled while queued: the pump skips it
                self._pump()

    def answered(self, weight: int, used: int | None) -> None:
        """The request of ``weight`` got an answer (or failed); ``used`` is the venue's
        used-weight header, if the answer had one."""
        self.inflight -= weight
        now = self._now_ms()
        self._roll(now)
        if used is not None:
            # The venue counted everything it processed, maybe more than we sent (another
            # process on this IP); what we still have in flight may or may not be in it, so it
            # is added: the estimate errs high, never low.
            self.window_used = max(self.window_used, float(used + self.inflight))
        self._pump()

    # --- what the venue told us ----------------------------------------------------------------

    def too_many(self, retry_after_s: float) -> None:
        """HTTP 429: every client of this budget pauses for ``retry_after_s``."""
        until = self._now_ms() + retry_after_s * 1000.0
        if until > self._paused_until:
            if self._paused_until <= self._now_ms():
                log.warning(
                    "%s: the venue answered 429 (request weight over its limit); every REST "
                    "client of this IP pauses %.0f s",
                    self.venue,
                    retry_after_s,
                )
            self._paused_until = until
        self._pump()

    def banned(self, retry_after_s: float) -> RestBanned:
        """HTTP 418: the IP is banned for ``retry_after_s``. Fails every queued request and
        returns the exception for the caller to raise."""
        now = self._now_ms()
        until = int(now + retry_after_s * 1000.0)
        ban = self._ban
        if ban is None or now >= ban.until_ms:
            ban = RestBanned(self.venue, int(now), until, retry_after_s)
            log.warning(
                "%s: the venue BANNED this IP from its REST API (HTTP 418) for %.0f s; no "
                "snapshot or resync can run until the ban ends",
                self.venue,
                retry_after_s,
            )
        elif until > ban.until_ms:
            ban = RestBanned(self.venue, ban.since_ms, until, retry_after_s)
        self._ban = ban
        queued, self._queue = self._queue, []
        for waiter in queued:
            if not waiter.future.done():
                waiter.future.set_exception(self._ban_error(now))
        return self._ban_error(now)

    @property
    def banned_until_ms(self) -> int | None:
        ban = self._ban
        return None if ban is None or self._now_ms() >= ban.until_ms else ban.until_ms

    # --- plumbing ------------------------------------------------------------------------------

    def _ban_error(self, now: float) -> RestBanned:
        ban = self._ban
        assert ban is not None
        left_s = max(0.0, (ban.until_ms - now) / 1000.0)
        return RestBanned(self.venue, ban.since_ms, ban.until_ms, left_s)

    def _check_ban(self, now: float) -> None:
        ban = self._ban
        if ban is None:
            return
        if now < ban.until_ms:
            raise self._ban_error(now)
        log.info("%s: the REST ban has ended; requests resume", self.venue)
        self._ban = None

    def _roll(self, now: float) -> None:
        window = int(now // self.rule.window_ms)
        if window != self._window:
            # Requests still in flight may land in the new window: count them there.
            self._window = window
            self.window_used = float(max(self.inflight, 0))

    def _refill(self, now: float) -> None:
        if self._tokens_at is not None and now > self._tokens_at:
            self._tokens = min(self._capacity, self._tokens + (now - self._tokens_at) * self._rate)
        if self._tokens_at is None or now > self._tokens_at:
            self._tokens_at = now

    def _delay_ms(self, weight: int, now: float) -> float:
        """How long until ``weight`` may be sent (0: now)."""
        self._roll(now)
        self._refill(now)
        delay = self._paused_until - now
        # A request heavier than the bucket waits for a full bucket and leaves it in debt:
        # the debt is paid back by the refill, so no window ever gets more than it may.
        need = min(float(weight), self._capacity)
        if self._tokens < need:
            delay = max(delay, (need - self._tokens) / self._rate)
        delay = max(delay, self._sliding_delay_ms(weight, now))
        if self.window_used + weight > self._usable:
            window_ms = self.rule.window_ms
            delay = max(delay, (math.floor(now / window_ms) + 1) * window_ms - now)
        return delay

    def _sliding_delay_ms(self, weight: int, now: float) -> float:
        """How long until the last window's weight leaves room for ``weight``."""
        window_ms, recent = self.rule.window_ms, self._recent
        while recent and recent[0][0] <= now - window_ms:
            self._recent_sum -= recent.popleft()[1]
        excess = self._recent_sum + weight - self._usable
        if excess <= 0:
            return 0.0
        for sent_ms, sent_weight in recent:  # the oldest must leave the window first
            excess -= sent_weight
            if excess <= 0:
                return sent_ms + window_ms - now
        return 0.0  # pragma: no cover - take() refuses a weight above the usable weight

    def _admit(self, weight: int, now: float) -> None:
        self._recent.append((now, weight))
        self._recent_sum += weight
        self._tokens -= weight
        self.window_used += weight
        self.inflight += weight
        self.sent_weight += weight

    def _pump(self) -> None:
        """Admit queued requests in turn while they fit; else wake up when the head fits."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queue = self._queue
        while queue:
            head = queue[0]
            if head.future.done():
                heapq.heappop(queue)
                continue
            now = self._now_ms()
            if self._ban is not None and now < self._ban.until_ms:
                return  # banned() already failed the queue; nothing new is admitted
            delay = self._delay_ms(head.weight, now)
            if delay > 0.0:
                loop = asyncio.get_running_loop()
                # A millisecond late rather than early: waking early only re-arms the timer.
                self._timer = loop.call_later(delay / 1000.0 + 0.001, self._pump)
                return
            heapq.heappop(queue)
            self._admit(head.weight, now)
            head.future.set_result(None)

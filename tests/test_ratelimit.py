"""The shared request-weight budget, in virtual time: pacing, the venue's count, turns, 429/418.

Every test runs on a :class:`VirtualTimeLoop`, so a minute of waiting costs nothing; the
budget's clock is the loop's wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.fakes.vtime import VirtualTimeLoop
from connectors.ratelimit import (
    PRIORITY,
    Priority,
    RestBanned,
    WeightBudget,
    WeightRule,
    queue_time_exempt,
)

T = TypeVar("T")
RULE = WeightRule(limit=2400, window_ms=60_000, used_header="x-mbx-used-weight-1m")
USABLE = RULE.usable  # 2160


def run(make: Callable[[VirtualTimeLoop], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, VirtualTimeLoop)
        return runner.run(make(loop))


class Log:
    """Admissions as (wall ms, weight), by a client that answers every request at once."""

    def __init__(self, budget: WeightBudget, loop: VirtualTimeLoop) -> None:
        self.budget = budget
        self.loop = loop
        self.sent: list[tuple[int, int]] = []
        self.order: list[str] = []

    async def request(self, weight: int, label: str = "", used: int | None = None) -> None:
        await self.budget.take(weight)
        self.sent.append((self.loop.wall_ms(), weight))
        self.order.append(label)
        self.budget.answered(weight, used)


def budget_on(loop: VirtualTimeLoop, rule: WeightRule = RULE) -> WeightBudget:
    return WeightBudget("test", rule, now_ms=loop.wall_ms)


def max_in_any_window(sent: list[tuple[int, int]], window_ms: int) -> int:
    worst = 0
    for start, _ in sent:
        worst = max(worst, sum(w for t, w in sent if start <= t < start + window_ms))
    return worst


def max_in_calendar_window(sent: list[tuple[int, int]], window_ms: int) -> int:
    per: dict[int, int] = {}
    for t, w in sent:
        per[t // window_ms] = per.get(t // window_ms, 0) + w
    return max(per.values(), default=0)


# --- the property: no sequence of requests ever exceeds the limit in any window --------------


requests = st.lists(
    st.tuples(
        st.integers(0, 90_000),  # when it is asked for (ms after start)
        st.sampled_from([1, 1, 1, 5, 5, 10, 30, 50, 300, 2000]),  # up to beyond the bucket
        st.sampled_from(list(Priority)),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=100, deadline=None)
@given(requests, st.integers(0, 59_999))
def test_no_sequence_of_requests_exceeds_the_limit_in_any_window(
    plan: list[tuple[int, int, Priority]], phase_ms: int
) -> None:
    async def scenario(loop: VirtualTimeLoop) -> list[tuple[int, int]]:
        loop.epoch_ms = 1_700_000_000_000 - 1_700_000_000_000 % 60_000 + phase_ms
        log = Log(budget_on(loop), loop)

        async def one(at_ms: int, weight: int, priority: Priority) -> None:
            await asyncio.sleep(at_ms / 1000.0)
            PRIORITY.set(priority)
            await log.request(weight)

        async with asyncio.TaskGroup() as tg:
            for at_ms, weight, priority in plan:
                tg.create_task(one(at_ms, weight, priority))
        return log.sent

    sent = run(scenario)
    assert len(sent) == len(plan)  # everyone got a turn
    assert max_in_any_window(sent, 60_000) <= USABLE
    assert max_in_calendar_window(sent, 60_000) <= USABLE


def test_a_crowd_is_paced_not_fired_at_the_minute_boundary() -> None:
    async def scenario(loop: VirtualTimeLoop) -> list[tuple[int, int]]:
        log = Log(budget_on(loop), loop)
        async with asyncio.TaskGroup() as tg:
            for _ in range(1000):
                tg.create_task(log.request(5))
        return log.sent

    sent = run(scenario)
    start = sent[0][0]
    # 5,000 weight: a burst of 180, then 33/s: about two and a half minutes, evenly.
    assert 140_000 < sent[-1][0] - start < 160_000
    per_second: dict[int, int] = {}
    for t, w in sent:
        per_second[(t - start) // 1000] = per_second.get((t - start) // 1000, 0) + w
    assert max(v for k, v in per_second.items() if k > 0) <= 40  # no herd, ever
    assert max_in_any_window(sent, 60_000) <= USABLE


# --- the venue's own count ---------------------------------------------------------------------


def test_weight_reported_above_our_count_waits_for_the_next_window() -> None:
    async def scenario(loop: VirtualTimeLoop) -> tuple[int, int]:
        budget = budget_on(loop)
        log = Log(budget, loop)
        # Someone else on this IP has used 2,150 of this minute: the venue says so.
        await log.request(1, used=2151)
        asked = loop.wall_ms()
        await log.request(10)
        return asked, log.sent[-1][0]

    asked, sent = run(scenario)
    assert sent // 60_000 == asked // 60_000 + 1  # waited for the venue's next minute
    assert sent - asked <= 60_000


def test_in_flight_weight_counts_into_the_next_window() -> None:
    async def scenario(loop: VirtualTimeLoop) -> float:
        budget = budget_on(loop)
        await budget.take(100)  # never answered within this minute
        await asyncio.sleep((60_000 - loop.wall_ms() % 60_000) / 1000.0 + 0.001)
        budget.answered(0, None)  # any event after the boundary rolls the window
        return budget.window_used

    assert run(scenario) == 100.0


def test_a_caller_cancelled_as_its_turn_came_leaves_nothing_in_flight() -> None:
    async def scenario(loop: VirtualTimeLoop) -> int:
        budget = budget_on(loop)
        await budget.take(180)
        budget.answered(180, None)
        task = asyncio.ensure_future(budget.take(5))
        await asyncio.sleep(0)  # queued
        loop.advance(1.0)
        budget.answered(0, None)  # any answer runs the queue: its turn comes, admitted...
        assert budget.inflight == 5
        task.cancel()  # ...and cancelled before it ran on
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return budget.inflight

    assert run(scenario) == 0


# --- turns -------------------------------------------------------------------------------------


def test_a_feed_without_a_snapshot_goes_before_timer_resyncs() -> None:
    async def scenario(loop: VirtualTimeLoop) -> list[str]:
        log = Log(budget_on(loop), loop)
        await log.request(180, "drain")  # the bucket is empty now: everyone queues

        async def as_(priority: Priority, label: str) -> None:
            PRIORITY.set(priority)
            await log.request(5, label)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(as_(Priority.ROUTINE, "timer-1"))
            tg.create_task(as_(Priority.ROUTINE, "timer-2"))
            tg.create_task(as_(Priority.REPAIR, "repair"))
            tg.create_task(as_(Priority.UNSYNCED, "new-1"))
            tg.create_task(as_(Priority.UNSYNCED, "new-2"))
        return log.order[1:]

    assert run(scenario) == ["new-1", "new-2", "repair", "timer-1", "timer-2"]


def test_a_heavy_request_at_the_head_is_not_overtaken() -> None:
    async def scenario(loop: VirtualTimeLoop) -> list[str]:
        log = Log(budget_on(loop), loop)
        await log.request(180, "drain")
        async with asyncio.TaskGroup() as tg:
            tg.create_task(log.request(150, "heavy"))
            for i in range(5):
                tg.create_task(log.request(1, f"light-{i}"))
        return log.order[1:]

    assert run(scenario)[0] == "heavy"


def test_queued_time_does_not_run_a_snapshot_timeout_down() -> None:
    async def scenario(loop: VirtualTimeLoop) -> float:
        budget = budget_on(loop)
        await budget.take(2160)  # the whole minute's weight: the next request waits long
        budget.answered(2160, None)
        started = loop.time()
        async with asyncio.timeout(30.0) as deadline:
            with queue_time_exempt(deadline):
                await budget.take(5)  # ~60 s in the queue
                await asyncio.sleep(20.0)  # the venue being slow: this does count
        return loop.time() - started

    assert run(scenario) > 60.0

    async def too_slow(loop: VirtualTimeLoop) -> None:
        budget = budget_on(loop)
        await budget.take(2160)
        budget.answered(2160, None)
        async with asyncio.timeout(30.0) as deadline:
            with queue_time_exempt(deadline):
                await budget.take(5)
                await asyncio.sleep(31.0)

    with pytest.raises(TimeoutError):
        run(too_slow)


# --- what the venue says ----------------------------------------------------------------------


def test_429_pauses_every_client_for_retry_after() -> None:
    async def scenario(loop: VirtualTimeLoop) -> list[tuple[int, int]]:
        budget = budget_on(loop)
        log = Log(budget, loop)
        await log.request(1)
        told = loop.wall_ms()
        budget.too_many(7.0)
        async with asyncio.TaskGroup() as tg:
            for _ in range(3):
                tg.create_task(log.request(1))
        return [(t - told, w) for t, w in log.sent[1:]]

    assert all(after >= 7_000 for after, _ in run(scenario))


def test_418_fails_queued_and_new_requests_until_the_ban_ends() -> None:
    async def scenario(loop: VirtualTimeLoop) -> None:
        budget = budget_on(loop)
        log = Log(budget, loop)
        await log.request(180)
        queued = asyncio.ensure_future(log.request(5))
        await asyncio.sleep(0)
        start = loop.wall_ms()
        exc = budget.banned(120.0)
        assert (exc.since_ms, exc.until_ms) == (start, start + 120_000)
        with pytest.raises(RestBanned) as info:
            await queued
        assert info.value.since_ms == start
        await asyncio.sleep(100.0)
        with pytest.raises(RestBanned) as later:
            await budget.take(1)
        assert later.value.retry_after_s == pytest.approx(20.0)
        assert budget.banned_until_ms == start + 120_000
        await asyncio.sleep(20.0)
        await log.request(1)  # over: requests go again
        assert budget.banned_until_ms is None

    run(scenario)


def test_a_request_heavier_than_the_limit_is_refused() -> None:
    async def scenario(loop: VirtualTimeLoop) -> None:
        with pytest.raises(ValueError):
            await budget_on(loop).take(2161)

    run(scenario)


def test_rule_validation() -> None:
    with pytest.raises(ValueError):
        WeightRule(limit=0, window_ms=60_000, used_header=None)
    with pytest.raises(ValueError):
        WeightRule(limit=10, window_ms=60_000, used_header=None, burst=1.0)

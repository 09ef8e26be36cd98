"""Request weight against FakeBinance in virtual time: the fake's 429/418 rules, every client of
the IP backing off together, a ban stopping REST (and reported), and fleets of accounts that
converge without the fake's counter ever passing 2,400 in a minute.

Everything runs on a :class:`VirtualTimeLoop`: the fake's minutes, the budget's and the driver's
timers are one virtual clock, so fifteen minutes of a thousand accounts take seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
import pytest

from connectors.binance.feeds import BinanceUserFeed
from connectors.binance.rest import BinanceRest, Credentials, new_budget
from connectors.driver import run_feed
from connectors.events import AccountSnapshot, Event, FeedState, FeedStatus, RestBan
from connectors.fakes.binance import FakeAccount, FakeBinance
from connectors.fakes.binance.fleet import run_fleet
from connectors.fakes.binance.limits import LIMIT_1M
from connectors.fakes.vtime import LoopClock, VirtualTimeLoop
from connectors.http import HttpClient
from connectors.ratelimit import PRIORITY, Priority, WeightBudget
from rules.alert_doc import Level
from rules.alerts import rest_banned_alert

T = TypeVar("T")
IP = "127.0.0.1"
TIME = "/fapi/v1/time"
ROGUE = "/fapi/v1/ping"  # another program on the same IP: its own path, to tell it apart


def run(make: Callable[[VirtualTimeLoop], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, VirtualTimeLoop)
        return runner.run(make(loop))


def fake_on(loop: VirtualTimeLoop) -> FakeBinance:
    fake = FakeBinance(clock=LoopClock(loop))
    for name in ("alice", "bob"):
        fake.add_account(
            FakeAccount(name, api_key=f"k-{name}", secret=f"s-{name}", balances={"USDT": 1e4})
        )
    return fake


def rest_on(
    fake: FakeBinance, loop: VirtualTimeLoop, budget: WeightBudget, name: str
) -> BinanceRest:
    return BinanceRest(
        fake.spec,
        base_url=fake.rest_url,
        credentials=Credentials(f"k-{name}", f"s-{name}"),
        wall_ms=loop.wall_ms,
        budget=budget,
    )


async def ban_the_ip(fake: FakeBinance) -> None:
    """Another program on our IP spends the minute and keeps sending after its 429."""
    rogue = HttpClient(fake.rest_url)
    fake.rest.limits.spend(IP, LIMIT_1M, fake.clock.now_ms())
    assert (await rogue.request("GET", ROGUE)).status == 429
    await asyncio.sleep(2.0)  # past the fake's grace for requests already on their way
    assert (await rogue.request("GET", ROGUE)).status == 418
    await rogue.close()


# --- the fake answers as Binance does ----------------------------------------------------------


def test_the_fake_counts_weight_per_ip_answers_429_then_bans_longer_each_time() -> None:
    async def scenario(loop: VirtualTimeLoop) -> None:
        async with fake_on(loop) as fake:
            http = HttpClient(fake.rest_url)
            first = await http.request("GET", TIME)
            assert first.headers["x-mbx-used-weight-1m"] == "1"
            marks = await http.request("GET", "/fapi/v1/premiumIndex")  # all symbols: 10
            assert marks.headers["x-mbx-used-weight-1m"] == "11"

            fake.rest.limits.spend(IP, LIMIT_1M - 11, fake.clock.now_ms())  # 2,400 used
            now = fake.clock.now_ms()
            told = await http.request("GET", TIME)
            assert told.status == 429
            assert told.headers["x-mbx-used-weight-1m"] == "2401"
            assert int(told.headers["retry-after"]) == -(-(60_000 - now % 60_000) // 1000)
            body = orjson.loads(told.body)
            assert body["code"] == -1003
            assert body["msg"].startswith("Too many requests; current limit of IP(127.0.0.1)")
            # A request already on its way when the 429 went out is not held against us...
            assert (await http.request("GET", TIME)).status == 429
            await asyncio.sleep(2.0)
            # ...one sent a second later, while Retry-After still runs, is: a 2 min ban.
            banned = await http.request("GET", TIME)
            until = fake.clock.now_ms() + 120_000
            assert banned.status == 418
            assert banned.headers["retry-after"] == "120"
            body = orjson.loads(banned.body)
            assert body["code"] == -1003
            assert body["msg"] == (
                f"Way too many requests; IP(127.0.0.1) banned until {until}. "
                "Please use the websocket for live updates to avoid bans."
            )
            await asyncio.sleep(100.0)
            still = await http.request("GET", TIME)
            assert (still.status, still.headers["retry-after"]) == (418, "20")
            await asyncio.sleep(20.0)
            assert (await http.request("GET", TIME)).status == 200

            # A repeat offender is banned twice as long.
            fake.rest.limits.spend(IP, LIMIT_1M, fake.clock.now_ms())
            assert (await http.request("GET", TIME)).status == 429
            await asyncio.sleep(2.0)
            again = await http.request("GET", TIME)
            assert (again.status, again.headers["retry-after"]) == (418, "240")
            assert fake.rest.limits.bans == 2
            assert fake.rest.limits.max_used > LIMIT_1M  # recorded for the tests to assert
            await http.close()

    run(scenario)


# --- every client of the IP backs off together -------------------------------------------------


def test_a_429_pauses_every_client_of_the_ip_for_retry_after() -> None:
    async def scenario(loop: VirtualTimeLoop) -> None:
        async with fake_on(loop) as fake:
            budget = new_budget(fake.spec, loop.wall_ms)
            alice = rest_on(fake, loop, budget, "alice")
            bob = rest_on(fake, loop, budget, "bob")
            # Someone else on this IP used the whole minute; our budget cannot know yet.
            fake.rest.limits.spend(IP, LIMIT_1M, fake.clock.now_ms())
            start = fake.clock.now_ms()
            minute_ends = (start // 60_000 + 1) * 60_000

            async def bob_a_second_later() -> object:
                await asyncio.sleep(1.0)  # bob asks while alice's pause runs
                return await bob.signed("GET", fake.spec.account_path)

            got = await asyncio.gather(
                alice.signed("GET", fake.spec.account_path), bob_a_second_later()
            )
            assert all(isinstance(doc, dict) and "assets" in doc for doc in got)
            refused = [(t, path) for t, path, status in fake.rest.answers if status == 429]
            served = [t for t, path, status in fake.rest.answers if status == 200]
            # One 429 (alice's); bob did not send while it ran; both went after Retry-After.
            assert refused == [(start, fake.spec.account_path)]
            assert len(served) == 2
            assert min(served) >= minute_ends
            assert fake.rest.limits.bans == 0
            await alice.close()
            await bob.close()

    run(scenario)


# --- a ban stops REST for its length, streams stay up, and it is reported -----------------------


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived = asyncio.Event()

    def __call__(self, events: list[Event], recv_ms: int) -> None:
        self.events.extend(events)
        self.arrived.set()

    async def until(self, cond: Callable[[], bool]) -> None:
        async with asyncio.timeout(600.0):  # virtual seconds
            while not cond():
                await self.arrived.wait()
                self.arrived.clear()

    def synced(self, feed: str) -> bool:
        return any(
            type(e) is FeedStatus and e.feed == feed and e.state is FeedState.CONNECTED
            for e in self.events
        )

    def bans(self) -> list[RestBan]:
        return [e for e in self.events if type(e) is RestBan]

    def snapshot_after(self, account: str, ms: int) -> bool:
        return any(
            type(e) is AccountSnapshot and e.account == account and e.event_ms > ms
            for e in self.events
        )


def test_a_418_stops_the_venues_rest_for_the_ban_and_is_reported_once_per_feed() -> None:
    async def scenario(loop: VirtualTimeLoop) -> None:
        async with fake_on(loop) as fake:
            budget = new_budget(fake.spec, loop.wall_ms)
            feeds = [
                BinanceUserFeed(
                    fake.spec,
                    name,
                    rest_on(fake, loop, budget, name),
                    ws_base=fake.ws_url,
                    resync_interval_s=30.0,
                    keepalive_interval_s=20.0,  # listenKey upkeep meets the ban too
                    clock=loop.time,
                )
                for name in ("alice", "bob")
            ]
            sink = Sink()
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                for feed in feeds:
                    tg.create_task(
                        run_feed(feed, sink, clock=loop.time, wall_ms=loop.wall_ms, stop=stop)
                    )
                await sink.until(lambda: all(sink.synced(f.name) for f in feeds))
                connects = fake.connects

                await ban_the_ip(fake)
                banned_at = fake.clock.now_ms()
                await sink.until(lambda: len(sink.bans()) == 2)
                bans = sink.bans()
                assert {b.feed for b in bans} == {f.name for f in feeds}
                assert len({(b.since_ms, b.until_ms) for b in bans}) == 1  # one ban
                ban = bans[0]
                assert ban.until_ms == pytest.approx(banned_at + 120_000, abs=31_000)
                assert budget.banned_until_ms == ban.until_ms

                # Ours sent into the ban only what was on its way when the first 418 came back
                # (all at that one instant), then nothing until it ended.
                await sink.until(
                    lambda: all(sink.snapshot_after(f.account or "", ban.until_ms) for f in feeds)
                )
                during = [
                    t
                    for t, p, _ in fake.rest.answers
                    if p != ROGUE and banned_at <= t < ban.until_ms
                ]
                assert len(during) >= 1
                assert len(set(during)) == 1
                assert fake.connects == connects  # streams (and their keepalives) rode the ban out
                assert len(sink.bans()) == 2  # reported once per feed, not per retry
                stop.set()
            for feed in feeds:
                await feed.close()

            alert = rest_banned_alert(
                venue=ban.venue, since_ms=ban.since_ms, until_ms=ban.until_ms, recv_ms=ban.event_ms
            )
            twin = rest_banned_alert(
                venue=bans[1].venue,
                since_ms=bans[1].since_ms,
                until_ms=bans[1].until_ms,
                recv_ms=bans[1].event_ms,
            )
            assert (alert.kind, alert.level, alert.venue) == (
                "rest_banned",
                Level.CRITICAL,
                "binance-usdm",
            )
            assert alert.id == twin.id  # one ban, one alert id, whichever feed told
            assert "BANNED" in alert.message

    run(scenario)


def test_a_ban_met_before_the_first_snapshot_waits_it_out_then_syncs() -> None:
    async def scenario(loop: VirtualTimeLoop) -> None:
        async with fake_on(loop) as fake:
            budget = new_budget(fake.spec, loop.wall_ms)
            await ban_the_ip(fake)
            banned_until = fake.clock.now_ms() + 120_000
            feed = BinanceUserFeed(
                fake.spec,
                "alice",
                rest_on(fake, loop, budget, "alice"),
                ws_base=fake.ws_url,
                clock=loop.time,
            )
            sink = Sink()
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(
                    run_feed(feed, sink, clock=loop.time, wall_ms=loop.wall_ms, stop=stop)
                )
                await sink.until(lambda: sink.synced(feed.name))
                stop.set()
            await feed.close()
            assert [b.feed for b in sink.bans()] == [feed.name]
            ours = [(t, s) for t, p, s in fake.rest.answers if p != ROGUE]
            assert [s for t, s in ours if t < banned_until] == [418]  # one try, then it waited
            assert loop.wall_ms() >= banned_until

    run(scenario)


# --- turns and jitter as the driver takes them -------------------------------------------------


class RecordingFeed(BinanceUserFeed):
    """A user feed that notes the priority and virtual time of each snapshot it takes."""

    seen: list[tuple[float, Priority]]

    async def snapshot(self) -> tuple[list[Event], int]:
        self.seen.append((asyncio.get_running_loop().time(), PRIORITY.get()))
        return await super().snapshot()


def test_first_snapshots_go_first_and_timer_resyncs_are_jittered() -> None:
    async def scenario(loop: VirtualTimeLoop) -> list[tuple[float, Priority]]:
        async with fake_on(loop) as fake:
            budget = new_budget(fake.spec, loop.wall_ms)
            feed = RecordingFeed(
                fake.spec,
                "alice",
                rest_on(fake, loop, budget, "alice"),
                ws_base=fake.ws_url,
                resync_interval_s=100.0,
                clock=loop.time,
            )
            feed.seen = []
            sink = Sink()
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                # rng 1.0: the resync comes at the top of its jitter band, 120 s.
                tg.create_task(
                    run_feed(
                        feed,
                        sink,
                        clock=loop.time,
                        wall_ms=loop.wall_ms,
                        stop=stop,
                        rng=lambda: 1.0,
                    )
                )
                await sink.until(lambda: len(feed.seen) == 3)
                stop.set()
            await feed.close()
            return feed.seen

    seen = run(scenario)
    assert [p for _, p in seen] == [Priority.UNSYNCED, Priority.ROUTINE, Priority.ROUTINE]
    assert seen[2][0] - seen[1][0] == pytest.approx(120.0, abs=1.0)


# --- fleets ------------------------------------------------------------------------------------


def test_200_accounts_sync_within_3_minutes_never_above_2400_a_minute() -> None:
    # Then seven more minutes: the timer resyncs of a synced fleet stay inside the limit too.
    result = run(lambda loop: run_fleet(200, horizon_s=180.0, linger_s=420.0))
    assert result.synced == 200
    assert result.all_synced_s is not None and result.all_synced_s <= 180.0
    assert result.max_weight_1m <= LIMIT_1M
    assert (result.too_many, result.bans) == (0, 0)


def test_1000_accounts_sync_within_15_minutes_never_above_2400_a_minute() -> None:
    result = run(lambda loop: run_fleet(1000, horizon_s=900.0))
    assert result.synced == 1000
    assert result.all_synced_s is not None and result.all_synced_s <= 900.0
    assert result.max_weight_1m <= LIMIT_1M
    assert (result.too_many, result.bans) == (0, 0)

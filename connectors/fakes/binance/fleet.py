"""Many accounts against one fake Binance, in virtual time: does every feed sync, within the
venue's request-weight limit?

:func:`run_fleet` starts a :class:`FakeBinance` and, through the real driver, its market feed and
``accounts`` user feeds, every REST client sharing one :class:`~connectors.ratelimit.WeightBudget`
as the registry's feed factory arranges. It must run on a
:class:`~connectors.fakes.vtime.VirtualTimeLoop` (the fake's minutes and the budget's are the
loop's), and reports when the last feed synced and the fake's highest weight in any minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass

from connectors.backoff import Backoff
from connectors.binance.feeds import BinanceMarketFeed, BinanceUserFeed
from connectors.binance.rest import BinanceRest, Credentials, new_budget
from connectors.driver import run_feed
from connectors.events import Event, FeedState, FeedStatus
from connectors.fakes.binance.account import FakeAccount
from connectors.fakes.binance.server import FakeBinance
from connectors.fakes.vtime import LoopClock, VirtualTimeLoop
from connectors.protocol import Feed


@dataclass(frozen=True, slots=True)
class FleetResult:
    accounts: int
    synced: int
    """User feeds that synced (the market feed not counted)."""
    all_synced_s: float | None
    """Virtual seconds from start until every feed had synced (``None``: not all did)."""
    max_weight_1m: int
    """The fake's highest weight count of its IP in any minute."""
    too_many: int
    bans: int
    requests: int
    virtual_s: float
    real_s: float


class _Synced:
    """The driver's deliver callback: which feeds are up."""

    def __init__(self, loop: VirtualTimeLoop, feeds: int) -> None:
        self._loop = loop
        self._feeds = feeds
        self.up: set[str] = set()
        self.ever: set[str] = set()
        self.all_at: float | None = None
        self.done = asyncio.Event()

    def __call__(self, events: list[Event], recv_ms: int) -> None:
        for ev in events:
            if type(ev) is not FeedStatus:
                continue
            if ev.state in (FeedState.CONNECTED, FeedState.RESYNCED):
                self.up.add(ev.feed)
                self.ever.add(ev.feed)
            else:
                self.up.discard(ev.feed)
        if self.all_at is None and len(self.ever) == self._feeds:
            self.all_at = self._loop.time()
            self.done.set()


async def run_fleet(
    accounts: int,
    *,
    horizon_s: float,
    linger_s: float = 0.0,
    resync_interval_s: float = 300.0,
    seed: int = 1,
) -> FleetResult:
    """Run until every feed synced (at most ``horizon_s``), then ``linger_s`` more (virtual)."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeLoop):
        raise TypeError("run_fleet needs a VirtualTimeLoop")
    rng = random.Random(seed)
    started_real = time.perf_counter()
    async with FakeBinance(clock=LoopClock(loop)) as fake:
        names = [f"acct{i:04d}" for i in range(accounts)]
        for i, name in enumerate(names):
            acct = fake.add_account(
                FakeAccount(
                    name, api_key=f"k-{name}", secret=f"s-{name}", balances={"USDT": 10_000.0}
                )
            )
            if i % 2:
                acct.order("BTCUSDT", "BUY", 0.01 * (1 + i % 7))
        budget = new_budget(fake.spec, loop.wall_ms)

        def rest(creds: Credentials | None) -> BinanceRest:
            return BinanceRest(fake.spec, base_url=fake.rest_url, credentials=creds,
                               wall_ms=loop.wall_ms, budget=budget)  # fmt: skip

        # Nobody moves the fake's marks here: a quiet mark stream is not what is measured.
        market = BinanceMarketFeed(fake.spec, rest(None), ws_base=fake.ws_url,
                                   stale_after_s=float("inf"))  # fmt: skip
        feeds: list[Feed] = [market]
        feeds.extend(
            BinanceUserFeed(
                fake.spec,
                name,
                rest(Credentials(f"k-{name}", f"s-{name}")),
                ws_base=fake.ws_url,
                resync_interval_s=resync_interval_s,
                clock=loop.time,
            )
            for name in names
        )
        synced = _Synced(loop, len(feeds))
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            for feed in feeds:
                tg.create_task(
                    run_feed(
                        feed,
                        synced,
                        clock=loop.time,
                        wall_ms=loop.wall_ms,
                        stop=stop,
                        backoff=Backoff(rng=rng.random),
                        rng=rng.random,
                    )
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(horizon_s):
                    await synced.done.wait()
            if synced.all_at is not None:
                await asyncio.sleep(linger_s)  # timer resyncs of a synced fleet, too
            stop.set()
        for feed in feeds:
            with contextlib.suppress(Exception):
                await feed.close()
        limits = fake.rest.limits
        return FleetResult(
            accounts=accounts,
            synced=len(synced.ever) - (feeds[0].name in synced.ever),
            all_synced_s=synced.all_at,
            max_weight_1m=limits.max_used,
            too_many=limits.too_many,
            bans=limits.bans,
            requests=len(fake.rest.calls),
            virtual_s=loop.time(),
            real_s=time.perf_counter() - started_real,
        )


def main(argv: list[str] | None = None) -> None:
    """``python -m connectors.fakes.binance.fleet 1000``: one fleet run, its figures printed."""
    import argparse  # noqa: PLC0415 - only for this command line

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("accounts", type=int)
    parser.add_argument("--horizon-s", type=float, default=900.0)
    parser.add_argument("--linger-s", type=float, default=0.0)
    parser.add_argument("--resync-interval-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        result = runner.run(
            run_fleet(
                args.accounts,
                horizon_s=args.horizon_s,
                linger_s=args.linger_s,
                resync_interval_s=args.resync_interval_s,
            )
        )
    synced = "never" if result.all_synced_s is None else f"{result.all_synced_s:.1f} s"
    print(
        f"{result.synced}/{result.accounts} accounts synced; all by {synced} (virtual); "
        f"max weight in a minute {result.max_weight_1m}; 429s {result.too_many}; "
        f"bans {result.bans}; requests {result.requests}; "
        f"ran {result.virtual_s:.0f} s virtual in {result.real_s:.1f} s real"
    )


if __name__ == "__main__":
    main()

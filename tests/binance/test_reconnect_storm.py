"""Reconnect storm: the real driver, store and engine against FakeBinance while the fake drops
sockets and expires listenKeys at random during a seeded trading session.

At the end the store equals the fake's accounts exactly (positions, balances, and maintenance
margin against the fake's own ``totalMaintMargin``), and every venue-relayed alert (margin
call, liquidation) that was delivered arrived under one id only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import Callable
from typing import Any

import pytest

from connectors.backoff import Backoff
from connectors.binance.feeds import BinanceMarketFeed, BinanceUserFeed
from connectors.binance.rest import BinanceRest, Credentials
from connectors.driver import run_feed
from connectors.events import AccountSnapshot, Event, MarkPrice
from connectors.fakes.binance import FakeAccount, FakeBinance
from connectors.protocol import Feed
from monitor.engine import Engine
from monitor.store import Store
from rules.alerts import Alert, AlertConfig

V = "binance-usdm"
ACCOUNTS = {"alice": False, "bob": True, "carol": False}  # name -> hedge mode


class Recorder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.alerts: list[Alert] = []
        self.events: list[Event] = []
        self.arrived = asyncio.Event()

    def __call__(self, events: list[Event], recv_ms: int) -> None:
        self.events.extend(events)
        self.alerts.extend(self.engine.handle(events, recv_ms))
        self.arrived.set()

    async def until(self, cond: Callable[[], bool]) -> None:
        async with asyncio.timeout(20.0):
            while not cond():
                await self.arrived.wait()
                self.arrived.clear()

    def snapshot_after(self, account: str, ms: int) -> bool:
        return any(
            isinstance(e, AccountSnapshot) and e.account == account and e.event_ms > ms
            for e in self.events
        )


def _rest(fake: FakeBinance, name: str | None) -> BinanceRest:
    creds = None if name is None else Credentials(f"key-{name}", f"secret-{name}")
    return BinanceRest(fake.spec, base_url=fake.rest_url, credentials=creds)


def _step(rng: random.Random, fake: FakeBinance) -> None:
    """One random account or market action."""
    name = rng.choice(list(ACCOUNTS))
    acct = fake.account(name)
    roll = rng.random()
    symbol = rng.choice(["BTCUSDT", "ETHUSDT"])
    if roll < 0.45:
        qty = round(rng.uniform(0.01, 3.0) if symbol == "BTCUSDT" else rng.uniform(0.1, 40), 3)
        side = rng.choice(["BUY", "SELL"])
        if acct.hedge:
            ps = rng.choice(["LONG", "SHORT"])
            acct.order(symbol, side, qty, position_side=ps)
        else:
            acct.order(symbol, side, qty)
    elif roll < 0.75:
        fake.set_mark(symbol, round(fake.marks[symbol] * rng.uniform(0.97, 1.03), 2))
    elif roll < 0.85:
        acct.funding(symbol, rng.choice([0.0001, -0.0002, 0.0003]))
    elif roll < 0.92:
        acct.deposit("USDT", round(rng.uniform(-500, 1000), 2))
    else:
        acct.set_leverage(symbol, rng.choice([5, 10, 20]))


async def _relayed(rec: Recorder, name: str, kind: str, count: int, act: Any) -> None:
    """Run a venue-alert action while the account's stream is synced; wait for its alerts."""

    def ids() -> int:
        return len({a.id for a in rec.alerts if a.kind == kind and a.account == name})

    before = ids()
    act()
    await rec.until(lambda: ids() >= before + count)


@pytest.mark.parametrize("seed", [7, 2024])
async def test_reconnect_storm(seed: int) -> None:
    rng = random.Random(seed)
    async with FakeBinance() as fake:
        for name, hedge in ACCOUNTS.items():
            fake.add_account(
                FakeAccount(
                    name,
                    api_key=f"key-{name}",
                    secret=f"secret-{name}",
                    balances={"USDT": 50_000.0},
                    hedge=hedge,
                )
            )
        store = Store()
        engine = Engine(store, lambda key: AlertConfig(), [])
        rec = Recorder(engine)
        feeds: list[Feed] = [
            BinanceMarketFeed(
                fake.spec, _rest(fake, None), ws_base=fake.ws_url, resync_interval_s=2.0
            )
        ]
        feeds.extend(
            BinanceUserFeed(
                fake.spec, name, _rest(fake, name), ws_base=fake.ws_url, resync_interval_s=2.0
            )
            for name in ACCOUNTS
        )
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            for feed in feeds:
                backoff = Backoff(initial_s=0.01, max_s=0.05, rng=rng.random)
                tg.create_task(run_feed(feed, rec, stop=stop, backoff=backoff))
            start = fake.clock.now_ms()
            await rec.until(lambda: all(rec.snapshot_after(n, start - 10) for n in ACCOUNTS))

            faults = 0
            expected = {"venue_margin_call": 0, "position_liquidated": 0}
            for i in range(120):
                _step(rng, fake)
                if rng.random() < 0.08:
                    faults += 1
                    if rng.random() < 0.5:
                        fake.drop_sockets()
                    else:
                        fake.expire_listen_key(rng.choice(list(ACCOUNTS)))
                if i % 40 == 39:
                    # Venue alerts, sent while the stream is synced, must arrive exactly once.
                    name = rng.choice(list(ACCOUNTS))
                    now = fake.clock.now_ms()
                    await rec.until(functools.partial(rec.snapshot_after, name, now))
                    acct = fake.account(name)
                    await _relayed(rec, name, "venue_margin_call", 1, acct.margin_call)
                    expected["venue_margin_call"] += 1
                    if n_open := len(acct.open_positions()):
                        await _relayed(rec, name, "position_liquidated", n_open, acct.liquidate)
                        expected["position_liquidated"] += n_open
                # Pacing only (the session is time-based, like a market): not a wait for state.
                await asyncio.sleep(0.005)
            assert faults > 0

            # Quiesce: a snapshot of every account taken after the last action, and the marks.
            end = fake.clock.now_ms()
            await rec.until(lambda: all(rec.snapshot_after(n, end) for n in ACCOUNTS))
            final_marks = dict(fake.marks)
            await rec.until(
                lambda: all(
                    any(
                        isinstance(e, MarkPrice) and e.symbol == s and e.mark == m
                        for e in rec.events
                    )
                    for s, m in final_marks.items()
                )
            )
            stop.set()
        for feed in feeds:
            with contextlib.suppress(Exception):
                await feed.close()

    for name in ACCOUNTS:
        acct = fake.account(name)
        key = (V, name)
        state = store.state(key)
        ours = {(leg.symbol, leg.side.name): (leg.qty, leg.entry) for leg in state.legs.values()
                if leg.qty != 0.0}  # fmt: skip
        theirs = {(p.symbol, p.side): (p.qty, p.entry) for p in acct.open_positions()}
        assert ours == theirs, name
        assert state.balances == acct.balances, name
        figures = store.figures(key)
        assert figures.maintenance_margin == pytest.approx(acct.total_maint_margin(), rel=1e-9)

    relayed = {a.id for a in rec.alerts if a.kind in ("venue_margin_call", "position_liquidated")}
    assert expected["venue_margin_call"] > 0
    # Every relayed venue alert arrived (none missing), and repeats share their id (none extra).
    assert len(relayed) == expected["venue_margin_call"] + expected["position_liquidated"]

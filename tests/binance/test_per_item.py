"""One bad item costs only itself: mark arrays, premiumIndex rows, bracket tables; symbols
listed after the caches were filled; a rejected private frame asks for a resync."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TypeVar

import orjson
import pytest

from connectors.binance.feeds import BinanceMarketFeed, BinanceUserFeed
from connectors.binance.parse import parse_frame, parse_many
from connectors.binance.rest import BinanceRest, Credentials
from connectors.binance.snapshots import parse_premium_index
from connectors.driver import run_feed
from connectors.errors import VenueDataError
from connectors.events import (
    AccountSnapshot,
    Event,
    Instrument,
    MarkPrice,
    MarkRun,
    PositionSnapshot,
    TierTableUpdate,
)
from connectors.fakes.binance import FakeAccount, FakeBinance, ManualClock
from connectors.fakes.binance.account import Bracket, Contract
from connectors.protocol import ResyncRequest
from rules.types import Side

V = "binance-usdm"
E = TypeVar("E")
T0 = 1_700_000_000_000

# Floors not contiguous (tier 2 starts at 60 000, tier 1 ends at 50 000): the rules reject it.
BAD = Contract(
    "BADUSDT",
    "USDT",
    1.0,
    (Bracket(0.0, 50_000.0, 0.004, 0.0, 125), Bracket(60_000.0, 1e9, 0.005, 50.0, 100)),
)
SOL = Contract("SOLUSDT", "USDT", 1.0, (Bracket(0.0, 1e9, 0.01, 0.0, 50),))


def _mark(symbol: str, p: str) -> dict[str, object]:
    return {"e": "markPriceUpdate", "E": T0, "s": symbol, "p": p, "i": "1", "P": "1", "r": "0"}


def test_one_bad_item_of_a_mark_array_costs_only_itself() -> None:
    frame = orjson.dumps(
        {
            "stream": "!markPrice@arr@1s",
            "data": [_mark("BTCUSDT", "60000.5"), _mark("DEADUSDT", "0.00000000"),
                     _mark("ETHUSDT", "3000.25")],
        }
    )  # fmt: skip
    good = [MarkPrice(V, "BTCUSDT", 60000.5, T0, 1.0), MarkPrice(V, "ETHUSDT", 3000.25, T0, 1.0)]
    out: list[Event] = []
    errors = parse_many([frame], out, V)
    # The market kernel hands the good marks over as one run (which carries no index price).
    assert len(out) == 1 and isinstance(out[0], MarkRun)
    assert out[0].marks() == [replace(m, index=None) for m in good]
    assert [e.reason for e in errors] == ["bad_value"]
    assert parse_frame(frame, V, None) == good
    # Only when no item decodes is the frame itself rejected.
    with pytest.raises(VenueDataError):
        parse_frame(orjson.dumps([_mark("DEADUSDT", "0")]), V, None)


def test_one_bad_premium_index_row_costs_only_itself() -> None:
    rows = [
        {"symbol": "BTCUSDT", "markPrice": "60000.5", "indexPrice": "60001", "time": T0},
        {"symbol": "ODDUSDT", "markPrice": "", "indexPrice": "1", "time": T0},
        {"symbol": "ETHUSDT", "markPrice": "3000", "indexPrice": "", "time": T0},
    ]
    errors: list[VenueDataError] = []
    assert parse_premium_index(orjson.dumps(rows), V, errors) == [
        MarkPrice(V, "BTCUSDT", 60000.5, T0, 60001.0),
        MarkPrice(V, "ETHUSDT", 3000.0, T0, None),
    ]
    assert [e.reason for e in errors] == ["bad_value"]


# --- against the fake -------------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived = asyncio.Event()

    def __call__(self, events: list[Event], recv_ms: int) -> None:
        self.events.extend(events)
        self.arrived.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def marks(self) -> list[MarkPrice]:
        """Every mark in arrival order, a batch's ``MarkRun`` taken apart."""
        return [m for e in self.events for m in (e.marks() if isinstance(e, MarkRun) else [e])
                if isinstance(m, MarkPrice)]  # fmt: skip


class Observer:
    def __init__(self, sink: Sink) -> None:
        self.frames = 0
        self.rejected: list[tuple[str, str]] = []
        self._sink = sink

    def frames_received(self, venue: str, n: int) -> None:
        self.frames += n
        self._sink.arrived.set()

    def frame_rejected(self, venue: str, reason: str) -> None:
        self.rejected.append((venue, reason))
        self._sink.arrived.set()

    def reconnect(self, feed: str, reason: str) -> None:
        return None


async def until(event: asyncio.Event, cond: Callable[[], bool]) -> None:
    async with asyncio.timeout(5.0):
        while not cond():
            await event.wait()
            event.clear()


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(clock=ManualClock(T0)) as venue:
        venue.add_account(
            FakeAccount("alice", api_key="ak", secret="as", balances={"USDT": 100_000.0})
        )
        yield venue


def _rest(fake: FakeBinance, creds: bool = True) -> BinanceRest:
    return BinanceRest(
        fake.spec,
        base_url=fake.rest_url,
        credentials=Credentials("ak", "as") if creds else None,
        wall_ms=lambda: float(fake.clock.now_ms()),
    )


def _list(fake: FakeBinance, contract: Contract, mark: float) -> None:
    fake.contracts[contract.symbol] = contract
    fake.marks[contract.symbol] = mark


async def test_market_feed_keeps_good_marks_and_counts_each_bad_item(fake: FakeBinance) -> None:
    feed = BinanceMarketFeed(fake.spec, _rest(fake, creds=False), ws_base=fake.ws_url)
    sink = Sink()
    obs = Observer(sink)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_feed(feed, sink, observer=obs, stop=stop))
        # The SUBSCRIBE ack is the first frame: the fake has registered the stream by then.
        await until(sink.arrived, lambda: obs.frames >= 1 and bool(sink.of(MarkPrice)))
        fake.set_marks({"BTCUSDT": 61_000.0, "DEADUSDT": 0.0, "ETHUSDT": 3_100.0})
        await until(sink.arrived, lambda: obs.frames >= 2)
        stop.set()
    await feed.close()
    pushed = [(m.symbol, m.mark) for m in sink.marks()][-2:]
    assert pushed == [("BTCUSDT", 61_000.0), ("ETHUSDT", 3_100.0)]
    assert obs.rejected == [(V, "bad_value")]


async def test_a_rejected_bracket_table_costs_only_its_symbol(fake: FakeBinance) -> None:
    _list(fake, BAD, 10.0)
    alice = fake.account("alice")
    alice.order("BTCUSDT", "BUY", 1.0)
    feed = BinanceUserFeed(fake.spec, "alice", _rest(fake), ws_base=fake.ws_url)
    events, _ = await feed.snapshot()  # raised bad_brackets for the whole account before
    assert {e.symbol for e in events if isinstance(e, TierTableUpdate)} == {"BTCUSDT", "ETHUSDT"}
    (snap,) = [e for e in events if isinstance(e, AccountSnapshot)]
    assert [(p.symbol, p.qty) for p in snap.positions] == [("BTCUSDT", 1.0)]
    assert [(e.reason, e.detail) for e in feed.snapshot_rejections()] == [
        ("bad_brackets", "BADUSDT")
    ]
    assert feed.snapshot_rejections() == []  # drained

    # Held: the snapshot still comes, with the position and without the table.
    alice.order("BADUSDT", "BUY", 5.0)
    events, _ = await feed.snapshot()
    (snap,) = [e for e in events if isinstance(e, AccountSnapshot)]
    assert sorted((p.symbol, p.qty) for p in snap.positions) == [
        ("BADUSDT", 5.0),
        ("BTCUSDT", 1.0),
    ]
    assert "BADUSDT" not in {e.symbol for e in events if isinstance(e, TierTableUpdate)}
    assert [e.reason for e in feed.snapshot_rejections()] == ["bad_brackets"]
    await feed.close()


async def test_a_held_symbol_missing_from_the_cache_refetches_it_in_the_snapshot(
    fake: FakeBinance,
) -> None:
    feed = BinanceUserFeed(fake.spec, "alice", _rest(fake), ws_base=fake.ws_url)
    await feed.snapshot()  # caches filled: BTCUSDT, ETHUSDT
    _list(fake, SOL, 150.0)
    fake.account("alice").order("SOLUSDT", "BUY", 10.0)
    events, _ = await feed.snapshot()
    assert [e.symbol for e in events if isinstance(e, Instrument)] == [
        "BTCUSDT", "ETHUSDT", "SOLUSDT"
    ]  # fmt: skip
    assert "SOLUSDT" in {e.symbol for e in events if isinstance(e, TierTableUpdate)}
    # Instruments and tables precede the snapshot that holds the position.
    kinds = [type(e) for e in events]
    assert kinds.index(AccountSnapshot) == len(kinds) - 1
    await feed.close()


async def test_a_position_on_a_symbol_the_caches_lack_asks_for_a_resync(fake: FakeBinance) -> None:
    feed = BinanceUserFeed(fake.spec, "alice", _rest(fake), ws_base=fake.ws_url)
    assert feed.after_events([_leg("SOLUSDT")]) is None  # nothing cached yet: nothing to judge
    await feed.snapshot()  # caches filled: BTCUSDT, ETHUSDT
    assert feed.after_events([_leg("BTCUSDT")]) is None
    assert feed.after_events([_leg("BTCUSDT"), _leg("SOLUSDT")]) == ResyncRequest("new_symbol")
    # The request dropped both caches: the next snapshot refetches them (and lists SOLUSDT).
    _list(fake, SOL, 150.0)
    events, _ = await feed.snapshot()
    assert "SOLUSDT" in {e.symbol for e in events if isinstance(e, Instrument)}
    await feed.close()


def _leg(symbol: str) -> PositionSnapshot:
    return PositionSnapshot(V, "alice", symbol, Side.LONG, 1.0, 100.0, T0)


async def test_a_push_on_a_new_symbol_resyncs_at_once_with_its_facts(fake: FakeBinance) -> None:
    feed = BinanceUserFeed(fake.spec, "alice", _rest(fake), ws_base=fake.ws_url)
    sink = Sink()
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_feed(feed, sink, stop=stop))  # timer resync: 300 s, out of reach
        await until(sink.arrived, lambda: len(sink.of(AccountSnapshot)) == 1)
        _list(fake, SOL, 150.0)
        fake.account("alice").order("SOLUSDT", "SELL", 4.0)  # ACCOUNT_UPDATE + fill pushed
        await until(sink.arrived, lambda: len(sink.of(AccountSnapshot)) == 2)
        stop.set()
    await feed.close()
    assert "SOLUSDT" in {e.symbol for e in sink.of(Instrument)}
    assert "SOLUSDT" in {e.symbol for e in sink.of(TierTableUpdate)}
    last = sink.of(AccountSnapshot)[-1]
    assert [(p.symbol, p.qty) for p in last.positions] == [("SOLUSDT", -4.0)]


async def test_a_rejected_private_frame_resyncs_soon(fake: FakeBinance) -> None:
    feed = BinanceUserFeed(fake.spec, "alice", _rest(fake), ws_base=fake.ws_url)
    sink = Sink()
    obs = Observer(sink)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_feed(feed, sink, observer=obs, stop=stop))
        await until(sink.arrived, lambda: len(sink.of(AccountSnapshot)) == 1)
        fake.send_malformed(1)  # "{not json" on the private stream
        await until(sink.arrived, lambda: len(sink.of(AccountSnapshot)) == 2)
        stop.set()
    await feed.close()
    assert obs.rejected == [(V, "bad_json")]

"""Every feed implements the whole :class:`connectors.protocol.Feed`, and the driver uses nothing
else: a feed that exposes only the declared members runs, private and market alike."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence

import orjson
import pytest

from connectors.backoff import Backoff
from connectors.binance.feeds import BinanceMarketFeed, BinanceUserFeed
from connectors.binance.parse import parse_frame
from connectors.binance.rest import BinanceRest, Credentials
from connectors.binance.spec import SPECS
from connectors.driver import run_feed
from connectors.errors import VenueDataError
from connectors.events import (
    AccountSnapshot,
    BalanceUpdate,
    Event,
    FeedState,
    FeedStatus,
    MarkPrice,
    MarkRun,
)
from connectors.fakes.sim.server import SimVenue
from connectors.feed_times import FeedTimes
from connectors.protocol import BatchParse, Feed, ResyncRequest
from connectors.sim import protocol as sim_protocol
from connectors.sim.feed import SimAccountFeed, SimMarketFeed

USDM = SPECS["binance-usdm"]
T0 = 1_700_000_000_000


def _feeds() -> list[Feed]:
    # Annotated as Feed: mypy checks each class against the whole protocol here.
    rest = BinanceRest(USDM, base_url="http://127.0.0.1:1", credentials=Credentials("k", "s"))
    return [
        BinanceMarketFeed(USDM, rest, stale_after_s=15.0, resync_interval_s=300.0),
        BinanceUserFeed(USDM, "alice", rest, resync_interval_s=300.0),
        SimMarketFeed("127.0.0.1", 1, stale_after_s=5.0),
        SimAccountFeed("127.0.0.1", 1, "alice", keepalive_interval_s=None),
    ]


def test_timing_is_a_value_each_feed_holds() -> None:
    inf = float("inf")
    assert [f.times for f in _feeds()] == [
        FeedTimes(15.0, 300.0, None, 23.5 * 3600.0, None),
        FeedTimes(inf, 300.0, None, 23.5 * 3600.0, 1800.0),
        FeedTimes(5.0, 300.0, 15.0, None, None),
        FeedTimes(60.0, 120.0, 15.0, None, None),
    ]
    assert not any(isinstance(f, FeedTimes) for f in _feeds())  # composed, not inherited
    with pytest.raises(dataclasses.FrozenInstanceError):
        _feeds()[0].times.stale_after_s = 1.0  # type: ignore[misc]


def test_market_feeds_decode_in_batches_private_feeds_frame_by_frame() -> None:
    assert [f.batch_parse is not None for f in _feeds()] == [True, False, True, False]


async def test_a_private_feed_with_a_batch_decoder_is_refused() -> None:
    class Batching(SimAccountFeed):
        batch_parse: BatchParse | None = staticmethod(sim_protocol.parse_many)

    with pytest.raises(ValueError, match="private feed must not have a batch_parse"):
        await run_feed(Batching("127.0.0.1", 1, "bob"), lambda events, ms: None)


def test_the_binance_batch_decoder_agrees_with_parse() -> None:
    (market, *_) = _feeds()
    frames = [
        orjson.dumps(
            {"e": "markPriceUpdate", "E": T0, "s": s, "p": p, "i": "1", "P": "1", "r": "0"}
        )
        for s, p in (("BTCUSDT", "60000.5"), ("ETHUSDT", "0"), ("SOLUSDT", "150.25"))
    ]
    batch_parse: BatchParse | None = market.batch_parse
    assert batch_parse is not None
    out: list[Event] = []
    errors = batch_parse(frames, out)
    one_by_one: list[Event] = []
    reasons: list[str] = []
    for frame in frames:
        try:
            one_by_one += market.parse(frame)
        except VenueDataError as exc:
            reasons.append(exc.reason)
    plain = parse_frame(frames[0], USDM.venue, None) + parse_frame(frames[2], USDM.venue, None)
    # The kernel delivers its marks as one MarkRun; the plain path as MarkPrice events.
    assert _marks(out) == _marks(one_by_one) == _marks(plain)
    assert [s for _, s, _, _ in _marks(out)] == ["BTCUSDT", "SOLUSDT"]
    assert [e.reason for e in errors] == reasons == ["bad_value"]


def _marks(events: list[Event]) -> list[tuple[str, str, float, int]]:
    out: list[tuple[str, str, float, int]] = []
    for ev in events:
        if isinstance(ev, MarkRun):
            out += [(ev.venue, q.symbol, q.mark, q.event_ms) for q in ev.quotes]
        else:
            assert isinstance(ev, MarkPrice)
            out.append((ev.venue, ev.symbol, ev.mark, ev.event_ms))
    return out


def test_only_the_binance_user_feed_asks_for_resyncs_and_only_after_parsing() -> None:
    frame = orjson.dumps({"e": "ACCOUNT_CONFIG_UPDATE", "E": T0, "T": T0, "ai": {"j": True}})
    market, user, sim_market, sim_account = _feeds()
    events = user.parse(frame)
    assert user.after_events(events) == ResyncRequest("collateral_mode")
    assert [f.after_events(events) for f in (market, sim_market, sim_account)] == [None] * 3
    assert [f.snapshot_rejections() for f in _feeds()] == [[], [], [], []]


class _OnlyDeclared:
    """Exactly the members :class:`Feed` declares, delegated: any other lookup by the driver
    would be an ``AttributeError`` here."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Feed) -> None:
        self._inner = inner

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def venue(self) -> str:
        return self._inner.venue

    @property
    def account(self) -> str | None:
        return self._inner.account

    @property
    def times(self) -> FeedTimes:
        return self._inner.times

    @property
    def batch_parse(self) -> BatchParse | None:
        return self._inner.batch_parse

    async def connect_url(self) -> str:
        return await self._inner.connect_url()

    def subscribe_messages(self) -> Sequence[str]:
        return self._inner.subscribe_messages()

    def app_ping(self) -> str | None:
        return self._inner.app_ping()

    def parse(self, frame: bytes | str) -> list[Event]:
        return self._inner.parse(frame)

    def after_events(self, events: Sequence[Event]) -> ResyncRequest | None:
        return self._inner.after_events(events)

    async def snapshot(self) -> tuple[list[Event], int]:
        return await self._inner.snapshot()

    def snapshot_rejections(self) -> list[VenueDataError]:
        return self._inner.snapshot_rejections()

    async def keepalive(self) -> None:
        await self._inner.keepalive()

    async def close(self) -> None:
        await self._inner.close()


class _Observer:
    __slots__ = ("frames", "rejected")

    def __init__(self) -> None:
        self.frames = 0
        self.rejected: list[str] = []

    def frames_received(self, venue: str, n: int) -> None:
        self.frames += n

    def frame_rejected(self, venue: str, reason: str) -> None:
        self.rejected.append(reason)

    def reconnect(self, feed: str, reason: str) -> None:
        raise AssertionError(f"reconnect: {reason}")


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    async with SimVenue(autoplay=False, wall_ms=lambda: T0) as v:
        yield v


@pytest.mark.parametrize("private", [False, True])
async def test_a_feed_with_only_the_declared_members_runs(venue: SimVenue, private: bool) -> None:
    inner: Feed = (
        SimAccountFeed(
            venue.host, venue.port, "bob", app_ping_interval_s=0.01, keepalive_interval_s=0.01
        )
        if private
        else SimMarketFeed(venue.host, venue.port, app_ping_interval_s=0.01)
    )
    events: list[Event] = []
    arrived = asyncio.Event()

    def deliver(batch: list[Event], recv_ms: int) -> None:
        events.extend(batch)
        arrived.set()

    async def until_delivered(pred: type[Event]) -> None:
        async with asyncio.timeout(10):
            while not any(isinstance(e, pred) for e in events):
                arrived.clear()
                await arrived.wait()

    observer = _Observer()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_feed(_OnlyDeclared(inner), deliver, observer=observer, stop=stop, backoff=Backoff())
    )
    try:
        await until_delivered(FeedStatus)
        if private:
            venue.push_balance("bob", "USDT", 3.0, event_ms=T0 + 1)
            await until_delivered(BalanceUpdate)
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task  # returns cleanly: the driver touched nothing undeclared
    statuses = [e.state for e in events if isinstance(e, FeedStatus)]
    assert statuses == [FeedState.CONNECTED]
    assert observer.frames >= 1 and observer.rejected == []
    if private:
        assert any(isinstance(e, AccountSnapshot) for e in events)

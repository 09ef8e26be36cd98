"""The real connector against FakeBinance over loopback: REST signing, listenKey lifecycle,
pings, the combined envelope, and the driver's snapshot-then-stream with key expiry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from connectors.binance.feeds import BinanceMarketFeed, BinanceUserFeed, subscribe_frames
from connectors.binance.rest import BinanceRest, Credentials, ListenKeyGone
from connectors.driver import run_feed
from connectors.errors import AuthError, TransientError
from connectors.events import (
    AccountSnapshot,
    BalanceUpdate,
    Event,
    MarkPrice,
    PositionFill,
    PositionSnapshot,
    TierTableUpdate,
)
from connectors.fakes.binance import FakeAccount, FakeBinance, ManualClock
from rules.types import Side

V = "binance-usdm"
E = TypeVar("E")
MIN = 60_000


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeBinance]:
    async with FakeBinance(clock=clock) as venue:
        venue.add_account(
            FakeAccount("alice", api_key="ak", secret="as", balances={"USDT": 100_000.0})
        )
        yield venue


def rest_for(fake: FakeBinance, key: str = "ak", secret: str = "as") -> BinanceRest:
    return BinanceRest(
        fake.spec,
        base_url=fake.rest_url,
        credentials=Credentials(key, secret),
        wall_ms=lambda: float(fake.clock.now_ms()),
    )


async def until(event: asyncio.Event, cond: Callable[[], bool]) -> None:
    async with asyncio.timeout(5.0):
        while not cond():
            await event.wait()
            event.clear()


class Sink:
    """The driver's deliver callback, recording events; tests wait on ``arrived``."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived = asyncio.Event()

    def __call__(self, events: list[Event], recv_ms: int) -> None:
        self.events.extend(events)
        self.arrived.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]


# --- REST ----------------------------------------------------------------------------------


async def test_signed_rest_and_figures(fake: FakeBinance) -> None:
    rest = rest_for(fake)
    fake.account("alice").order("BTCUSDT", "BUY", 2.0)
    await rest.sync_time()
    body = await rest.signed("GET", "/fapi/v3/account")
    # 2 BTC at 60 000 = 120 000 notional: bracket 2 (0.5 %, cum 50) → 550
    assert body["totalMaintMargin"] == "550"
    assert rest.used_weight_1m is not None and rest.used_weight_1m >= 5
    await rest.close()


async def test_bad_signature_is_auth_error(fake: FakeBinance) -> None:
    rest = rest_for(fake, secret="wrong")
    await rest.sync_time()
    with pytest.raises(AuthError) as info:
        await rest.signed("GET", "/fapi/v3/account")
    assert info.value.code == -1022
    assert "Signature for this request is not valid." in str(info.value)
    await rest.close()


async def test_unknown_key_is_auth_error(fake: FakeBinance) -> None:
    rest = rest_for(fake, key="nobody")
    with pytest.raises(AuthError) as info:
        await rest.new_listen_key()
    assert info.value.code == -2015
    await rest.close()


async def test_clock_skew_resyncs_then_succeeds(fake: FakeBinance) -> None:
    rest = rest_for(fake)
    rest.offset_ms = -60_000.0  # our clock a minute off: outside recvWindow
    with pytest.raises(TransientError):
        await rest.signed("GET", "/fapi/v3/account")
    assert abs(rest.offset_ms) < 1_000  # re-measured from /time
    assert (await rest.signed("GET", "/fapi/v1/positionSide/dual")) == {"dualSidePosition": False}
    await rest.close()


# --- listenKey ------------------------------------------------------------------------------


async def test_listen_key_lifecycle(fake: FakeBinance, clock: ManualClock) -> None:
    rest = rest_for(fake)
    key = await rest.new_listen_key()
    assert await rest.new_listen_key() == key  # an active key is returned again
    clock.advance(50 * MIN)
    await rest.keepalive_listen_key(key)  # extends to 110 min
    clock.advance(50 * MIN)
    await fake.tick()
    await rest.keepalive_listen_key(key)
    clock.advance(61 * MIN)
    await fake.tick()  # expired now
    with pytest.raises(ListenKeyGone) as info:
        await rest.keepalive_listen_key(key)
    assert info.value.code == -1125
    assert await rest.new_listen_key() != key
    await rest.close()


async def test_feed_keepalive_takes_a_new_key_when_gone(fake: FakeBinance) -> None:
    feed = BinanceUserFeed(fake.spec, "alice", rest_for(fake), ws_base=fake.ws_url)
    await feed.connect_url()
    old = feed.listen_key
    fake.expire_listen_key("alice")
    with pytest.raises(TransientError):
        await feed.keepalive()  # -1125 → POST a new key, restart the connection
    assert feed.listen_key not in (None, old)
    await feed.close()


# --- websockets -----------------------------------------------------------------------------


async def test_combined_envelope_subscribe_and_list(fake: FakeBinance) -> None:
    feed = BinanceMarketFeed(fake.spec, rest_for(fake), symbols=["BTCUSDT"], ws_base=fake.ws_url)
    async with connect(await feed.connect_url()) as ws:
        for frame in feed.subscribe_messages():
            await ws.send(frame)
        assert orjson.loads(await ws.recv()) == {"result": None, "id": 1}
        await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":7}')
        assert orjson.loads(await ws.recv()) == {"result": ["btcusdt@markPrice@1s"], "id": 7}
        fake.set_mark("ETHUSDT", 3100.0)  # not subscribed
        fake.set_mark("BTCUSDT", 61_000.5)
        raw = await ws.recv()
        doc = orjson.loads(raw)
        assert doc["stream"] == "btcusdt@markPrice@1s"
        assert set(doc["data"]) == {"e", "E", "s", "p", "i", "P", "r", "ap", "T", "st"}
        assert feed.parse(raw) == [
            MarkPrice(V, "BTCUSDT", 61_000.5, fake.clock.now_ms(), index=61_000.5)
        ]
    await feed.close()


async def test_subscribe_batches_of_200() -> None:
    frames = subscribe_frames([f"s{i}@markPrice" for i in range(450)])
    docs = [orjson.loads(f) for f in frames]
    assert [len(d["params"]) for d in docs] == [200, 200, 50]
    assert [d["id"] for d in docs] == [1, 2, 3]


async def test_more_than_10_messages_a_second_disconnects(fake: FakeBinance) -> None:
    async with connect(f"{fake.ws_url}/market/stream") as ws:
        with pytest.raises(ConnectionClosed):
            for i in range(12):
                await ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}).decode())
            while True:
                await ws.recv()
    assert "rate" in fake.disconnects


async def test_server_pings_are_answered_and_silence_is_cut(
    fake: FakeBinance, clock: ManualClock
) -> None:
    async with connect(f"{fake.ws_url}/market/stream?streams=btcusdt@markPrice") as ws:
        await until(fake.changed, lambda: fake.connects == 1)
        clock.advance(3 * MIN)
        await fake.tick()  # ping
        await until(fake.changed, lambda: fake.pongs == 1)  # the client library answered
        clock.advance(11 * MIN)  # no ping went out in between: no pong within 10 min
        await fake.tick()
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert fake.disconnects == ["no_pong"]


async def test_connections_end_at_24h(fake: FakeBinance, clock: ManualClock) -> None:
    async with connect(f"{fake.ws_url}/market/ws/btcusdt@markPrice") as ws:
        await until(fake.changed, lambda: fake.connects == 1)
        for n in range(1, 24 * 20):  # 3 min steps: pings answered all day long
            clock.advance(3 * MIN)
            await fake.tick()
            await until(fake.changed, lambda n=n: fake.pongs == n)  # type: ignore[misc]
        clock.advance(3 * MIN)
        await fake.tick()
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert "24h" in fake.disconnects


async def test_user_feed_through_the_driver(fake: FakeBinance) -> None:
    """Snapshot-then-stream; listenKeyExpired → a new key and a full resync."""
    alice = fake.account("alice")
    alice.order("BTCUSDT", "BUY", 1.5)
    feed = BinanceUserFeed(fake.spec, "alice", rest_for(fake), ws_base=fake.ws_url)
    sink = Sink()
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_feed(feed, sink, stop=stop))
        await until(sink.arrived, lambda: len(sink.of(AccountSnapshot)) == 1)
        (snap,) = sink.of(AccountSnapshot)
        assert snap.positions[0].qty == 1.5
        assert snap.reported is not None
        assert snap.reported.total_maintenance_margin == pytest.approx(alice.total_maint_margin())
        assert {e.symbol for e in sink.of(TierTableUpdate)} == {"BTCUSDT", "ETHUSDT"}

        alice.order("ETHUSDT", "SELL", 3.0)
        await until(sink.arrived, lambda: bool(sink.of(PositionFill)))
        (fill,) = sink.of(PositionFill)
        assert (fill.symbol, fill.qty_delta, fill.position_pushed) == ("ETHUSDT", -3.0, True)
        eth = [e for e in sink.of(PositionSnapshot) if e.symbol == "ETHUSDT"]
        assert [(p.qty, p.side) for p in eth] == [(-3.0, Side.BOTH)]

        first_key = feed.listen_key
        fake.expire_listen_key("alice")
        await until(sink.arrived, lambda: len(sink.of(AccountSnapshot)) == 2)
        assert feed.listen_key != first_key
        alice.deposit("USDT", 5.0)
        await until(sink.arrived, lambda: bool(sink.of(BalanceUpdate)))
        stop.set()
    await feed.close()


async def test_market_snapshot_cut_off_is_in_venue_time_despite_a_skewed_local_clock(
    fake: FakeBinance,
) -> None:
    # Our clock runs an hour behind the venue's: the cut-off must still be the venue's time.
    rest = BinanceRest(fake.spec, base_url=fake.rest_url,
                       wall_ms=lambda: float(fake.clock.now_ms() - 3_600_000))  # fmt: skip
    feed = BinanceMarketFeed(fake.spec, rest, symbols=["BTCUSDT"], ws_base=fake.ws_url)
    try:
        _, started = await feed.snapshot()
    finally:
        await feed.close()
    assert started == fake.clock.now_ms() - 1


async def test_listen_key_never_reaches_the_logs_at_debug(
    fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger at DEBUG, as with log_level=debug
    feed = BinanceUserFeed(fake.spec, "alice", rest_for(fake), ws_base=fake.ws_url)
    sink = Sink()
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_feed(feed, sink, stop=stop))
        await until(sink.arrived, lambda: bool(sink.of(AccountSnapshot)))
        fake.account("alice").deposit("USDT", 5.0)  # a frame on the private stream
        await until(sink.arrived, lambda: bool(sink.of(BalanceUpdate)))
        stop.set()
    key = feed.listen_key
    await feed.close()
    assert key is not None and len(key) == 64
    assert caplog.records  # debug logging was on and recorded something
    assert key not in caplog.text
    assert all(key not in r.getMessage() for r in caplog.records)


def test_the_websocket_logger_redacts_a_listen_key_at_info() -> None:
    from connectors.driver.wslog import WS_LOG

    record = WS_LOG.makeRecord(
        WS_LOG.name,
        logging.INFO,
        __file__,
        1,
        "connect failed: %s",
        ("/ws?listenKey=abc123 x",),
        None,
    )
    for f in WS_LOG.filters:
        assert isinstance(f, logging.Filter) and f.filter(record)
    assert record.getMessage() == "connect failed: /ws?listenKey=<redacted> x"

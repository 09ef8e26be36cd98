"""The connection driver against the real sim venue over loopback websockets.

Nothing here sleeps to wait: every wait is on a condition over what the driver delivered or
counted (``Probe.until``), guarded by a generous timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from connectors.backoff import Backoff
from connectors.driver import run_feed
from connectors.driver.resync import newer_than
from connectors.errors import AuthError, VenueDataError
from connectors.events import (
    AccountSnapshot,
    BalanceUpdate,
    Event,
    FeedState,
    FeedStatus,
    Instrument,
    MarkPrice,
    MarkRun,
)
from connectors.fakes.sim.server import MALFORMED, SimVenue
from connectors.protocol import Feed, ResyncRequest
from connectors.sim.feed import SimAccountFeed, SimMarketFeed

SNAPSHOT_MS = 1_700_000_000_000  # the venue's clock in these tests: every snapshot is "at" this ms


class Probe:
    """The engine's ``deliver`` and the driver's observer, recording everything, awaitable."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[Event], int]] = []
        self.frames = 0
        self.counted: list[int] = []  # frames per receive batch, as the driver reports them
        self.rejected: list[tuple[str, str]] = []
        self.reconnects: list[tuple[str, str]] = []
        self._poke = asyncio.Event()

    def deliver(self, events: list[Event], recv_ms: int) -> None:
        self.batches.append((list(events), recv_ms))
        self._poke.set()

    def frames_received(self, venue: str, n: int) -> None:
        self.counted.append(n)
        self.frames += n
        self._poke.set()

    def frame_rejected(self, venue: str, reason: str) -> None:
        self.rejected.append((venue, reason))
        self._poke.set()

    def reconnect(self, feed: str, reason: str) -> None:
        self.reconnects.append((feed, reason))
        self._poke.set()

    @property
    def events(self) -> list[Event]:
        return [e for batch, _ in self.batches for e in batch]

    def index_of(self, state: FeedState) -> int:
        return next(
            i for i, e in enumerate(self.events) if isinstance(e, FeedStatus) and e.state is state
        )

    def states(self) -> list[FeedState]:
        return [e.state for e in self.events if isinstance(e, FeedStatus)]

    async def until(self, pred: Callable[[], bool], within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while not pred():
                self._poke.clear()
                await self._poke.wait()


@contextlib.asynccontextmanager
async def running(feed: Feed, probe: Probe, **kwargs: Any) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    kwargs.setdefault("backoff", Backoff(initial_s=0.01, max_s=0.05, rng=lambda: 1.0))
    task = asyncio.create_task(run_feed(feed, probe.deliver, observer=probe, stop=stop, **kwargs))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(10):
            with contextlib.suppress(Exception):
                await task


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    async with SimVenue(autoplay=False, wall_ms=lambda: SNAPSHOT_MS) as v:
        yield v


def market(v: SimVenue, **kwargs: Any) -> SimMarketFeed:
    kwargs.setdefault("app_ping_interval_s", None)
    return SimMarketFeed(v.host, v.port, **kwargs)


def account(v: SimVenue, name: str, **kwargs: Any) -> SimAccountFeed:
    kwargs.setdefault("app_ping_interval_s", None)
    return SimAccountFeed(v.host, v.port, name, **kwargs)


async def test_snapshot_then_stream_drops_buffered_pushes_not_newer_than_snapshot(
    venue: SimVenue,
) -> None:
    probe = Probe()
    venue.hold_snapshots()
    async with running(account(venue, "bob"), probe):
        await asyncio.wait_for(venue.snapshot_requested.wait(), 10)
        await asyncio.wait_for(venue.subscribed.wait(), 10)
        # While the snapshot is in flight the venue pushes three balance updates: older than,
        # as old as, and newer than the snapshot it is about to serve.
        venue.push_balance("bob", "USDT", 1.0, event_ms=SNAPSHOT_MS - 1)
        venue.push_balance("bob", "USDT", 2.0, event_ms=SNAPSHOT_MS)
        venue.push_balance("bob", "USDT", 3.0, event_ms=SNAPSHOT_MS + 1)
        await probe.until(lambda: probe.frames >= 4)  # ack + 3 pushes are in the buffer
        assert probe.events == []  # nothing delivered while buffering
        venue.release_snapshots()
        await probe.until(lambda: FeedState.CONNECTED in probe.states())
        snap, newer, status = probe.events
        assert isinstance(snap, AccountSnapshot)
        assert (snap.account, snap.balances, snap.event_ms) == (
            "bob",
            {"USDT": 23600.0},
            SNAPSHOT_MS,
        )
        assert newer == BalanceUpdate("sim", "bob", "USDT", 3.0, SNAPSHOT_MS + 1)
        assert isinstance(status, FeedStatus)
        assert (status.state, status.feed, status.account) == (
            FeedState.CONNECTED,
            "sim/private/bob",
            "bob",
        )
        # Live now: pushes are applied in arrival order whatever their venue time.
        venue.push_balance("bob", "USDT", 4.0, event_ms=SNAPSHOT_MS - 1_000)
        await probe.until(lambda: len(probe.events) == 4)
        assert probe.events[-1] == BalanceUpdate("sim", "bob", "USDT", 4.0, SNAPSHOT_MS - 1_000)


async def test_market_snapshot_precedes_live_marks(venue: SimVenue) -> None:
    probe = Probe()
    async with running(market(venue), probe):
        await probe.until(lambda: FeedState.CONNECTED in probe.states())
        kinds = [type(e).__name__ for e in probe.events]
        assert kinds[:3] == ["Instrument", "TierTableUpdate", "MarkPrice"]
        assert {e.symbol for e in probe.events if isinstance(e, Instrument)} == {
            "BTC-PERP",
            "ETH-PERP",
            "SOL-PERP",
        }
        venue.push_mark("BTC-PERP", 61_000.5, event_ms=SNAPSHOT_MS + 5)
        await probe.until(
            lambda: probe.events[-1] == MarkPrice("sim", "BTC-PERP", 61_000.5, SNAPSHOT_MS + 5)
        )
        _, recv_ms = probe.batches[-1]
        assert recv_ms > 1_600_000_000_000  # stamped with the driver's wall clock, not venue time


async def test_reconnects_and_resyncs_after_the_venue_drops_connections(venue: SimVenue) -> None:
    probe = Probe()
    async with running(market(venue), probe):
        await probe.until(lambda: FeedState.CONNECTED in probe.states())
        snapshots_before = venue.snapshots_served
        assert venue.drop_connections() == 1
        await probe.until(lambda: probe.states().count(FeedState.CONNECTED) == 2)
        assert probe.states() == [FeedState.CONNECTED, FeedState.DISCONNECTED, FeedState.CONNECTED]
        assert probe.reconnects == [("sim/market", "connection_closed")]
        assert venue.snapshots_served == snapshots_before + 1
        # The second snapshot was delivered between DISCONNECTED and CONNECTED.
        tail = probe.events[probe.index_of(FeedState.DISCONNECTED) :]
        assert any(isinstance(e, Instrument) for e in tail)
        venue.push_mark("ETH-PERP", 3_100.0)
        await probe.until(
            lambda: probe.events[-1] == MarkPrice("sim", "ETH-PERP", 3_100.0, SNAPSHOT_MS)
        )


async def test_stale_after_silence_then_resynced_when_data_returns(venue: SimVenue) -> None:
    probe = Probe()
    # App pings every 20 ms are answered by pongs: the only traffic, so silence is total.
    feed = market(venue, stale_after_s=0.2, app_ping_interval_s=0.02)
    async with running(feed, probe, wall_ms=lambda: SNAPSHOT_MS):
        await probe.until(lambda: FeedState.CONNECTED in probe.states())
        venue.go_silent()
        await probe.until(lambda: FeedState.STALE in probe.states())
        snapshots = venue.snapshots_served
        venue.resume()
        await probe.until(lambda: FeedState.RESYNCED in probe.states())
        assert probe.states() == [FeedState.CONNECTED, FeedState.STALE, FeedState.RESYNCED]
        assert venue.snapshots_served == snapshots + 1  # recovery re-took the snapshot
        stale_at = probe.index_of(FeedState.STALE)
        assert any(isinstance(e, Instrument) for e in probe.events[stale_at:])
        assert probe.reconnects == []  # same connection throughout


async def test_stream_expired_reconnects_with_a_fresh_key_and_resyncs(venue: SimVenue) -> None:
    probe = Probe()
    async with running(account(venue, "carol"), probe):
        await probe.until(lambda: FeedState.CONNECTED in probe.states())
        assert venue.keys_issued == ["carol-1"]
        venue.expire_private_stream("carol")
        await probe.until(lambda: sum(isinstance(e, AccountSnapshot) for e in probe.events) == 2)
        assert probe.reconnects == [("sim/private/carol", "stream_expired")]
        assert venue.keys_issued == ["carol-1", "carol-2"]
        # A planned reconnect: no DISCONNECTED, and the StreamExpired control event is not
        # passed to the store.
        assert probe.states() == [FeedState.CONNECTED]
        assert not any(type(e).__name__ == "StreamExpired" for e in probe.events)


async def test_bad_frames_are_counted_by_reason_and_dropped(venue: SimVenue) -> None:
    probe = Probe()
    async with running(market(venue), probe):
        await probe.until(lambda: FeedState.CONNECTED in probe.states())
        for kind in MALFORMED:
            venue.send_malformed(2, kind)
        venue.push_mark("SOL-PERP", 150.5)
        await probe.until(
            lambda: isinstance(probe.events[-1], MarkPrice) and probe.events[-1].mark == 150.5
        )
        assert sorted(probe.rejected) == sorted(
            ("sim", reason)
            for reason in [
                "bad_json",
                "unknown_event",
                "bad_price",  # NaN
                "bad_price",  # negative
                "bad_type",
                "missing_field",
            ]
            for _ in range(2)
        )
        assert probe.reconnects == []


async def test_timer_resync_retakes_the_snapshot_on_the_same_connection(venue: SimVenue) -> None:
    probe = Probe()
    async with running(market(venue, resync_interval_s=0.05), probe):
        await probe.until(lambda: venue.snapshots_served >= 3 and len(probe.batches) >= 4)
        assert venue.subscriptions == 1
        assert probe.states() == [FeedState.CONNECTED]


async def test_planned_reconnect_at_max_connection_age(venue: SimVenue) -> None:
    probe = Probe()
    async with running(market(venue, max_connection_age_s=0.2), probe):
        await probe.until(lambda: ("sim/market", "max_age") in probe.reconnects)
        await probe.until(lambda: venue.subscriptions >= 2 and venue.snapshots_served >= 2)
        assert FeedState.DISCONNECTED not in probe.states()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_connect_failures_back_off_and_retry() -> None:
    probe = Probe()
    delays: list[float] = []
    backoff = Backoff(initial_s=0.001, factor=2.0, max_s=0.004, rng=lambda: 1.0)
    original = backoff.next_delay

    def recording() -> float:
        delays.append(original())
        return delays[-1]

    backoff.next_delay = recording  # type: ignore[method-assign]
    feed = SimMarketFeed("127.0.0.1", _closed_port(), app_ping_interval_s=None)
    async with running(feed, probe, backoff=backoff):
        await probe.until(lambda: len(probe.reconnects) >= 5)
    assert set(probe.reconnects[:5]) == {("sim/market", "connect_failed")}
    assert delays[:5] == [0.001, 0.002, 0.004, 0.004, 0.004]
    assert probe.events == []  # never connected: no DISCONNECTED either


def test_backoff_full_jitter_bounds_with_injected_rng() -> None:
    assert [Backoff(rng=lambda: 1.0).cap()] == [0.2]
    top = Backoff(rng=lambda: 1.0)
    assert [round(top.next_delay(), 6) for _ in range(10)] == [
        0.2,
        0.4,
        0.8,
        1.6,
        3.2,
        6.4,
        12.8,
        25.6,
        30.0,
        30.0,
    ]
    assert [Backoff(rng=lambda: 0.0).next_delay() for _ in range(3)] == [0.0, 0.0, 0.0]
    half = Backoff(rng=lambda: 0.5)
    assert [half.next_delay() for _ in range(3)] == [0.1, 0.2, 0.4]


def test_backoff_resets_only_after_a_healthy_connection() -> None:
    b = Backoff(rng=lambda: 1.0, reset_after_s=60.0)
    for _ in range(4):
        b.next_delay()
    b.connection_ended(59.9)
    assert b.attempt == 4
    b.connection_ended(60.0)
    assert b.attempt == 0
    assert b.next_delay() == 0.2


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial_s=0.0)


async def test_unknown_account_is_fatal_auth_error(venue: SimVenue) -> None:
    probe = Probe()
    with pytest.raises(AuthError):
        await asyncio.wait_for(
            run_feed(account(venue, "mallory"), probe.deliver, observer=probe), 10
        )
    assert probe.reconnects == []


class _StaleKeyFeed(SimAccountFeed):
    async def connect_url(self) -> str:
        return f"ws://{self.host}:{self.port}/private?key=revoked"


async def test_refused_websocket_handshake_is_fatal_inside_a_task_group(venue: SimVenue) -> None:
    probe = Probe()
    feed = _StaleKeyFeed(venue.host, venue.port, "bob", app_ping_interval_s=None)
    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.timeout(10), asyncio.TaskGroup() as tg:
            tg.create_task(run_feed(feed, probe.deliver, observer=probe))
    (exc,) = info.value.exceptions
    assert isinstance(exc, AuthError)
    assert exc.code == 401


async def test_a_bug_in_deliver_propagates_instead_of_reconnecting(venue: SimVenue) -> None:
    def broken(events: list[Event], recv_ms: int) -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await asyncio.wait_for(run_feed(market(venue), broken), 10)


async def test_stop_returns_cleanly(venue: SimVenue) -> None:
    probe = Probe()
    stop = asyncio.Event()
    task = asyncio.create_task(run_feed(market(venue), probe.deliver, observer=probe, stop=stop))
    await probe.until(lambda: FeedState.CONNECTED in probe.states())
    stop.set()
    await asyncio.wait_for(task, 10)
    assert probe.states() == [FeedState.CONNECTED]  # shutting down is not an outage


async def test_firehose_frames_all_reach_deliver_in_order() -> None:
    from connectors.fakes.sim.server import Firehose

    probe = Probe()
    venue = SimVenue(autoplay=False, firehose=Firehose(5_000, batch=1))
    async with venue as v, running(market(v), probe):
        await probe.until(lambda: probe.frames >= 5_001)  # ack + the firehose
        await probe.until(lambda: sum(isinstance(e, MarkPrice) for e in probe.events) >= 5_003)
    marks = [e for e in probe.events if isinstance(e, MarkPrice)]
    assert len(marks) == 3 + 5_000  # snapshot marks, then every firehose frame
    assert [m.symbol for m in marks[3:9]] == ["BTC-PERP", "ETH-PERP", "SOL-PERP"] * 2
    assert probe.rejected == []


async def test_firehose_arrives_in_batches_of_several_frames() -> None:
    from connectors.fakes.sim.server import Firehose

    probe = Probe()
    venue = SimVenue(autoplay=False, firehose=Firehose(20_000, batch=1))
    async with venue as v, running(market(v), probe):
        await probe.until(lambda: sum(isinstance(e, MarkPrice) for e in probe.events) >= 20_003)
    live = [evs for evs, _ in probe.batches if evs and isinstance(evs[0], MarkPrice)]
    assert sum(len(evs) for evs in live) == 20_000
    # Frames that were already waiting arrive as one list (the engine applies it as a run).
    assert max(len(evs) for evs in live) > 1
    assert max(len(evs) for evs in live) <= 512


async def test_the_observer_is_told_frames_once_per_batch() -> None:
    from connectors.fakes.sim.server import Firehose

    probe = Probe()
    venue = SimVenue(autoplay=False, firehose=Firehose(3_000, batch=1))
    async with venue as v, running(market(v), probe):
        await probe.until(lambda: probe.frames >= 3_001)  # ack + the firehose
    assert sum(probe.counted) == probe.frames >= 3_001
    assert len(probe.counted) < probe.frames  # several frames per call


class _BuggyBatchFeed(SimMarketFeed):
    """The batch decoder has a bug (raises); the driver must redo the batch frame by frame."""

    calls = 0

    @staticmethod
    def batch_parse(frames: Sequence[bytes | str], out: list[Event]) -> list[VenueDataError]:
        _BuggyBatchFeed.calls += 1
        out.append(MarkPrice("sim", "GHOST", 1.0, 1))  # half-done work must be discarded
        raise RuntimeError("bug")


async def test_a_bug_in_the_batch_decoder_falls_back_to_frame_by_frame(venue: SimVenue) -> None:
    probe = Probe()
    feed = _BuggyBatchFeed(venue.host, venue.port, app_ping_interval_s=None)
    async with running(feed, probe):
        await probe.until(lambda: FeedState.CONNECTED in probe.states())
        venue.send_malformed(1, "bad_json")
        venue.push_mark("SOL-PERP", 150.5)
        await probe.until(lambda: any(getattr(e, "mark", 0) == 150.5 for e in probe.events))
    assert _BuggyBatchFeed.calls >= 1
    assert not any(getattr(e, "symbol", "") == "GHOST" for e in probe.events)
    assert [r for _, r in probe.rejected] == ["bad_json"]
    assert probe.reconnects == []


class _BuggyBookkeepingFeed(SimAccountFeed):
    """after_events has a bug (raises): the events still count, the bug is counted, and the
    driver resyncs to be safe."""

    def after_events(self, events: Sequence[Event]) -> ResyncRequest | None:
        if any(isinstance(e, BalanceUpdate) for e in events):
            raise RuntimeError("bug")
        return None


async def test_a_bug_in_after_events_is_counted_and_resynced(venue: SimVenue) -> None:
    probe = Probe()
    feed = _BuggyBookkeepingFeed(venue.host, venue.port, "bob", app_ping_interval_s=None)
    async with running(feed, probe):
        await probe.until(lambda: FeedState.CONNECTED in probe.states())
        venue.push_balance("bob", "USDT", 3.0, event_ms=SNAPSHOT_MS + 1)
        await probe.until(lambda: sum(isinstance(e, AccountSnapshot) for e in probe.events) == 2)
    assert BalanceUpdate("sim", "bob", "USDT", 3.0, SNAPSHOT_MS + 1) in probe.events
    assert probe.rejected == [("sim", "parser_error")]
    assert probe.reconnects == []


def test_resync_gate_allows_one_forced_resync_per_gap() -> None:
    from connectors.driver import ResyncGate

    gate = ResyncGate(5.0)
    assert gate.delay(100.0) == 0.0  # the first may run at once
    gate.taken(100.0)
    assert gate.delay(101.5) == 3.5  # a storm of requests waits out the gap
    assert gate.delay(105.0) == 0.0
    gate.taken(105.0)
    assert gate.delay(105.0) == 5.0


def test_a_resync_keeps_only_the_marks_of_a_run_newer_than_the_snapshot() -> None:
    """Buffered pushes are filtered by event time after a snapshot; a MarkRun mark by mark."""
    run = MarkRun("v", [MarkPrice("v", "A", 1.0, 5), MarkPrice("v", "B", 2.0, 9)])
    old = MarkRun("v", [MarkPrice("v", "C", 3.0, 4)])
    status = FeedStatus("v", "market", FeedState.CONNECTED, 0)
    kept = newer_than(
        [run, old, MarkPrice("v", "D", 4.0, 7), MarkPrice("v", "E", 5.0, 3), status], 6
    )
    assert kept == [MarkRun("v", [MarkPrice("v", "B", 2.0, 9)]), MarkPrice("v", "D", 4.0, 7),
                    status]  # fmt: skip
    assert run.newer_than(0) is run  # nothing dropped: the same object, no copy

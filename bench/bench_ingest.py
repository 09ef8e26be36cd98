"""Ingest: sim venue firehose in another process → loopback websocket → real driver → parse →
``monitor.engine.Engine.handle`` → ``monitor.store.Store`` (the daemon's own deliver path, minus
its O(1) metrics hooks; no sinks).

The headline ``ingest_frames_per_s`` is single-mark frames per CPU-second of the consuming
process (its one core): ``frames / process CPU time``, measured from the first live frame to the
last. ``ingest_frames_per_wall_s`` is the same count per wall second (the producer runs in its
own process, on the other core). The driver takes every frame websockets already holds after
each ``recv`` and delivers them as one list, so the engine applies runs of marks through
``Store.apply``; ``ingest_mean_batch_frames`` says how many frames a batch held on average
(it depends on how far the consumer lags the producer, i.e. on load).

The store holds the sim's instruments and tier tables (from the driver's own snapshot), so
each mark updates its instrument book; no account holds positions, so this is the ingest path
itself. ``ingest_frames_per_s_with_accounts`` loads the sim's four accounts too, so every mark
also revalues their positions: that adds the store's per-tick revaluation cost (benchmarked on
its own by the store). Batched array frames are reported separately, per mark.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass

from connectors.driver import run_feed
from connectors.events import AccountSnapshot, Event, MarkPrice, PositionSnapshot
from connectors.fakes.sim.market import ACCOUNTS
from connectors.sim.feed import SimMarketFeed
from connectors.sim.protocol import VENUE
from monitor.engine import Engine
from monitor.store import Store
from rules.alerts import AlertConfig

CEILINGS = {"ingest_frames_per_s": ("min", 200000.0)}

FRAMES = 1_000_000
BATCH = 10


@dataclass(frozen=True)
class Result:
    frames: int
    marks: int
    cpu_s: float
    wall_s: float
    batches: int


def _accounts() -> list[Event]:
    out: list[Event] = []
    for acct in ACCOUNTS:
        legs = tuple(
            PositionSnapshot(VENUE, acct.name, p.symbol, p.side, p.qty, p.entry, 1, p.mode)
            for p in acct.positions
        )
        out.append(AccountSnapshot(VENUE, acct.name, dict(acct.balances), legs, 1))
    return out


async def _consume(port: int, frames: int, with_accounts: bool) -> Result:
    store = Store()
    engine = Engine(store, lambda key: AlertConfig(), [])
    handle = engine.handle
    batches = 0
    stop = asyncio.Event()
    marks = 0
    live_frames = 0
    started: list[float] = []
    done = asyncio.Event()

    class Counter:
        def frames_received(self, venue: str, n: int) -> None:
            # Batch-aware, as a metrics registry should be (a labelled counter's inc() per frame
            # would cost ~2 µs: see connectors.driver.DriverObserver).
            nonlocal live_frames
            live_frames += n
            if live_frames >= frames + 1:  # + the subscribe ack
                done.set()

        def frame_rejected(self, venue: str, reason: str) -> None:
            raise AssertionError(f"rejected {reason}")

        def reconnect(self, feed: str, reason: str) -> None:
            raise AssertionError(f"reconnect {reason}")

    def deliver(events: list[Event], recv_ms: int) -> None:
        nonlocal marks, batches
        handle(events, recv_ms)
        batches += 1
        if type(events[0]) is MarkPrice:
            marks += len(events)
            if not started and marks > 10:  # past the snapshot: live stream begins
                if with_accounts:
                    handle(_accounts(), recv_ms)
                started.append(time.process_time())
                started.append(time.perf_counter())
                started.append(float(batches))

    feed = SimMarketFeed("127.0.0.1", port, app_ping_interval_s=None, stale_after_s=30.0)
    task = asyncio.create_task(run_feed(feed, deliver, observer=Counter(), stop=stop))
    async with asyncio.timeout(600):
        await done.wait()
    cpu, wall = time.process_time(), time.perf_counter()
    stop.set()
    await task
    return Result(frames, marks, cpu - started[0], wall - started[1], batches - int(started[2]))


def _measure(frames: int, batch: int, *, with_accounts: bool = False) -> Result:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connectors.fakes.sim.firehose",
            "--frames",
            str(frames),
            "--batch",
            str(batch),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        port = int(line[1])
        return asyncio.run(_consume(port, frames, with_accounts))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def run() -> dict[str, float]:
    single = _measure(FRAMES, 1)
    batched = _measure(FRAMES // BATCH, BATCH)
    loaded = _measure(FRAMES // 10, 1, with_accounts=True)
    return {
        "ingest_frames_per_s": single.frames / single.cpu_s,
        "ingest_frames_per_wall_s": single.frames / single.wall_s,
        "ingest_mean_batch_frames": single.frames / max(1, single.batches),
        "ingest_batched_marks_per_s": batched.frames * BATCH / batched.cpu_s,
        "ingest_frames_per_s_with_accounts": loaded.frames / loaded.cpu_s,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} {value:,.0f}")

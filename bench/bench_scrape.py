"""How long a /metrics scrape of 10,000 accounts stalls the event loop.

A real :class:`monitor.store.Store` holds 10,000 accounts (one position each, two instruments).
The daemon's HTTP server (:mod:`monitor.http`) serves
:meth:`monitor.metrics.Metrics.render_metrics_pieces`; while a client
fetches ``/metrics`` over loopback, a heartbeat task sleeping 0.5 ms records the largest gap
between its wake-ups. That gap is the longest the loop could not run anything else (ticks,
alerts): ``scrape_loop_block_ms``. ``scrape_ms`` is the wall time of the whole request.

The first scrape builds the label cache; the figures are from the following scrapes (the
steady state), the worst of them reported.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time

from prometheus_client import CollectorRegistry

from connectors.events import (
    AccountSnapshot,
    Instrument,
    MarkPrice,
    PositionSnapshot,
    TierTableUpdate,
)
from monitor.http import HttpServer
from monitor.metrics import Metrics
from monitor.store import Store
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, Side

VENUE = "binance-usdm"
ACCOUNTS = 10_000
HEARTBEAT_S = 0.0005
SCRAPES = 5

CEILINGS = {"scrape_loop_block_ms": ("max", 5.0)}


def build_store(n: int) -> Store:
    """``n`` Binance USDⓈ-M accounts, each with a USDT wallet and a BTCUSDT or ETHUSDT position."""
    store = Store()
    for symbol, price in (("BTCUSDT", 60_000.0), ("ETHUSDT", 3_000.0)):
        tiers = TierTable.from_tiers(
            symbol,
            [
                TierSpec(0, 50_000, 0.004, 0, 125),
                TierSpec(50_000, 600_000, 0.005, 50, 100),
                TierSpec(600_000, 3_000_000, 0.0065, 950, 75),
                TierSpec(3_000_000, 12_000_000, 0.01, 11_450, 50),
            ],
        )
        store.apply(Instrument(VENUE, symbol, ContractKind.LINEAR, 1.0, "USDT"), 0)
        store.apply(TierTableUpdate(VENUE, symbol, tiers), 0)
        store.apply(MarkPrice(VENUE, symbol, price, 0), 0)
    rng = random.Random(7)
    for i in range(n):
        account = f"acct-{i:05d}"
        symbol, price = ("BTCUSDT", 60_000.0) if i % 2 else ("ETHUSDT", 3_000.0)
        qty = rng.uniform(-20.0, 20.0) * 60_000.0 / price
        pos = PositionSnapshot(VENUE, account, symbol, Side.BOTH, qty, price * 0.99, 0)
        wallet = {"USDT": rng.uniform(1_000.0, 200_000.0)}
        store.apply(AccountSnapshot(VENUE, account, wallet, (pos,), 0), 0)
    return store


async def _get(port: int, path: str) -> tuple[int, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    await writer.drain()
    # Like Prometheus (another process), only read: no joining of the body on this loop.
    first = await reader.read(1 << 16)
    if not first.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/metrics answered {first[:40]!r}")
    marker = b"\nmarginwatch_account_"
    size, series, tail = len(first), first.count(marker), first[-len(marker) :]
    while chunk := await reader.read(1 << 16):
        size += len(chunk)
        series += (tail + chunk).count(marker)
        tail = chunk[-len(marker) + 1 :]
    writer.close()
    await writer.wait_closed()
    return size, series


async def _measure() -> dict[str, float]:
    store = build_store(ACCOUNTS)
    # What a daemon holding 10,000 accounts does after loading them: move the long-lived state
    # out of the cyclic GC's reach. Without it a full collection (~30 ms here, any allocation
    # can trigger it, ticks included) lands in whatever runs next.
    gc.collect()
    gc.freeze()
    metrics = Metrics(CollectorRegistry(), store=store)
    metrics.register_sinks(["kafka", "mqtt"])
    server = HttpServer("127.0.0.1", 0, readiness=lambda: {}, metrics=metrics.render_metrics_pieces)
    await server.start()
    gaps: list[float] = []
    cpu_gaps: list[float] = []
    running = True

    async def heartbeat() -> None:
        # Wall gaps are what ticks feel; thread-CPU within a gap separates our own work from
        # the OS running something else (this machine is shared).
        last, last_cpu = time.perf_counter(), time.thread_time()
        while running:
            await asyncio.sleep(HEARTBEAT_S)
            now, now_cpu = time.perf_counter(), time.thread_time()
            gaps.append(now - last)
            cpu_gaps.append(now_cpu - last_cpu)
            last, last_cpu = now, now_cpu

    beat = asyncio.create_task(heartbeat())
    try:
        size, series = await _get(server.port, "/metrics")  # warm-up: builds the label cache
        worst_block = worst_cpu = worst_scrape = 0.0
        for _ in range(SCRAPES):
            await asyncio.sleep(0.01)
            gaps.clear()
            cpu_gaps.clear()
            started = time.perf_counter()
            size, series = await _get(server.port, "/metrics")
            worst_scrape = max(worst_scrape, time.perf_counter() - started)
            worst_block = max(worst_block, max(gaps, default=0.0))
            worst_cpu = max(worst_cpu, max(cpu_gaps, default=0.0))
    finally:
        running = False
        await beat
        await server.close()
    started = time.perf_counter()
    store.figures_arrays()
    figures_ms = (time.perf_counter() - started) * 1e3
    return {
        "scrape_loop_block_ms": worst_block * 1e3,
        "scrape_store_figures_ms": figures_ms,
        "scrape_loop_block_cpu_ms": worst_cpu * 1e3,
        "scrape_ms": worst_scrape * 1e3,
        "scrape_account_series": float(series),
        "scrape_bytes": float(size),
    }


def run() -> dict[str, float]:
    return asyncio.run(_measure())


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} {value:.3f}")

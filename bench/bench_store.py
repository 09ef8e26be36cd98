"""Store + engine benchmark on a 10,000-account × 20-position book over 300 instruments.

The book is built deterministically (seed 20240601) through ``Engine.handle`` from venue-shaped
events: every account holds BTC plus 19 of the other 299 instruments (~635 positions each),
Binance-style tier tables, balances giving each account a health between ~2.5 and ~12, so most
accounts sit quietly inside their alert band as a real book does: 99% of accounts hold equity of
20–60% of their gross notional with a 5% liquidation-distance alert; 1% ("hot") sit at health
1.4–2.6, across the warning/danger thresholds, and alert on health only — see the report for
why (the distance screen's cost for near accounts). One warm-up pass evaluates
every account once (their quiet bands start unset); the figures below exclude it.

* ``tick_10k_us`` — median wall time of ``engine.handle([BTC mark])``: 10,000 legs through the
  store, the quiet-band screen and the alert policy for whatever left its band.
* ``tick_650_us`` — the same for an instrument held by ~650 positions.
* ``all_marks_frame_ms`` — median of one frame of all 300 marks in one ``handle`` call (one
  fused pass over the ~200,000 legs, :class:`monitor.store.kernels.FrameCache`).
* ``tick_to_alert_p99_ms`` — 1,000 ticks/s replayed against a simulated arrival clock (one
  tick every 1 ms: BTC every 10th, the rest over the other instruments, random-walk marks with
  occasional jumps that make accounts change level). The engine is a single server: tick ``k``
  starts at ``max(arrival_k, finish_{k-1})``, and its latency is queueing wait + its own
  processing time. ``tick_to_alert_p99_ms`` is the p99 over every alert of (queueing wait +
  time from the start of its tick's processing to that alert's ``submit``); the engine submits
  each account's alerts as soon as they are decided, accounts needing a liquidation distance
  last (so an alert's figure includes every root search that ran before its own submit).
  ``tick_processing_p99_ms`` is the same measure over all ticks (wait + full processing),
  whether or not they alerted.
* ``*_cpu_*`` — the same figures on the process CPU clock (``time.process_time``): other work
  on a 2-core machine stretches wall time, not the CPU time this process spent.
* ``bytes_per_position`` — tracemalloc'd memory held by the store after building, per position
  (numpy reports its buffers to tracemalloc).
"""

from __future__ import annotations

import math
import random
import statistics
import time
import tracemalloc

from connectors.events import (
    AccountSnapshot,
    BalanceUpdate,
    Event,
    Instrument,
    MarkPrice,
    PositionSnapshot,
)
from connectors.events import TierTableUpdate as Tiers
from monitor.engine import Engine
from monitor.sinks.base import Sink
from monitor.store import AccountKey, Store
from rules.alerts import Alert, AlertConfig, StateDocument
from rules.liquidation import liquidation_distance
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, Side

SEED = 20240601
VENUE = "binance-usdm"
N_ACCOUNTS = 10_000
N_INSTRUMENTS = 300
LEGS_PER_ACCOUNT = 20

CEILINGS: dict[str, tuple[str, float]] = {
    "tick_10k_us": ("max", 500.0),
    "tick_650_us": ("max", 50.0),
    "all_marks_frame_ms": ("max", 10.0),
    "tick_to_alert_p99_ms": ("max", 2.0),
    "bytes_per_position": ("max", 1024.0),
}

_BTC_TIERS = (
    (0, 50_000, 0.004, 125),
    (50_000, 600_000, 0.005, 100),
    (600_000, 3_000_000, 0.0065, 75),
    (3_000_000, 12_000_000, 0.01, 50),
    (12_000_000, 70_000_000, 0.02, 25),
    (70_000_000, math.inf, 0.025, 20),
)


def _table(symbol: str, scale: float) -> TierTable:
    return TierTable.from_tiers(
        symbol, [TierSpec(f * scale, c * scale, m, None, lev) for f, c, m, lev in _BTC_TIERS]
    )


class TimingSink:
    """Records when alerts were handed over (perf_counter), like a real enqueue-only sink."""

    name = "bench"

    def __init__(self) -> None:
        self.count = 0
        self.submitted: list[float] = []  # perf_counter at each submit
        self.submitted_cpu: list[float] = []  # process CPU time at each submit

    def submit(self, alert: Alert) -> None:
        self.count += 1
        self.submitted.append(time.perf_counter())
        self.submitted_cpu.append(time.process_time())

    def submit_state(self, state: StateDocument) -> None:
        pass

    async def run(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def pending(self) -> int:
        return 0


def build(rng: random.Random) -> tuple[Engine, TimingSink, list[str], dict[str, float]]:
    symbols = ["BTCUSDT"] + [f"C{n:03d}USDT" for n in range(1, N_INSTRUMENTS)]
    prices = {"BTCUSDT": 60_000.0}
    for s in symbols[1:]:
        prices[s] = math.exp(rng.uniform(math.log(0.05), math.log(5_000.0)))
    cfg = AlertConfig(liq_distance=0.05, cooldown_ms=30_000)
    hot_cfg = AlertConfig(liq_distance=None, cooldown_ms=30_000)

    def config_for(key: AccountKey) -> AlertConfig:
        return hot_cfg if _hot(key[1]) else cfg

    sink = TimingSink()
    sinks: list[Sink] = [sink]
    engine = Engine(Store(), config_for, sinks, clock=lambda: 0)
    setup: list[Event] = []
    for s in symbols:
        setup.append(Instrument(VENUE, s, ContractKind.LINEAR, 1.0, "USDT"))
        setup.append(Tiers(VENUE, s, _table(s, 0.1 if s != "BTCUSDT" else 1.0)))
        setup.append(MarkPrice(VENUE, s, prices[s], 0))
    engine.handle(setup, 0)
    others = symbols[1:]
    for a in range(N_ACCOUNTS):
        name = f"acct{a:05d}"
        legs: list[PositionSnapshot] = []
        gross = 0.0
        for s in ["BTCUSDT", *rng.sample(others, LEGS_PER_ACCOUNT - 1)]:
            notional = math.exp(rng.uniform(math.log(2e3), math.log(4e5)))
            qty = notional / prices[s] * (1 if rng.random() < 0.6 else -1)
            entry = prices[s] * (1 + rng.gauss(0, 0.02))
            legs.append(PositionSnapshot(VENUE, name, s, Side.BOTH, qty, entry, 0))
            gross += notional
        balance = gross * rng.uniform(0.2, 0.6)
        engine.handle([AccountSnapshot(VENUE, name, {"USDT": balance}, tuple(legs), 0)], 0)
        if _hot(name):  # set health near the warning/danger thresholds
            fig = engine.store.figures((VENUE, name))
            upnl = fig.equity - balance
            target = rng.uniform(1.4, 2.6) * fig.maintenance_margin - upnl
            engine.handle([BalanceUpdate(VENUE, name, "USDT", target, 0)], 0)
    return engine, sink, symbols, prices


def _hot(account: str) -> bool:
    """1% of accounts sit near the level thresholds (and alert on health only)."""
    return int(account[4:]) % 100 == 0


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def run() -> dict[str, float]:
    rng = random.Random(SEED)
    tracemalloc.start()
    engine, sink, symbols, prices = build(rng)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    store = engine.store
    n_positions = sum(b.n for b in (store.book((VENUE, s)) for s in symbols) if b is not None)

    cpu: dict[str, list[float]] = {"btc": [], "mid": [], "frame": []}

    def tick(symbol: str, sigma: float = 1e-4, into: str | None = None) -> float:
        prices[symbol] *= math.exp(rng.gauss(0.0, sigma))
        ev = MarkPrice(VENUE, symbol, prices[symbol], 1)
        c0 = time.process_time()
        t0 = time.perf_counter()
        engine.handle([ev], 1)
        t1 = time.perf_counter()
        if into is not None:
            cpu[into].append(time.process_time() - c0)
        return t1 - t0

    for s in symbols:  # warm-up: every account evaluated once, bands set
        tick(s)
    btc = [tick("BTCUSDT", into="btc") for _ in range(1_000)]
    sizes = {s: b.n for s in symbols[1:] if (b := store.book((VENUE, s))) is not None}
    mid = min(sizes, key=lambda s: abs(sizes[s] - 650))
    mid_times = [tick(mid, into="mid") for _ in range(2_000)]
    frames: list[float] = []
    for _ in range(30):
        evs: list[Event] = []
        for s in symbols:
            prices[s] *= math.exp(rng.gauss(0.0, 1e-4))
            evs.append(MarkPrice(VENUE, s, prices[s], 2))
        c0 = time.process_time()
        t0 = time.perf_counter()
        engine.handle(evs, 2)
        frames.append(time.perf_counter() - t0)
        cpu["frame"].append(time.process_time() - c0)

    # 1,000 ticks/s against a simulated arrival clock (see module docstring).
    latencies: list[float] = []
    alerting: list[float] = []  # one entry per alert
    alerting_cpu: list[float] = []  # the same on the process CPU clock (load-independent)
    finish = finish_cpu = 0.0
    alerts_before = sink.count
    for k in range(10_000):
        arrival = k * 1e-3
        symbol = "BTCUSDT" if k % 10 == 0 else symbols[1 + rng.randrange(N_INSTRUMENTS - 1)]
        sigma = 2e-2 if k % 1_000 == 500 else 3e-4  # an occasional jump changes levels
        prices[symbol] *= math.exp(rng.gauss(0.0, sigma))
        start = max(arrival, finish)
        start_cpu = max(arrival, finish_cpu)
        sink.submitted.clear()
        sink.submitted_cpu.clear()
        c0 = time.process_time()
        t0 = time.perf_counter()
        engine.handle([MarkPrice(VENUE, symbol, prices[symbol], k)], k)
        t1 = time.perf_counter()
        c1 = time.process_time()
        finish = start + (t1 - t0)
        finish_cpu = start_cpu + (c1 - c0)
        latencies.append(finish - arrival)
        alerting.extend(start - arrival + (t - t0) for t in sink.submitted)
        alerting_cpu.extend(start_cpu - arrival + (c - c0) for c in sink.submitted_cpu)

    def p99(xs: list[float]) -> float:
        return sorted(xs)[min(len(xs) - 1, int(0.99 * len(xs)))] * 1e3 if xs else 0.0

    # What the distance screen saves: one from-scratch liquidation distance of a 20-leg account.
    a = store.account_input((VENUE, "acct00001"))
    t0 = time.perf_counter()
    for _ in range(20):
        liquidation_distance(a)
    liq_ms = (time.perf_counter() - t0) / 20 * 1e3

    return {
        "liquidation_distance_20_legs_ms": liq_ms,
        "tick_10k_us": _median_us(btc),
        "tick_650_us": _median_us(mid_times),
        "tick_650_positions": float(sizes[mid]),
        "all_marks_frame_ms": statistics.median(frames) * 1e3,
        "tick_to_alert_p99_ms": p99(alerting),
        "tick_to_alert_p99_cpu_ms": p99(alerting_cpu),
        "tick_10k_cpu_us": _median_us(cpu["btc"]),
        "tick_650_cpu_us": _median_us(cpu["mid"]),
        "all_marks_frame_cpu_ms": statistics.median(cpu["frame"]) * 1e3,
        "tick_processing_p99_ms": p99(latencies),
        "alerts_in_replay": float(sink.count - alerts_before),
        "bytes_per_position": held / n_positions,
        "positions": float(n_positions),
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:32s} {v:12.3f}")

"""The engine's deferred queue: evaluations needing a liquidation distance run within a bound
per call, FIFO, once per account on its latest figures, and drain()/the daemon finish them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from store_support import BTC_2024, VENUE, ListSink, linear, mark, position, table

from connectors.events import BalanceUpdate, Event, MarginCall
from monitor.daemon import Daemon, _drain_pending
from monitor.engine import Engine
from monitor.sinks.base import Sink
from monitor.store import AccountKey, Store
from rules.alerts import AccountRisk, AlertConfig

CFG = AlertConfig(liq_distance=0.02, cooldown_ms=10_000)
# 1 BTC long at 30,000, MM 0.4 %: equity b − 30,000·x = 120·(1 − x) at a fall x, so with a
# balance b the distance is (b − 120)/29,880 — under the 2 % threshold for b = 600 and 550.
DIST_600 = 480 / 29_880
DIST_550 = 430 / 29_880


class CountingStore(Store):
    """Counts liquidation-distance evaluations per account (the deferred, costly ones)."""

    def __init__(self) -> None:
        super().__init__()
        self.distance_calls: list[str] = []

    def risk(self, key: AccountKey, **kw: Any) -> AccountRisk:
        if kw.get("with_liquidation", True):
            self.distance_calls.append(key[1])
        return super().risk(key, **kw)


def _engine(sink: ListSink, limit: int | None) -> tuple[Engine, CountingStore]:
    store = CountingStore()
    sinks: list[Sink] = [sink]
    engine = Engine(
        store, lambda key: CFG, sinks, lambda: 1_000_000, deferred_budget_s=None,
        deferred_limit=limit,
    )  # fmt: skip
    engine.handle([linear("BTCUSDT"), table("BTCUSDT", BTC_2024), mark("BTCUSDT", 30_000.0)], 1)
    return engine, store


def _accounts(names: list[str], balance: float = 600.0) -> list[Event]:
    out: list[Event] = []
    for name in names:
        out.append(BalanceUpdate(VENUE, name, "USDT", balance, 0))
        out.append(position(name, "BTCUSDT", 1.0, 30_000.0))
    return out


def _distance_alerts(sink: ListSink) -> list[tuple[str, object]]:
    return [
        (a.account, a.figures.liq_distance_down if a.figures else None)
        for a in sink.alerts
        if a.kind == "liquidation_distance"
    ]


def test_many_deferred_accounts_alert_once_each_within_the_bound_per_call() -> None:
    sink = ListSink()
    engine, store = _engine(sink, limit=3)
    names = [f"a{k:02d}" for k in range(10)]
    first = engine.handle(_accounts(names), 2)
    assert store.distance_calls == names[:3]  # FIFO, at most the bound
    assert [a.account for a in first] == names[:3]
    assert engine.pending_work()
    per_call = []
    while engine.pending_work():
        store.distance_calls.clear()
        engine.handle([], 3)
        per_call.append(list(store.distance_calls))
    assert per_call == [names[3:6], names[6:9], names[9:]]
    expected = [(n, pytest.approx(DIST_600, rel=1e-9)) for n in names]
    assert _distance_alerts(sink) == expected  # every account, exactly once, in queue order
    assert [a.kind for a in sink.alerts] == ["liquidation_distance"] * 10


def test_account_updated_while_queued_is_evaluated_once_with_latest_figures() -> None:
    sink = ListSink()
    engine, store = _engine(sink, limit=1)
    engine.handle(_accounts(["a", "b", "c"]), 2)
    assert store.distance_calls == ["a"]
    # c moves while queued: it keeps its place behind b and is evaluated once, on 550.
    engine.handle([BalanceUpdate(VENUE, "c", "USDT", 550.0, 5)], 3)
    assert store.distance_calls == ["a", "b"]
    assert engine.drain_pending() != []
    assert store.distance_calls == ["a", "b", "c"]
    assert not engine.pending_work()
    assert _distance_alerts(sink) == [
        ("a", pytest.approx(DIST_600, rel=1e-9)),
        ("b", pytest.approx(DIST_600, rel=1e-9)),
        ("c", pytest.approx(DIST_550, rel=1e-9)),
    ]
    c_alert = sink.alerts[-1]
    assert c_alert.figures is not None and c_alert.figures.equity == pytest.approx(550.0)
    assert c_alert.event_time_ms == 5  # the latest input's time


def test_relayed_fact_follows_the_accounts_queued_evaluation() -> None:
    sink = ListSink()
    engine, _store = _engine(sink, limit=1)
    engine.handle(_accounts(["a", "b"]), 2)
    call = MarginCall(VENUE, "b", 7, ())
    engine.handle([call], 3)
    assert [(a.account, a.kind) for a in sink.alerts] == [
        ("a", "liquidation_distance"),
        ("b", "liquidation_distance"),
        ("b", "venue_margin_call"),
    ]
    assert not engine.pending_work()


def test_tick_timers_and_drain_finish_the_queue() -> None:
    sink = ListSink()
    engine, store = _engine(sink, limit=2)
    names = [f"a{k}" for k in range(7)]
    engine.handle(_accounts(names), 2)
    engine.tick_timers(1_000_000)
    assert store.distance_calls == names[:4]
    rest = engine.drain()  # shutdown: everything, unbounded
    assert [a.account for a in rest] == names[4:]
    assert not engine.pending_work() and engine.drain() == []
    assert [n for n, _ in _distance_alerts(sink)] == names


async def test_daemon_drain_task_empties_the_queue_without_the_timer() -> None:
    names = [f"a{k:02d}" for k in range(20)]
    sink = ListSink(want=len(names))
    engine, store = _engine(sink, limit=1)
    engine.handle(_accounts(names), 2)
    assert engine.pending_work()
    daemon = SimpleNamespace(engine=engine, work_pending=asyncio.Event())
    task = asyncio.create_task(_drain_pending(cast(Daemon, daemon)))
    daemon.work_pending.set()
    try:
        async with asyncio.timeout(5):
            await sink.enough.wait()
    finally:
        task.cancel()
    assert not engine.pending_work()
    assert store.distance_calls == names
    assert [n for n, _ in _distance_alerts(sink)] == names

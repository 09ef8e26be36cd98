"""The engine speaks for accounts it cannot compute (C1) and rides out reconnects (M2)."""

from __future__ import annotations

from typing import cast

from store_support import BTC_2024, VENUE, ListSink, linear, mark, position, table
from test_engine import _engine

from connectors.events import Event, FeedState, FeedStatus
from rules.alert_doc import Alert, JsonValue
from rules.alerts import AlertConfig

CFG = AlertConfig(
    liq_distance=None,
    cooldown_ms=10_000,
    mark_stale_ms=60_000,
    account_stale_ms=600_000,
    inputs_missing_ms=5_000,
    feed_down_grace_ms=5_000,
)


def kinds(sink: ListSink) -> list[str]:
    return [a.kind for a in sink.alerts]


def test_an_account_with_a_held_leg_alerts_that_it_cannot_be_computed() -> None:
    engine, sink, clock = _engine(CFG)
    assert kinds(sink) == []  # health 5.0: OK
    opened = clock.now
    # NEWUSDT: a mark, but no instrument facts and no tier table yet — the leg is held.
    engine.handle([mark("NEWUSDT", 2.0), position("main", "NEWUSDT", 100.0, 2.0)], opened)
    clock.now += 1_000
    engine.handle([mark("BTCUSDT", 29_400.0)], clock.now)  # would be CRITICAL (health 0.0…)
    assert kinds(sink) == []  # figures unknown: no margin_level, and still inside the grace
    assert engine.tick_timers(opened + 5_000) == []
    (stale,) = engine.tick_timers(opened + 5_001)
    assert (stale.kind, stale.event_time_ms) == ("feed_stale", opened + 5_000)
    assert [(d["input"], d["kind"]) for d in _entries(stale)] == [
        ("instrument:NEWUSDT", "instrument"),
        ("model:NEWUSDT", "model"),
    ]
    assert sink.alerts == [stale]
    # The facts arrive: the account is computable again, recovers, and its level catches up.
    clock.now = opened + 8_000
    back: list[Event] = [linear("NEWUSDT"), table("NEWUSDT", BTC_2024)]
    out = engine.handle(back, clock.now)
    assert [a.kind for a in out] == ["feed_recovered", "margin_level"]
    assert out[0].event_time_ms == opened + 8_000
    assert out[0].detail["recovered_inputs"] == ["instrument:NEWUSDT", "model:NEWUSDT"]


def test_a_short_incomplete_spell_raises_nothing() -> None:
    engine, sink, clock = _engine(CFG)
    engine.handle([position("main", "NEWUSDT", 100.0, 2.0)], clock.now)
    clock.now += 4_000
    engine.handle([linear("NEWUSDT"), table("NEWUSDT", BTC_2024), mark("NEWUSDT", 2.0)], clock.now)
    assert engine.tick_timers(clock.now + 10_000) == []
    assert kinds(sink) == []


def _status(state: FeedState, ms: int) -> FeedStatus:
    return FeedStatus(VENUE, "market", state, ms)


def test_a_short_reconnect_raises_no_alert() -> None:
    engine, sink, clock = _engine(CFG)
    t = clock.now
    engine.handle([_status(FeedState.DISCONNECTED, t)], t)
    engine.handle([_status(FeedState.RESYNCED, t + 300)], t + 300)
    engine.handle([mark("BTCUSDT", 30_000.0, t + 300)], t + 300)
    for now in (t + 1_000, t + 5_001, t + 6_000):
        assert engine.tick_timers(now) == []
    assert kinds(sink) == []


def test_a_long_outage_raises_one_stale_and_one_recovered() -> None:
    engine, sink, clock = _engine(CFG)
    t = clock.now
    engine.handle([_status(FeedState.DISCONNECTED, t)], t)
    engine.handle([_status(FeedState.STALE, t + 2_000)], t + 2_000)  # a repeat: same outage
    assert engine.tick_timers(t + 5_000) == []
    (stale,) = engine.tick_timers(t + 5_001)
    assert (stale.kind, stale.event_time_ms) == ("feed_stale", t + 5_000)
    assert [d["input"] for d in _entries(stale)] == ["mark:BTCUSDT"]
    assert engine.tick_timers(t + 8_000) == []
    engine.handle([_status(FeedState.RESYNCED, t + 10_000)], t + 10_000)
    engine.handle([mark("BTCUSDT", 30_000.0, t + 10_000)], t + 10_000)
    assert engine.tick_timers(t + 11_000) == []
    assert kinds(sink) == ["feed_stale", "feed_recovered"]


def _entries(alert: Alert) -> list[dict[str, JsonValue]]:
    return cast(list[dict[str, JsonValue]], alert.detail["stale_inputs"])


def test_state_documents_after_first_evaluation_then_on_a_slow_timer() -> None:
    engine, sink, clock = _engine(CFG)
    assert kinds(sink) == []
    (first,) = sink.states  # the first complete evaluation publishes, with no alert
    assert (first.account, int(first.level), first.updated_ms) == ("main", 0, clock.now)
    t = clock.now
    engine.tick_timers(t + 59_999)
    assert len(sink.states) == 1
    engine.tick_timers(t + 60_000)
    assert [s.updated_ms for s in sink.states] == [t, t + 60_000]
    refreshed = sink.states[1].figures  # current figures, not those of the first document
    assert refreshed is not None and refreshed.maintenance_margin == 120.0
    clock.now = t + 61_000
    engine.handle([mark("BTCUSDT", 29_600.0)], clock.now)  # health 1.69 → WARNING: published
    assert [int(s.level) for s in sink.states] == [0, 0, 1]
    engine.tick_timers(t + 120_000)  # 59 s after the transition's document: not yet
    assert len(sink.states) == 3
    engine.tick_timers(t + 121_000)
    assert [int(s.level) for s in sink.states] == [0, 0, 1, 1]

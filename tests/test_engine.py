"""Engine tests: a scripted price path through store + alert policy into an in-memory sink."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_support import BTC_2024, VENUE, ListSink, linear, mark, position, table

from connectors.events import (
    AccountSnapshot,
    BalanceUpdate,
    Event,
    MarginCall,
    MarginCallPosition,
    MarkPrice,
    MarkRun,
    PositionFill,
    VenueFigures,
)
from monitor.engine import Engine
from monitor.sinks.base import Sink
from monitor.store import AccountKey, Store
from rules.alerts import AlertConfig, Level
from rules.types import Side

KEY = (VENUE, "main")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def _engine(cfg: AlertConfig | None = None) -> tuple[Engine, ListSink, Clock]:
    sink = ListSink()
    clock = Clock()
    conf = cfg or AlertConfig(liq_distance=None, cooldown_ms=10_000)

    def config_for(key: AccountKey) -> AlertConfig:
        return conf

    sinks: list[Sink] = [sink]
    engine = Engine(Store(), config_for, sinks, clock)
    setup: list[Event] = [
        linear("BTCUSDT"),
        table("BTCUSDT", BTC_2024),
        mark("BTCUSDT", 30_000.0),
        BalanceUpdate(VENUE, "main", "USDT", 600.0, 0),
        position("main", "BTCUSDT", 1.0, 30_000.0),
    ]
    engine.handle(setup, clock.now)
    return engine, sink, clock


def test_scripted_path_escalates_at_once_and_deescalates_after_cooldown() -> None:
    engine, sink, clock = _engine()
    assert sink.alerts == []  # health 600/120 = 5: OK, nothing to say
    # 1 BTC long, MM 0.4%·notional; equity 600 + (p − 30,000).
    # 29,600: equity 200, MM 118.4 → health 1.69 (WARNING).
    # 29,560: 160/118.24 = 1.35 (DANGER); 29,540: 140/118.16 = 1.18 (CRITICAL).
    path = [
        (29_600.0, [Level.WARNING]),
        (29_590.0, []),
        (29_560.0, [Level.DANGER]),
        (29_540.0, [Level.CRITICAL]),
    ]
    for ms, (price, expected) in enumerate(path, start=1):
        clock.now += 100
        got = engine.handle([mark("BTCUSDT", price, ms=ms)], clock.now)
        assert [a.level for a in got] == expected
    assert [(a.previous_level, a.level) for a in sink.alerts] == [
        (Level.OK, Level.WARNING),
        (Level.WARNING, Level.DANGER),
        (Level.DANGER, Level.CRITICAL),
    ]
    first = sink.alerts[0]
    assert first.kind == "margin_level"
    assert first.receive_time_ms == 1_000_100 and first.emit_time_ms == 1_000_100
    assert first.figures is not None and first.figures.health == pytest.approx(200 / 118.4)
    assert sink.states and sink.states[-1].level == sink.alerts[-1].level
    # Recovery: back to 30,000 (health 5). De-escalation waits for the cooldown.
    clock.now += 100
    assert engine.handle([mark("BTCUSDT", 30_000.0, ms=10)], clock.now) == []
    clock.now += 5_000
    assert engine.tick_timers(clock.now) == []
    clock.now += 6_000
    (alert,) = engine.tick_timers(clock.now)
    assert (alert.previous_level, alert.level) == (Level.CRITICAL, Level.OK)
    assert sink.alerts[-1] == alert
    assert engine.alert_state(KEY).level == Level.OK


def test_dip_and_recover_inside_one_batch_escalates() -> None:
    """Marks of one instrument repeated in a batch are each screened: the dip to 29,540
    (health 1.18, CRITICAL) alerts although the batch ends back at 30,000 (health 5)."""
    engine, sink, clock = _engine()
    clock.now += 100
    batch: list[Event] = [
        mark("BTCUSDT", 29_900.0, ms=1),
        mark("BTCUSDT", 29_540.0, ms=2),
        mark("BTCUSDT", 30_000.0, ms=3),
    ]
    got = engine.handle(batch, clock.now)
    assert [(a.previous_level, a.level) for a in got] == [(Level.OK, Level.CRITICAL)]
    assert got[0].figures is not None
    assert got[0].figures.health == pytest.approx(140 / 118.16)
    assert sink.alerts == got
    assert engine.alert_state(KEY).level == Level.CRITICAL  # de-escalation waits for cooldown


def test_repeats_of_unheld_instruments_do_not_split_a_batch_but_land_in_order() -> None:
    """A venue's burst repeats instruments nobody holds: they are only recorded (latest wins)
    and never cut the batch into runs; a held instrument's dip in the same batch still alerts."""
    engine, sink, clock = _engine()
    store = engine.store
    assert store.holds((VENUE, "BTCUSDT")) and not store.holds((VENUE, "DOGEUSDT"))
    clock.now += 100
    batch: list[Event] = [
        mark("DOGEUSDT", 0.10, ms=1),
        mark("BTCUSDT", 29_540.0, ms=2),
        mark("DOGEUSDT", 0.11, ms=3),
        mark("BTCUSDT", 30_000.0, ms=4),
        mark("DOGEUSDT", 0.12, ms=5),
    ]
    got = engine.handle(batch, clock.now)
    assert [(a.previous_level, a.level) for a in got] == [(Level.OK, Level.CRITICAL)]
    assert sink.alerts == got
    assert not store.holds((VENUE, "DOGEUSDT"))
    book = store.book((VENUE, "DOGEUSDT"))
    assert book is not None
    assert (book.mark, book.mark_recv_ms) == (0.12, clock.now)  # the last of its three marks


def _mark(store: Store, symbol: str) -> tuple[float | None, int | None]:
    """The instrument's last mark and its receive time."""
    book = store.book((VENUE, symbol))
    assert book is not None
    return book.mark, book.mark_recv_ms


def _as_run(batch: list[Event]) -> list[Event]:
    marks = [ev for ev in batch if isinstance(ev, MarkPrice)]
    assert len(marks) == len(batch)
    return [MarkRun(VENUE, marks)]


def test_a_mark_run_screens_every_held_mark_and_records_the_rest() -> None:
    """The batch a feed decodes to (MarkRun) behaves as its marks one after another: the
    held instrument's dip alerts, the idle one lands on its latest mark."""
    engine, _sink, clock = _engine()
    engine.handle([mark("DOGEUSDT", 0.09, ms=0)], clock.now)  # now a known, idle book
    clock.now += 100
    batch: list[Event] = [
        mark("DOGEUSDT", 0.10, ms=1),
        mark("BTCUSDT", 29_540.0, ms=2),
        mark("DOGEUSDT", 0.11, ms=3),
        mark("BTCUSDT", 30_000.0, ms=4),
        mark("ETHUSDT", 3_000.0, ms=5),  # never seen: its book is made on the way
    ]
    got = engine.handle(_as_run(batch), clock.now)
    assert [(a.previous_level, a.level) for a in got] == [(Level.OK, Level.CRITICAL)]
    store = engine.store
    assert _mark(store, "DOGEUSDT") == (0.11, clock.now)
    assert _mark(store, "ETHUSDT")[0] == 3_000.0
    assert _mark(store, "BTCUSDT")[0] == 30_000.0


def test_a_mark_run_never_prices_a_held_book_at_a_bad_mark() -> None:
    """MarkRun promises finite positive marks; a connector that broke it must not move a held
    book (the run goes the general way, which skips such marks)."""
    engine, _sink, clock = _engine()
    store = engine.store
    before = store.figures(KEY)
    for bad in (math.nan, 0.0, -1.0, math.inf):
        assert engine.handle(_as_run([mark("BTCUSDT", bad, ms=1)]), clock.now) == []
        assert _mark(store, "BTCUSDT")[0] == 30_000.0
        assert store.figures(KEY) == before


_symbols = st.sampled_from(["BTCUSDT", "DOGEUSDT", "ETHUSDT"])
_prices = {"BTCUSDT": st.floats(29_400.0, 30_400.0), "DOGEUSDT": st.floats(0.05, 0.2),
           "ETHUSDT": st.floats(2_000.0, 4_000.0)}  # fmt: skip
_batches = st.lists(
    st.lists(_symbols.flatmap(lambda s: _prices[s].map(lambda p: (s, p))), max_size=6),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(_batches)
def test_mark_runs_and_mark_events_give_the_same_alerts_and_state(
    batches: list[list[tuple[str, float]]],
) -> None:
    by_run, sink_run, clock_run = _engine()
    by_event, sink_event, clock_event = _engine()
    ms = 0
    for batch in batches:
        events: list[Event] = []
        for symbol, price in batch:
            ms += 1
            events.append(mark(symbol, price, ms=ms))
        clock_run.now = clock_event.now = clock_run.now + 250
        assert by_run.handle(_as_run(events), clock_run.now) == by_event.handle(
            events, clock_event.now
        )
    assert sink_run.alerts == sink_event.alerts
    assert by_run.store.instruments() == by_event.store.instruments()
    for _, symbol in by_event.store.instruments():
        assert _mark(by_run.store, symbol) == _mark(by_event.store, symbol)
    for key in by_event.store.accounts():
        run, event = by_run.store.figures(key), by_event.store.figures(key)
        assert (run.equity, run.maintenance_margin) == (event.equity, event.maintenance_margin)
        legs = by_run.store.legs(key), by_event.store.legs(key)
        assert [by_run.store.leg_figures(leg) for leg in legs[0]] == [
            by_event.store.leg_figures(leg) for leg in legs[1]
        ]


def test_quiet_ticks_run_no_policy() -> None:
    engine, _sink, clock = _engine()
    store = engine.store
    lo, hi = store.band(0)
    assert lo == pytest.approx(2.0, rel=1e-11)  # OK level: quiet while health > 2
    assert hi == float("inf")
    changed = store.apply(mark("BTCUSDT", 29_900.0), clock.now)
    assert changed.accounts.tolist() == [0] and changed.candidates.size == 0


def test_margin_call_is_relayed() -> None:
    engine, sink, clock = _engine()
    call = MarginCall(
        VENUE,
        "main",
        5,
        (MarginCallPosition("BTCUSDT", Side.BOTH, 1.0, 29_500.0, 118.0, -500.0),),
        cross_wallet_balance=600.0,
    )
    (alert,) = engine.handle([call], clock.now)
    assert alert.kind == "venue_margin_call"
    assert alert.event_time_ms == 5
    assert sink.alerts == [alert]


def test_liquidation_fill_raises_position_liquidated() -> None:
    engine, _sink, clock = _engine()
    fill = PositionFill(VENUE, "main", "BTCUSDT", Side.BOTH, -1.0, 29_450.0, 7, liquidation=True)
    alerts = engine.handle([fill], clock.now)
    assert [a.kind for a in alerts] == ["position_liquidated"]
    assert alerts[0].detail["symbol"] == "BTCUSDT"
    assert engine.store.legs(KEY) == []  # the fill itself closed the position


def test_model_drift_alert_names_disagreeing_positions() -> None:
    engine, _sink, clock = _engine()

    def snapshot(venue_mm: float, ms: int) -> AccountSnapshot:
        return AccountSnapshot(
            VENUE,
            "main",
            {"USDT": 600.0},
            (position("main", "BTCUSDT", 1.0, 30_000.0),),
            ms,
            reported=VenueFigures(venue_mm, {("BTCUSDT", Side.BOTH): venue_mm}),
        )

    assert engine.handle([snapshot(120.0, 1)], clock.now) == []  # agrees: 0.4% of 30,000
    (alert,) = engine.handle([snapshot(150.0, 2)], clock.now)  # venue uses another table
    assert alert.kind == "model_drift" and alert.detail["state"] == "drift"
    assert alert.detail["positions"] == [{"symbol": "BTCUSDT", "our_mm": 120.0, "venue_mm": 150.0}]
    assert engine.handle([snapshot(150.0, 3)], clock.now) == []  # still drifting: no repeat
    (back,) = engine.handle([snapshot(120.0 * (1 + 1e-9), 4)], clock.now)
    assert back.detail["state"] == "agree"
    # The venue valued its MM at its own mark (31,000 → 124): compared there, no drift.
    at_venue_mark = AccountSnapshot(
        VENUE,
        "main",
        {"USDT": 600.0},
        (position("main", "BTCUSDT", 1.0, 30_000.0),),
        5,
        reported=VenueFigures(
            124.0, {("BTCUSDT", Side.BOTH): 124.0}, mark_prices={"BTCUSDT": 31e3}
        ),
    )
    assert engine.handle([at_venue_mark], clock.now) == []


def test_liquidation_distance_alert_computed_only_when_near() -> None:
    cfg = AlertConfig(liq_distance=0.02, cooldown_ms=10_000)
    sink = _engine(cfg)[1]
    # Equity 600 on 30,000 of notional: liquidation about 1.6% below — under 2% at once.
    kinds = [a.kind for a in sink.alerts]
    assert "liquidation_distance" in kinds
    dist = next(a for a in sink.alerts if a.kind == "liquidation_distance")
    assert dist.figures is not None and dist.figures.liq_distance_down is not None
    # (600 − 30,000·x) = 0.004·30,000·(1 − x) → x = 480/29,880
    assert dist.figures.liq_distance_down == pytest.approx(480 / 29_880, rel=1e-9)


def test_feed_stale_when_marks_stop() -> None:
    cfg = AlertConfig(liq_distance=None, mark_stale_ms=1_000, account_stale_ms=60_000)
    engine, _sink, clock = _engine(cfg)
    clock.now += 500
    assert engine.tick_timers(clock.now) == []
    clock.now += 100_000
    alerts = engine.tick_timers(clock.now)
    assert [a.kind for a in alerts] == ["feed_stale"]


def test_liquidation_fills_of_one_order_in_one_ms_get_distinct_ids() -> None:
    engine, _sink, clock = _engine()
    fills: list[Event] = [
        PositionFill(
            VENUE,
            "main",
            "BTCUSDT",
            Side.BOTH,
            -0.4,
            29_450.0,
            7,
            liquidation=True,
            order_id="8886774",
            trade_id=tid,
        )
        for tid in ("101", "102")
    ]
    first, second = engine.handle(fills, clock.now)
    assert first.id != second.id
    assert [a.detail["order_id"] for a in (first, second)] == ["8886774", "8886774"]
    assert [a.detail["trade_id"] for a in (first, second)] == ["101", "102"]

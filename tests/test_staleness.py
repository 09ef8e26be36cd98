"""Feed staleness: blind/recovered transitions per account, input naming, deterministic ids."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from hypothesis import given
from hypothesis import strategies as st

from rules.alert_config import AlertConfig
from rules.alert_doc import Alert, JsonValue, Level, alert_id
from rules.staleness import (
    FeedInputs,
    MissingInput,
    StalenessState,
    check_staleness,
    next_stale_deadline,
    stale_inputs,
)

CFG = AlertConfig(mark_stale_ms=15_000, account_stale_ms=360_000)
T0 = 1_700_000_000_000


def inputs(
    private: int | None = T0, btc: int | None = T0, eth: int | None = T0, **kw: object
) -> FeedInputs:
    marks = {"BTCUSDT": btc, "ETHUSDT": eth}
    base = FeedInputs("binance-usdm", "alice", private, marks, watch_since_ms=T0 - 60_000)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_fresh_inputs_raise_nothing() -> None:
    state, alerts = check_staleness(StalenessState(), inputs(), CFG, T0 + 15_000)
    assert (state, alerts) == (StalenessState(), [])  # age == limit is still fresh


def test_stale_mark_raises_one_feed_stale_naming_the_input() -> None:
    now = T0 + 21_300
    state, alerts = check_staleness(
        StalenessState(), inputs(btc=T0, eth=T0 + 20_000), CFG, now, level=Level.WARNING
    )
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "feed_stale"
    assert (alert.level, alert.previous_level) == (Level.WARNING, Level.WARNING)
    assert alert.event_time_ms == T0 + 15_000  # when it crossed the limit, not when we looked
    assert alert.receive_time_ms == now
    assert alert.id == alert_id("binance-usdm", "alice", "feed_stale", "fresh>stale", T0 + 15_000)
    assert alert.message == (
        "alice@binance-usdm FEED STALE, monitor is blind: mark BTCUSDT 21.3 s old (limit 15.0 s)"
    )
    assert alert.detail == {
        "stale_inputs": [
            {
                "input": "mark:BTCUSDT",
                "kind": "mark",
                "symbol": "BTCUSDT",
                "last_update_ms": T0,
                "age_ms": 21_300,
                "limit_ms": 15_000,
                "down": False,
            }
        ]
    }
    assert state == StalenessState(stale=frozenset({"mark:BTCUSDT"}), blind_since_ms=T0 + 15_000)


def test_still_stale_or_more_stale_adds_no_alert_and_recovery_alerts_once() -> None:
    state, first = check_staleness(StalenessState(), inputs(btc=T0), CFG, T0 + 16_000)
    assert [a.kind for a in first] == ["feed_stale"]
    # A later check while still blind, with a second input stale too: no new alert.
    state, more = check_staleness(state, inputs(btc=T0, eth=T0), CFG, T0 + 40_000)
    assert more == []
    assert state.stale == frozenset({"mark:BTCUSDT", "mark:ETHUSDT"})
    # BTC comes back but ETH is still stale: still blind.
    state, none = check_staleness(state, inputs(btc=T0 + 41_000, eth=T0), CFG, T0 + 41_500)
    assert none == []
    # After the resync everything is fresh: one feed_recovered.
    healed = inputs(private=T0 + 42_000, btc=T0 + 41_900, eth=T0 + 42_100)
    state, rec = check_staleness(state, healed, CFG, T0 + 42_500)
    assert [a.kind for a in rec] == ["feed_recovered"]
    assert rec[0].event_time_ms == T0 + 42_100  # newest update among the inputs that healed
    assert rec[0].detail == {
        "recovered_inputs": ["mark:ETHUSDT"],
        "blind_since_ms": T0 + 15_000,
        "blind_for_ms": 27_100,
    }
    assert rec[0].message == "alice@binance-usdm feed recovered after 27.1 s blind (mark:ETHUSDT)"
    assert state == StalenessState()


def test_private_stream_silence_is_stale_after_its_own_interval() -> None:
    fresh = inputs(private=T0, btc=T0 + 400_000, eth=T0 + 400_000)
    got = stale_inputs(fresh, CFG, T0 + 360_000)
    assert got == ()
    got = stale_inputs(fresh, CFG, T0 + 400_001)
    assert [(s.name, s.kind, s.age_ms) for s in got] == [("private", "private", 400_001)]
    assert got[0].describe() == "private stream 400.0 s old (limit 360.0 s)"


def test_never_seen_input_ages_from_watch_start() -> None:
    fresh = inputs(btc=None)
    assert stale_inputs(fresh, CFG, T0 - 45_000) == ()
    (s,) = stale_inputs(fresh, CFG, T0 - 44_999)
    assert (s.name, s.last_update_ms, s.age_ms, s.stale_at_ms) == (
        "mark:BTCUSDT",
        None,
        15_001,
        T0 - 45_000,
    )


def test_driver_reported_down_feeds_are_stale_at_once() -> None:
    down = inputs(down=frozenset({"mark"}))
    got = stale_inputs(down, CFG, T0 + 1)
    assert [(s.name, s.down) for s in got] == [("mark:BTCUSDT", True), ("mark:ETHUSDT", True)]
    assert got[0].describe() == "mark BTCUSDT feed down"
    _, alerts = check_staleness(StalenessState(), inputs(down=frozenset({"private"})), CFG, T0 + 1)
    assert alerts[0].event_time_ms == T0  # the last update of the input that went down
    assert alerts[0].detail["stale_inputs"] == [
        {
            "input": "private",
            "kind": "private",
            "symbol": None,
            "last_update_ms": T0,
            "age_ms": 1,
            "limit_ms": 360_000,
            "down": True,
        }
    ]


def test_recovery_when_the_stale_instrument_is_no_longer_held() -> None:
    state, _ = check_staleness(StalenessState(), inputs(btc=T0), CFG, T0 + 20_000)
    closed = FeedInputs("binance-usdm", "alice", T0 + 19_000, {"ETHUSDT": T0 + 19_500}, T0)
    state, alerts = check_staleness(state, closed, CFG, T0 + 20_000)
    assert [a.kind for a in alerts] == ["feed_recovered"]
    assert alerts[0].event_time_ms == T0 + 19_500  # falls back to the newest input update


def test_next_stale_deadline() -> None:
    assert next_stale_deadline(inputs(btc=T0 + 5_000, eth=T0 + 1_000), CFG) == T0 + 16_001
    assert next_stale_deadline(inputs(btc=None), CFG) == T0 - 60_000 + 15_001


@given(now=st.integers(T0 + 15_001, T0 + 10**7))
def test_stale_alert_id_does_not_depend_on_when_it_was_detected(now: int) -> None:
    _, alerts = check_staleness(StalenessState(), inputs(btc=T0, eth=T0 + 10**8), CFG, now)
    (alert,) = alerts
    # Whether the private stream is also stale by then or not, the episode began at T0 + 15 s.
    assert alert.event_time_ms == T0 + 15_000
    assert alert.id == alert_id("binance-usdm", "alice", "feed_stale", "fresh>stale", T0 + 15_000)


@given(
    steps=st.lists(
        st.tuples(st.integers(0, 30_000), st.booleans(), st.booleans()), min_size=1, max_size=50
    )
)
def test_alerts_alternate_stale_then_recovered(steps: list[tuple[int, bool, bool]]) -> None:
    """Random update patterns: feed_stale and feed_recovered strictly alternate."""
    state = StalenessState()
    now = T0
    last = {"private": T0, "BTCUSDT": T0}
    kinds: list[str] = []
    for step, private_update, mark_update in steps:
        now += step
        if private_update:
            last["private"] = now
        if mark_update:
            last["BTCUSDT"] = now
        feed = FeedInputs("v", "a", last["private"], {"BTCUSDT": last["BTCUSDT"]}, T0)
        state, alerts = check_staleness(state, feed, CFG, now)
        kinds.extend(a.kind for a in alerts)
        assert (state.blind_since_ms is not None) == bool(stale_inputs(feed, CFG, now))
    expected = ["feed_stale", "feed_recovered"] * len(kinds)
    assert kinds == expected[: len(kinds)]


def test_a_reported_down_feed_is_stale_only_after_its_grace() -> None:
    cfg = AlertConfig(mark_stale_ms=15_000, account_stale_ms=360_000, feed_down_grace_ms=5_000)
    down = inputs(down=frozenset({"mark"}), down_since_ms={"mark": T0 + 100})
    assert stale_inputs(down, cfg, T0 + 5_100) == ()  # a reconnect inside the grace: nothing
    assert next_stale_deadline(down, cfg) == T0 + 5_101
    state, alerts = check_staleness(StalenessState(), down, cfg, T0 + 5_101)
    assert [a.kind for a in alerts] == ["feed_stale"]
    assert alerts[0].event_time_ms == T0 + 5_100  # went down + grace: input-derived
    assert sorted(state.stale) == ["mark:BTCUSDT", "mark:ETHUSDT"]


def test_missing_inputs_raise_feed_stale_after_their_grace_and_recover() -> None:
    cfg = AlertConfig(inputs_missing_ms=5_000)
    missing = (
        MissingInput("instrument", "NEWUSDT", "NEWUSDT: no instrument"),
        MissingInput("model", "NEWUSDT", "NEWUSDT: no margin model"),
    )
    held = inputs(missing=missing, missing_since_ms=T0)
    assert stale_inputs(held, cfg, T0 + 5_000) == ()
    assert next_stale_deadline(held, cfg) == T0 + 5_001
    state, (alert,) = check_staleness(StalenessState(), held, cfg, T0 + 5_001)
    assert (alert.kind, alert.event_time_ms) == ("feed_stale", T0 + 5_000)
    assert [(d["input"], d["kind"], d["reason"]) for d in _entries(alert)] == [
        ("instrument:NEWUSDT", "instrument", "NEWUSDT: no instrument"),
        ("model:NEWUSDT", "model", "NEWUSDT: no margin model"),
    ]
    assert "cannot compute the account: NEWUSDT: no instrument" in alert.message
    done = inputs(complete_since_ms=T0 + 9_000)
    _, (back,) = check_staleness(state, done, cfg, T0 + 9_500)
    assert (back.kind, back.event_time_ms) == ("feed_recovered", T0 + 9_000)
    assert back.detail["recovered_inputs"] == ["instrument:NEWUSDT", "model:NEWUSDT"]


def _entries(alert: Alert) -> list[dict[str, JsonValue]]:
    return cast(list[dict[str, JsonValue]], alert.detail["stale_inputs"])

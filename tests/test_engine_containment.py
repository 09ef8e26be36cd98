"""An exception while applying one event or evaluating one account never leaves the engine
(issue #11): measured before, a leverage of 0 (ZeroDivisionError), a balance asset that is a
list (TypeError) or a held mark of 1.7e308 (ModelInputError: health NaN) ended the daemon.

The venue edge now refuses such data (the typed wire schemas); these events are built directly,
past the edge, to exercise the backstop.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from store_support import VENUE, mark
from test_engine import KEY, _engine

from connectors.events import BalanceUpdate, Event, LeverageUpdate
from rules.alerts import Level


class Counting:
    def __init__(self) -> None:
        self.rejected: list[tuple[str, str]] = []
        self.alerts: list[str] = []

    def tick_to_alert(self, seconds: float) -> None:
        pass

    def recompute(self, seconds: float) -> None:
        pass

    def alert(self, kind: str, level: int | str) -> None:
        self.alerts.append(kind)

    def frame_rejected(self, venue: str, reason: str) -> None:
        self.rejected.append((venue, reason))


def test_bad_events_are_contained_and_the_good_ones_still_alert(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, sink, clock = _engine()
    observer = Counting()
    engine.observer = observer
    list_asset = cast(Any, ["USDT"])  # what a hostile frame would carry, past the edge
    batch: list[Event] = [
        BalanceUpdate(VENUE, "other", list_asset, 600.0, 1),
        mark("BTCUSDT", 29_540.0, ms=2),  # health 1.18: CRITICAL for "main"
    ]
    clock.now += 100
    with caplog.at_level(logging.ERROR, logger="monitor.engine.contain"):
        got = engine.handle(batch, clock.now)
        engine.handle([BalanceUpdate(VENUE, "other", list_asset, 600.0, 3)], clock.now)
    assert [(a.previous_level, a.level) for a in got] == [(Level.OK, Level.CRITICAL)]
    assert sink.alerts == got  # submitted, stamped
    assert engine.alert_state(KEY).level == Level.CRITICAL
    assert observer.rejected == [(VENUE, "apply_error")] * 2
    assert engine.contained == 2
    # The first of a kind is logged with its traceback (a bug); the second only counted.
    bugs = [r for r in caplog.records if "apply_error" in r.getMessage()]
    assert len(bugs) == 1 and bugs[0].exc_info is not None


def test_an_account_the_store_cannot_value_is_contained_until_its_inputs_heal() -> None:
    engine, sink, clock = _engine()
    observer = Counting()
    engine.observer = observer
    clock.now += 100
    # A leverage of 0 past the edge: the book cannot value its margin (a division by zero).
    engine.handle([LeverageUpdate(VENUE, "main", "BTCUSDT", 0.0, 1)], clock.now)
    clock.now += 100
    assert engine.handle([mark("BTCUSDT", 29_900.0, ms=2)], clock.now) == []
    assert engine.contained >= 1
    assert {reason for _, reason in observer.rejected} <= {"apply_error", "evaluate_error"}
    # The next good input (a resync would bring the same) heals it: the dip alerts again.
    clock.now += 100
    engine.handle([LeverageUpdate(VENUE, "main", "BTCUSDT", 20.0, 3)], clock.now)
    clock.now += 100
    got = engine.handle([mark("BTCUSDT", 29_540.0, ms=4)], clock.now)
    assert [(a.previous_level, a.level) for a in got] == [(Level.OK, Level.CRITICAL)]
    assert sink.alerts[-1] == got[-1]

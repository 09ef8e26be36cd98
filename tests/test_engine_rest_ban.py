"""A REST ban (Binance HTTP 418) reported by the driver becomes one ``rest_banned`` alert per
ban, however many of the venue's feeds report it."""

from __future__ import annotations

from store_support import VENUE
from test_engine import _engine

from connectors.events import RestBan
from rules.alerts import Level


def test_one_alert_per_ban_whatever_the_number_of_feeds() -> None:
    engine, sink, clock = _engine()
    since, until = 1_000_000, 1_120_000
    reports = [
        RestBan(VENUE, f"{VENUE}/private/a{i}", since, until, since, f"a{i}") for i in range(3)
    ]
    reports.append(RestBan(VENUE, f"{VENUE}/market", since, until, since))
    got = engine.handle(reports, clock.now)
    assert [(a.kind, a.level, a.venue) for a in got] == [("rest_banned", Level.CRITICAL, VENUE)]
    assert got[0].detail == {"since_ms": since, "until_ms": until}
    assert sink.alerts == got
    # The next ban (a later start) is a new alert with its own id.
    clock.now += 200_000
    (again,) = engine.handle([RestBan(VENUE, f"{VENUE}/market", 1_300_000, 1_540_000, 1)], 0)
    assert again.kind == "rest_banned" and again.id != got[0].id

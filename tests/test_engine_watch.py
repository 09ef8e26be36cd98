"""Configured accounts are watched from start-up, before their first event (H3)."""

from __future__ import annotations

from pathlib import Path

from monitor.config import parse_config
from monitor.daemon import Daemon
from rules.alerts import AlertConfig


async def test_account_whose_private_feed_never_connects_goes_stale(tmp_path: Path) -> None:
    data = {
        "daemon": {"http": "127.0.0.1:0"},
        "alerts": {"account_stale_ms": 60_000},
        "venues": [{"venue": "sim", "ws_url": "ws://127.0.0.1:1"}],
        "accounts": [{"venue": "sim", "name": "alice"}],
        "sinks": {"jsonl": {"path": str(tmp_path / "a.jsonl")}},
    }
    cfg = parse_config(data, "test.toml", environ={})
    assert cfg.alert_config_for("sim", "alice").account_stale_ms == 60_000
    start = 5_000_000
    daemon = Daemon(cfg, clock=lambda: start)
    engine = daemon.engine
    # Unknown, not zero: the account is listed before its first event, without figures.
    arrays = daemon.store.figures_arrays()
    assert arrays.keys == [("sim", "alice")]
    assert not arrays.complete[0]
    assert engine.tick_timers(start + 60_000) == []
    (alert,) = engine.tick_timers(start + 60_001)
    assert (alert.kind, alert.account, alert.event_time_ms) == (
        "feed_stale",
        "alice",
        start + 60_000,
    )
    assert alert.detail["stale_inputs"] == [
        {
            "input": "private",
            "kind": "private",
            "symbol": None,
            "last_update_ms": None,
            "age_ms": 60_001,
            "limit_ms": 60_000,
            "down": False,
        }
    ]
    for sink in daemon.sinks:
        await sink.close()


def test_watch_is_idempotent_and_keeps_the_first_clock() -> None:
    from monitor.engine import Engine
    from monitor.store import Store

    engine = Engine(Store(), lambda key: AlertConfig(account_stale_ms=1_000), [], lambda: 0)
    engine.watch("sim", "bob", 100)
    engine.watch("sim", "bob", 900)
    assert engine.tick_timers(1_100) == []
    assert [a.event_time_ms for a in engine.tick_timers(1_101)] == [1_100]

"""The real daemon against the real SimVenue over loopback websockets."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.fakes.sim.server import SimVenue
from monitor.config import Config, parse_config
from monitor.daemon import Daemon, run_daemon
from rules.alert_doc import Alert, Level, StateDocument

REPO = Path(__file__).resolve().parent.parent
MARGINWATCH = Path(sys.executable).parent / "marginwatch"
# Market time runs this much faster than the wall clock: alice is liquidatable ~4.5 s in.
TIME_SCALE = 4.0
BOUND_S = 60.0  # no wait in this file may exceed this


def config_data(venue: SimVenue, jsonl: Path) -> dict[str, Any]:
    return {
        "daemon": {"http": "127.0.0.1:0", "log_level": "info"},
        "alerts": {"cooldown_ms": 1000},
        "venues": [{"venue": "sim", "ws_url": f"ws://127.0.0.1:{venue.port}", "stale_after_s": 5}],
        "accounts": [{"venue": "sim", "name": n} for n in ("alice", "bob", "carol", "dave")],
        "sinks": {"jsonl": {"path": str(jsonl)}},
    }


def make_config(venue: SimVenue, jsonl: Path) -> Config:
    return parse_config(config_data(venue, jsonl), "test.toml", environ={})


class Recorder:
    """An extra sink that records alerts and lets a test wait for one it cares about."""

    def __init__(self, name: str = "recorder") -> None:
        self._name = name
        self.alerts: list[Alert] = []
        self.states: list[StateDocument] = []
        self._waiters: list[tuple[Callable[[Alert], bool], asyncio.Event]] = []
        self.closed = False

    @property
    def name(self) -> str:
        return self._name

    def submit(self, alert: Alert) -> None:
        self.alerts.append(alert)
        for pred, event in self._waiters:
            if pred(alert):
                event.set()

    def submit_state(self, state: StateDocument) -> None:
        self.states.append(state)

    def pending(self) -> int:
        return 0

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        self.closed = True

    async def wait_for(self, pred: Callable[[Alert], bool]) -> None:
        event = asyncio.Event()
        self._waiters.append((pred, event))
        if any(pred(a) for a in self.alerts):
            return
        async with asyncio.timeout(BOUND_S):
            await event.wait()


def margin_levels(alerts: list[Alert], account: str) -> list[Level]:
    return [a.level for a in alerts if a.kind == "margin_level" and a.account == account]


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_crash_alerts_flow_to_jsonl_and_stop_flushes_every_sink(tmp_path: Path) -> None:
    jsonl = tmp_path / "alerts.jsonl"
    recorder = Recorder()
    async with SimVenue(time_scale=TIME_SCALE) as venue:
        cfg = make_config(venue, jsonl)
        stop = asyncio.Event()
        running: asyncio.Future[Daemon] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            run_daemon(
                cfg,
                stop=stop,
                extra_sinks=[recorder],
                handle_signals=False,
                on_started=running.set_result,
            )
        )
        daemon = await asyncio.wait_for(running, BOUND_S)
        port = daemon.http.port
        assert await http_get(port, "/healthz") == (200, b"ok\n")
        await recorder.wait_for(lambda a: a.account == "alice" and a.level is Level.LIQUIDATABLE)
        status, body = await http_get(port, "/readyz")
        assert (status, orjson.loads(body)) == (200, {"ready": True})
        metrics_status, metrics = await http_get(port, "/metrics")
        assert metrics_status == 200
        assert b'marginwatch_account_health{venue="sim",account="alice"}' in metrics
        # Wired at scrape time: alert level from the engine, feed state from readiness, the age
        # of each feed's last batch; counters of configured sinks and kinds start at 0.
        assert b'marginwatch_account_alert_level{venue="sim",account="alice"} 4' in metrics
        assert b'marginwatch_accounts{level="liquidatable"} 1.0' in metrics
        for feed in ("sim/market", "sim/private/alice", "sim/private/dave"):
            assert f'marginwatch_feed_connected{{feed="{feed}"}} 1.0'.encode() in metrics
            assert f'marginwatch_feed_last_event_age_seconds{{feed="{feed}"}}'.encode() in metrics
        assert b'marginwatch_alert_deliveries_total{result="ok",sink="jsonl"}' in metrics
        assert b'marginwatch_alerts_total{kind="spool_full",level="ok"} 0.0' in metrics
        # The initial snapshots of all five feeds are in: the long-lived heap is frozen.
        assert daemon.heap_frozen
        stop.set()
        assert await asyncio.wait_for(task, BOUND_S) == 0
    assert recorder.closed
    written = [Alert.from_json(line) for line in jsonl.read_bytes().splitlines()]
    # Every alert the engine handed out is on disk, in order, once the daemon has returned.
    assert [a.id for a in written] == [a.id for a in recorder.alerts]
    levels = margin_levels(written, "alice")
    assert levels[:4] == [Level.WARNING, Level.DANGER, Level.CRITICAL, Level.LIQUIDATABLE]
    alice = next(a for a in written if a.account == "alice" and a.level is Level.LIQUIDATABLE)
    assert alice.figures is not None and alice.figures.health is not None
    assert alice.figures.health <= 1.0
    assert alice.top_positions[0].symbol == "SOL-PERP"


async def test_failing_sink_fails_the_daemon_visibly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Recorder):
        async def run(self) -> None:
            raise RuntimeError("sink exploded")

    jsonl_recorder = Recorder("other")
    async with SimVenue(time_scale=TIME_SCALE) as venue:
        cfg = make_config(venue, tmp_path / "a.jsonl")
        status = await asyncio.wait_for(
            run_daemon(cfg, extra_sinks=[Broken("broken"), jsonl_recorder], handle_signals=False),
            BOUND_S,
        )
    assert status == 1
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert any("sink exploded" in r.getMessage() for r in failures)
    assert jsonl_recorder.closed  # the other sinks were still flushed on the way out


async def test_exception_on_the_delivery_path_fails_the_daemon_visibly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding(Recorder):
        def submit(self, alert: Alert) -> None:
            raise RuntimeError("submit exploded")

    async with SimVenue(time_scale=TIME_SCALE) as venue:
        cfg = make_config(venue, tmp_path / "a.jsonl")
        status = await asyncio.wait_for(
            run_daemon(cfg, extra_sinks=[Exploding("exploding")], handle_signals=False), BOUND_S
        )
    assert status == 1
    assert any(
        r.levelno == logging.ERROR and "submit exploded" in r.getMessage() for r in caplog.records
    )


async def test_sigterm_drains_and_flushes_then_exits_0(tmp_path: Path) -> None:
    """The real CLI in a subprocess: SIGTERM after the first alerts; JSONL holds every alert."""
    jsonl = tmp_path / "alerts.jsonl"
    async with SimVenue(time_scale=TIME_SCALE) as venue:
        data = config_data(venue, jsonl)
        lines = [
            "[daemon]",
            'http = "127.0.0.1:0"',
            'log_level = "info"',
            "[alerts]",
            "cooldown_ms = 1000",
            "[[venues]]",
            'venue = "sim"',
            f'ws_url = "{data["venues"][0]["ws_url"]}"',
            *(f'[[accounts]]\nvenue = "sim"\nname = "{n}"' for n in ("alice", "bob")),
            "[sinks.jsonl]",
            f'path = "{jsonl}"',
            "[sinks.console]",
        ]
        config = tmp_path / "mw.toml"
        config.write_text("\n".join(lines) + "\n")
        proc = await asyncio.create_subprocess_exec(
            str(MARGINWATCH),
            "run",
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None and proc.stderr is not None
        try:
            # The console sink prints one line per alert: the first liquidatable one is our cue.
            async with asyncio.timeout(BOUND_S):
                seen: list[bytes] = []
                while not any(b"LIQUIDATABLE" in line for line in seen):
                    line = await proc.stdout.readline()
                    assert line, "daemon exited early"
                    seen.append(line)
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), BOUND_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"SIGTERM received, draining" in err
    printed = [line for line in [*seen, *out.splitlines(keepends=True)] if line.strip()]
    written = [Alert.from_json(line) for line in jsonl.read_bytes().splitlines()]
    # Both sinks were flushed: as many alert lines on stdout as JSON lines on disk.
    assert len(written) == len(printed)
    assert Level.LIQUIDATABLE in margin_levels(written, "alice")


def test_venue_registry_builds_one_market_feed_and_one_feed_per_account() -> None:
    from monitor.wiring import all_feeds

    cfg = parse_config(
        {
            "venues": [
                {"venue": "sim", "ws_url": "ws://127.0.0.1:1", "stale_after_s": 3},
                {"venue": "binance-usdm", "rest_url": "http://127.0.0.1:1"},
            ],
            "accounts": [
                {"venue": "sim", "name": "alice", "stale_after_s": 7},
                {"venue": "binance-usdm", "name": "bob", "api_key_env": "K", "api_secret_env": "S"},
            ],
        },
        "t.toml",
        environ={"K": "key", "S": "secret"},
    )
    feeds = all_feeds(cfg)
    assert [(f.name, f.times.stale_after_s) for f in feeds] == [
        ("sim/market", 3.0),
        ("sim/private/alice", 7.0),
        ("binance-usdm/market", 15.0),
        ("binance-usdm/private/bob", float("inf")),
    ]


def quiet_config(tmp_path: Path) -> Config:
    data = {
        "daemon": {"http": "127.0.0.1:0"},
        "venues": [{"venue": "sim", "ws_url": "ws://127.0.0.1:1"}],
        "accounts": [{"venue": "sim", "name": "alice"}],
        "sinks": {"jsonl": {"path": str(tmp_path / "a.jsonl")}},
    }
    return parse_config(data, "test.toml", environ={})


async def close_sinks(daemon: Daemon) -> None:
    for sink in daemon.sinks:
        await sink.close()


class SpoolingRecorder(Recorder):
    def spool_usage(self) -> tuple[int, int]:
        return 3_000, 10_000


async def test_each_outage_gets_its_own_delivery_failing_alert(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1_000_000]
    other = Recorder("other")
    daemon = Daemon(quiet_config(tmp_path), [Recorder("kafka"), other], clock=lambda: now[0])
    caplog.set_level(logging.INFO, "monitor.sinks.trouble")
    daemon.trouble.on_delivery_failing("kafka", "KafkaConnectionError")
    now[0] += 20_000
    daemon.trouble.on_delivery_resumed("kafka")
    now[0] += 100_000  # past the rate limit: a second, separate outage
    daemon.trouble.on_delivery_failing("kafka", "KafkaConnectionError")
    failing = [a for a in other.alerts if a.kind == "delivery_failing"]
    assert len(failing) == 2
    assert failing[0].id != failing[1].id
    assert [a.detail["failing_since_ms"] for a in failing] == [1_000_000, 1_120_000]
    assert [a.detail["attempts"] for a in failing] == [1, 1]
    assert any("kafka delivering again after 20.0 s" in r.getMessage() for r in caplog.records)
    await close_sinks(daemon)


async def test_another_failure_of_the_same_sink_is_not_rate_limited_away(tmp_path: Path) -> None:
    other = Recorder("other")
    daemon = Daemon(quiet_config(tmp_path), [Recorder("kafka"), other], clock=lambda: 5_000)
    daemon.trouble.on_delivery_failing("kafka", "KafkaConnectionError")
    daemon.trouble.on_delivery_failing(
        "kafka", "KafkaConnectionError"
    )  # same outage, within a minute
    daemon.trouble.on_delivery_failing("kafka", "EnvelopeError")
    reasons = [a.detail["reason"] for a in other.alerts if a.kind == "delivery_failing"]
    assert reasons == ["KafkaConnectionError", "EnvelopeError"]
    await close_sinks(daemon)


async def test_spool_full_alert_reports_the_spools_actual_usage(tmp_path: Path) -> None:
    other = Recorder("other")
    daemon = Daemon(quiet_config(tmp_path), [SpoolingRecorder("kafka"), other], clock=lambda: 1)
    daemon.trouble.on_spool_full("kafka", 42)
    (alert,) = other.alerts
    assert alert.kind == "spool_full"
    assert (alert.detail["spool_bytes"], alert.detail["limit_bytes"]) == (3_000, 10_000)
    assert alert.detail["pending"] == 42
    await close_sinks(daemon)

"""Console and JSONL sinks: the exact line a person reads, the exact JSON a tool reads."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
from pathlib import Path

import orjson
import pytest
from delivery_helpers import RecordingObserver

from connectors.backoff import Backoff
from monitor.errors import DeliveryError, UsageError
from monitor.sinks.base import Sink
from monitor.sinks.console import ConsoleSink, format_alert, format_time
from monitor.sinks.jsonl import JsonlSink
from rules.alert_doc import Alert, Figures, Level, TopPosition

# 2026-11-27T10:01:02.345Z
T = 1_795_773_662_345


def margin_alert(
    level: Level = Level.CRITICAL, previous: Level = Level.DANGER, *, alert_id: str = "a1"
) -> Alert:
    return Alert(
        id=alert_id,
        kind="margin_level",
        venue="sim",
        account="alice",
        level=level,
        previous_level=previous,
        figures=Figures(
            equity=11_400.0,
            maintenance_margin=10_000.0,
            initial_margin=20_000.0,
            margin_ratio=0.877,
            health=1.14,
            liq_distance_down=0.041,
            liq_distance_up=None,
        ),
        top_positions=(TopPosition("BTC-PERP", "LONG", 500_000.0, 10_000.0, 1.0, 57_540.0),),
        event_time_ms=T - 5,
        receive_time_ms=T - 2,
        message="alice@sim critical",
        emit_time_ms=T,
    )


def test_format_time_is_utc_millis() -> None:
    assert format_time(T) == "2026-11-27T10:01:02.345Z"
    assert format_time(0) == "1970-01-01T00:00:00.000Z"


def test_console_margin_level_line() -> None:
    assert format_alert(margin_alert()) == (
        "2026-11-27T10:01:02.345Z CRITICAL     alice@sim        "
        "health 1.14  ratio 87.7%  -4.1% to liq  (was danger)"
    )


def test_console_other_kinds_and_unknown_figures() -> None:
    stale = Alert(
        id="s1",
        kind="feed_stale",
        venue="sim",
        account="bob",
        level=Level.WARNING,
        previous_level=Level.WARNING,
        figures=None,
        top_positions=(),
        event_time_ms=T,
        receive_time_ms=T,
        message="no data on sim/private/bob for 15 s",
    )
    assert format_alert(stale) == (
        "2026-11-27T10:01:02.345Z FEED-STALE   bob@sim          no data on sim/private/bob for 15 s"
    )
    base = margin_alert(Level.OK, Level.WARNING)
    assert base.figures is not None
    no_mm = Alert(
        **{
            **{f: getattr(base, f) for f in base.__dataclass_fields__},
            "figures": Figures(100.0, 0.0, 0.0, None, None, None, 0.2),
        }
    )
    assert format_alert(no_mm).endswith(
        "OK           alice@sim        health inf  +20.0% to liq  (was warning)"
    )


def test_console_kind_line_does_not_repeat_who_or_figures() -> None:
    base = margin_alert()
    near = Alert(
        **{
            **{f: getattr(base, f) for f in base.__dataclass_fields__},
            "kind": "liquidation_distance",
            "message": "alice@sim liquidation 4.1% away (down), threshold 5.0%: health 1.14, ...",
        }
    )
    assert format_alert(near) == (
        "2026-11-27T10:01:02.345Z LIQ-DISTANCE alice@sim        "
        "health 1.14  ratio 87.7%  -4.1% to liq  liquidation 4.1% away (down), threshold 5.0%"
    )


def test_console_colour_only_when_asked() -> None:
    line = format_alert(margin_alert(), colour=True)
    assert line.startswith("2026-11-27T10:01:02.345Z \x1b[31mCRITICAL\x1b[0m     alice@sim ")


async def test_console_sink_writes_one_line_per_alert_and_close_flushes() -> None:
    out = io.StringIO()
    sink: Sink = ConsoleSink(out)
    sink.submit(margin_alert(Level.WARNING, Level.OK))
    sink.submit(margin_alert(Level.CRITICAL, Level.WARNING))
    assert sink.pending() == 2
    await sink.close()  # without run(): close alone must deliver what is queued
    assert sink.pending() == 0
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["WARNING", "CRITICAL"]
    assert "\x1b[" not in out.getvalue()  # StringIO is no terminal


async def test_jsonl_sink_appends_alert_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = JsonlSink(path)
    task = asyncio.create_task(sink.run())
    sink.submit(margin_alert(Level.WARNING, Level.OK, alert_id="w"))
    sink.submit(margin_alert(Level.CRITICAL, Level.WARNING, alert_id="c"))
    # Wait on the file itself (bounded): the run task writes and flushes per batch.
    for _ in range(1000):
        if sink.pending() == 0:
            break
        await asyncio.sleep(0)
    assert path.read_bytes().count(b"\n") == 2
    sink.submit(margin_alert(Level.LIQUIDATABLE, Level.CRITICAL, alert_id="l"))
    await sink.close()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    docs = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [(d["id"], d["level"], d["previous_level"]) for d in docs] == [
        ("w", "warning", "ok"),
        ("c", "critical", "warning"),
        ("l", "liquidatable", "critical"),
    ]
    first = docs[0]
    assert first["schema_version"] == 1
    assert (first["venue"], first["account"], first["kind"]) == ("sim", "alice", "margin_level")
    assert first["figures"]["health"] == 1.14
    assert first["figures"]["liquidation_distance"] == {"down": 0.041, "up": None}
    assert first["top_positions"][0]["liquidation_price"] == 57_540.0
    assert (first["event_time_ms"], first["receive_time_ms"], first["emit_time_ms"]) == (
        T - 5,
        T - 2,
        T,
    )
    assert Alert.from_json(path.read_bytes().splitlines()[2]) == margin_alert(
        Level.LIQUIDATABLE, Level.CRITICAL, alert_id="l"
    )


async def test_jsonl_appends_to_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"old":1}\n')
    sink = JsonlSink(path)
    sink.submit(margin_alert())
    await sink.close()
    assert path.read_bytes().splitlines()[0] == b'{"old":1}'
    assert len(path.read_bytes().splitlines()) == 2


def test_jsonl_bad_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot open for append"):
        JsonlSink(tmp_path / "missing-dir" / "a.jsonl")


async def test_jsonl_submit_after_close_is_loud(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "a.jsonl")
    await sink.close()
    sink.submit(margin_alert())
    with pytest.raises(DeliveryError, match="after close"):
        await asyncio.wait_for(sink.run(), 5)


class Disk:
    """``os.write`` for the JSONL sink: the first ``failures`` calls write ``partial`` bytes
    (at most) and then raise ENOSPC, like a disk that fills mid-write."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: int, partial: int = 0) -> None:
        self.failures = failures
        self.partial = partial
        self._real = os.write
        monkeypatch.setattr("monitor.sinks.jsonl.os.write", self)

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if self.failures <= 0:
            return self._real(fd, data)
        if self.partial:
            n, self.partial = self._real(fd, bytes(data[: self.partial])), 0
            return n
        self.failures -= 1
        raise OSError(errno.ENOSPC, "No space left on device")


def fast_backoff() -> Backoff:
    return Backoff(initial_s=0.001, max_s=0.004, floor=0.5)


async def test_jsonl_write_error_is_retried_reported_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "alerts.jsonl"
    disk = Disk(monkeypatch, failures=3, partial=10)
    observer = RecordingObserver()
    failing: list[tuple[str, str]] = []
    resumed: list[str] = []
    sink = JsonlSink(
        path,
        observer=observer,
        on_delivery_failing=lambda name, reason: failing.append((name, reason)),
        on_delivery_resumed=resumed.append,
        backoff=fast_backoff(),
    )
    task = asyncio.create_task(sink.run())
    async with asyncio.timeout(10):
        sink.submit(margin_alert(alert_id="a"))
        sink.submit(margin_alert(alert_id="b"))
        await observer.wait_for(lambda: observer.delivered_total == 2)
    assert not task.done()  # the daemon's task group never saw it
    assert disk.failures == 0
    assert observer.failures == [(2, "ENOSPC")] * 3  # every attempt counted
    assert failing == [("jsonl", "ENOSPC")]  # one alert per outage
    assert resumed == ["jsonl"]
    await sink.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # The torn first attempt was cut back: exactly two whole lines.
    assert [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()] == ["a", "b"]


class BrokenStream(io.StringIO):
    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__()
        self.failures = failures
        self.error = error

    def write(self, text: str) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return super().write(text)


async def test_console_broken_pipe_is_retried_and_reported() -> None:
    out = BrokenStream(2, BrokenPipeError(errno.EPIPE, "Broken pipe"))
    observer = RecordingObserver()
    failing: list[tuple[str, str]] = []
    sink = ConsoleSink(
        out,
        observer=observer,
        on_delivery_failing=lambda name, reason: failing.append((name, reason)),
        backoff=fast_backoff(),
    )
    task = asyncio.create_task(sink.run())
    async with asyncio.timeout(10):
        sink.submit(margin_alert())
        await observer.wait_for(lambda: observer.delivered_total == 1)
    assert not task.done()
    assert failing == [("console", "EPIPE")]
    assert [reason for _, reason in observer.failures] == ["EPIPE", "EPIPE"]
    assert out.getvalue().count("\n") == 1
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_console_bug_still_fails_the_run_task() -> None:
    sink = ConsoleSink(BrokenStream(1, ValueError("not an I/O problem")), backoff=fast_backoff())
    sink.submit(margin_alert())
    with pytest.raises(ValueError, match="not an I/O problem"):
        await asyncio.wait_for(sink.run(), 10)
    assert sink.pending() == 1  # and the alert is still queued

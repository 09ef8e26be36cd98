"""``marginwatch demo`` as a user runs it: a subprocess, real sockets, the scripted crash.

The default venue is the fake Binance USDⓈ-M (``--venue binance``); ``--venue sim`` is the
generic simulated venue. Both must tell the same story.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from rules.alert_doc import Alert, Level

MARGINWATCH = Path(sys.executable).parent / "marginwatch"
BANNER = re.compile(rb"probes and metrics on http://127\.0\.0\.1:(\d+)/")
# The demo's API keys are fresh secrets.token_hex(32) values: none may ever be printed.
SECRET_LIKE = re.compile(rb"\b[0-9a-f]{64}\b")
VENUE_NAMES = {"binance": "binance-usdm", "sim": "sim"}


async def http_status(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(data.split(b" ", 2)[1])


async def run_demo(*args: str, timeout_s: float) -> tuple[int, bytes, bytes, int]:
    """Run the demo; probe /healthz once it announced its port. Returns (rc, out, err, health)."""
    proc = await asyncio.create_subprocess_exec(
        str(MARGINWATCH),
        "demo",
        "--http",
        "127.0.0.1:0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(timeout_s):
            banner = await proc.stdout.readline()
            match = BANNER.search(banner)
            assert match, banner
            health = await http_status(int(match.group(1)), "/healthz")
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, banner + out, err, health


def margin_path(alerts: list[Alert], account: str) -> list[Level]:
    return [a.level for a in alerts if a.kind == "margin_level" and a.account == account]


def is_subsequence(needle: list[Level], hay: list[Level]) -> bool:
    it = iter(hay)
    return all(any(x == y for y in it) for x in needle)


def check_crash_story(jsonl: Path, venue: str) -> list[Alert]:
    alerts = [Alert.from_json(line) for line in jsonl.read_bytes().splitlines()]
    assert {a.venue for a in alerts if a.account is not None} <= {VENUE_NAMES[venue], None}
    paths = {a.account: margin_path(alerts, a.account) for a in alerts}
    down = [Level.WARNING, Level.CRITICAL, Level.LIQUIDATABLE]
    assert any(is_subsequence(down, p) for p in paths.values()), paths
    assert is_subsequence(down, paths["alice"]), paths
    # Someone came back: an ok alert after a worse level.
    assert any(
        a.kind == "margin_level" and a.level is Level.OK and a.previous_level > Level.OK
        for a in alerts
    )
    assert Level.OK in paths["bob"]
    return alerts


def check_binance_extras(alerts: list[Alert]) -> None:
    """What only the Binance venue does: its margin call and its liquidation of alice."""
    alice = [a for a in alerts if a.account == "alice"]
    kinds = [a.kind for a in alice]
    assert "venue_margin_call" in kinds
    assert "position_liquidated" in kinds
    # The monitor saw it coming: liquidatable before the venue liquidated her.
    first_liquidatable = next(
        i for i, a in enumerate(alice) if a.kind == "margin_level" and a.level is Level.LIQUIDATABLE
    )
    assert first_liquidatable < kinds.index("position_liquidated")
    # (No assertion on model_drift here: the demo's marks move 40 times a second and a move
    # between the two snapshot requests reads as drift today; see the strict xfail in
    # tests/test_demo_binance.py.)
    # Flat after the liquidation: back to ok once, and nothing re-escalates her.
    # (A fill the venue also pushed as an absolute position must not count twice: she would
    # turn into a 5,000 SOL short and be liquidatable again on the rebound.)
    after = margin_path(alice[kinds.index("position_liquidated") :], "alice")
    assert after == [Level.OK], after


@pytest.mark.parametrize("venue", ["binance", "sim"])
async def test_demo_fast_crash(tmp_path: Path, venue: str) -> None:
    """Market time at 3x: the whole story (crash and rebound) plays in ~12 s."""
    jsonl = tmp_path / "alerts.jsonl"
    rc, out, err, health = await run_demo(
        "--venue", venue, "--for", "16", "--time-scale", "3", "--alerts-jsonl", str(jsonl),
        timeout_s=50,
    )  # fmt: skip
    assert rc == 0, err.decode()
    assert health == 200
    alerts = check_crash_story(jsonl, venue)
    # Alert lines were printed as they happened, as well as written.
    assert f"LIQUIDATABLE alice@{VENUE_NAMES[venue]}".encode() in out
    assert b"feeds 5/5 ok" in out  # the non-tty status line
    assert not SECRET_LIKE.search(out + err)
    if venue == "binance":
        check_binance_extras(alerts)


async def test_demo_real_speed_within_60_s(tmp_path: Path) -> None:
    """What the issue promises, at real speed and with the default venue (fake Binance): the
    crash story well inside 60 s, exit 0."""
    jsonl = tmp_path / "alerts.jsonl"
    rc, out, err, health = await run_demo("--for", "40", "--alerts-jsonl", str(jsonl), timeout_s=60)
    assert rc == 0, err.decode()
    assert health == 200
    assert b"fake Binance" in out
    check_binance_extras(check_crash_story(jsonl, "binance"))


async def test_demo_exits_0_on_sigint() -> None:
    """`make demo` runs until Ctrl-C: SIGINT drains and exits cleanly with status 0."""
    proc = await asyncio.create_subprocess_exec(
        str(MARGINWATCH),
        "demo",
        "--http",
        "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            banner = await proc.stdout.readline()
            assert BANNER.search(banner), banner
            proc.send_signal(signal.SIGINT)
            _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert b"fake Binance" in banner  # the default venue
    assert not SECRET_LIKE.search(banner + err)

"""``marginwatch decode``: events as JSON lines, reasons on stderr, exit statuses 0/1/2."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import orjson
import pytest

from monitor.cli import main

from .samples import SAMPLES


def _run(
    argv: list[str], capsysbinary: pytest.CaptureFixture[bytes]
) -> tuple[int, list[dict[str, object]], str]:
    status = main(argv)
    out, err = capsysbinary.readouterr()
    return status, [orjson.loads(line) for line in out.splitlines()], err.decode()


def test_single_document(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    status, events, err = _run(
        ["decode", "--venue", "binance-usdm", str(SAMPLES / "ws_mark_price_update.json")],
        capsysbinary,
    )
    assert (status, err) == (0, "")
    assert events == [
        {
            "type": "MarkPrice",
            "venue": "binance-usdm",
            "symbol": "BTCUSDT",
            "mark": 11794.15,
            "event_ms": 1562305380000,
            "index": 11784.62659091,
        }
    ]


def test_lines_with_a_bad_frame(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    frames = tmp_path / "frames.jsonl"
    margin_call = orjson.dumps(orjson.loads((SAMPLES / "ws_margin_call.json").read_bytes()))
    frames.write_bytes(
        b'{"e":"markPriceUpdate","E":1700000000001,"s":"ETHUSDT","p":"2"}\n'
        b"\n"
        b"{not json\n" + margin_call + b"\n"
        b'{"e":"markPriceUpdate","E":1700000000001,"s":"ETHUSDT","p":"-2"}\n'
    )
    status, events, err = _run(["decode", "--venue", "binance-coinm", str(frames)], capsysbinary)
    assert status == 1
    assert err.splitlines() == ["line 3: bad_json", "line 5: bad_value"]
    assert [e["type"] for e in events] == ["MarkPrice", "MarginCall"]
    assert events[0]["venue"] == "binance-coinm"
    assert events[1]["positions"] == [
        {
            "symbol": "ETHUSDT",
            "side": "long",
            "qty": 1.327,
            "mark": 187.17127,
            "maintenance_margin": 1.614445,
            "upnl": -1.166074,
        }
    ]


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    data = (SAMPLES / "ws_listen_key_expired.json").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    status, events, _ = _run(["decode", "--venue", "binance-usdm", "-"], capsysbinary)
    assert status == 0
    assert events == [
        {
            "type": "StreamExpired",
            "venue": "binance-usdm",
            "account": "decode",
            "event_ms": 1736996475556,
        }
    ]


def test_unknown_venue_is_a_usage_error(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    status, events, err = _run(["decode", "--venue", "nope", "-"], capsysbinary)
    assert (status, events) == (2, [])
    assert err.startswith("marginwatch: --venue: unknown venue 'nope'")


def test_missing_file_is_a_usage_error(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    status, _, err = _run(["decode", "--venue", "binance-usdm", str(tmp_path / "x")], capsysbinary)
    assert status == 2
    assert "cannot read" in err

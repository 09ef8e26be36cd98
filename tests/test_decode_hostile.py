"""``marginwatch decode`` answers every line of hostile input and never tracebacks (issue #11).

Measured before: the first 1000-deep or 2^64 line ended the run with a traceback (only
``VenueDataError`` was caught and the event encoder was unguarded), and a bare ``\\r`` counted as
a line break, so ``line N`` pointed at the wrong line.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from monitor.cli import main

GOOD = b'{"e":"markPriceUpdate","E":1700000000001,"s":"ETHUSDT","p":"2"}'
DEEP_CODE = b'{"code":' + b"[" * 1000 + b"]" * 1000 + b',"msg":"x"}'
HUGE_TIME = b'{"e":"markPriceUpdate","E":' + str(2**64 + 7).encode() + b',"s":"BTCUSDT","p":"3"}'


def _decode(
    tmp_path: Path, lines: list[bytes], capsysbinary: pytest.CaptureFixture[bytes]
) -> tuple[int, list[bytes], list[str]]:
    path = tmp_path / "frames.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    status = main(["decode", "--venue", "binance-usdm", str(path)])
    out, err = capsysbinary.readouterr()
    return status, out.splitlines(), err.decode().splitlines()


def test_every_line_gets_an_answer_and_the_run_goes_on(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    status, out, err = _decode(tmp_path, [DEEP_CODE, GOOD, HUGE_TIME, GOOD], capsysbinary)
    assert status == 1
    assert len(err) >= 1
    assert err[0].startswith("line 1: ")
    assert not any("Traceback" in line for line in err)
    decoded = [orjson.loads(line) for line in out if b"ETHUSDT" in line]
    assert [d["mark"] for d in decoded] == [2.0, 2.0]  # lines 2 and 4 both decode
    # Line 3 either decodes (the event time shown exactly) or says why not; never a crash.
    huge = [line for line in out if b"BTCUSDT" in line]
    assert huge == [] or str(2**64 + 7).encode() in huge[0]
    assert huge or any(line.startswith("line 3: ") for line in err)


def test_line_numbers_count_newlines_only(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    status, out, err = _decode(tmp_path, [GOOD, b"{not\rjson", b"{broken"], capsysbinary)
    assert status == 1
    assert [line.split(":")[0] for line in err] == ["line 2", "line 3"]
    assert len(out) == 1


def test_a_deep_line_alone_is_one_failed_line(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    status, out, err = _decode(tmp_path, [DEEP_CODE], capsysbinary)
    assert (status, out) == (1, [])
    assert len(err) == 1 and err[0].startswith("line 1: ")

"""Config values that used to pass, crash or silently fall back (issue #11), each a one-line
usage error naming the file and the key, with exit status 2; and ``--check`` refuses what
``run`` would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.errors import UsageError


def _venue_config(tmp_path: Path, venue_lines: str, venue: str = "binance-usdm") -> Path:
    path = tmp_path / "mw.toml"
    path.write_text(f'[[venues]]\nvenue = "{venue}"\n{venue_lines}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'rest_url = "ftp://x"',
            "rest_url: must be a URL (http:// or https://) with a host, got 'ftp://x'",
        ),
        (
            'rest_url = "http://"',
            "rest_url: must be a URL (http:// or https://) with a host, got 'http://'",
        ),
        ('rest_url = ""', "rest_url: must be a URL (http:// or https://) with a host, got ''"),
        (
            'ws_url = "not a url"',
            "ws_url: must be a URL (ws:// or wss://) with a host, got 'not a url'",
        ),
        ('ws_url = "http://127.0.0.1:1"', "ws_url: must be a URL (ws:// or wss://) with a host"),
        ('ws_url = ""', "ws_url: must be a URL (ws:// or wss://) with a host, got ''"),
        ('ws_url = "wss://host:99999"', "ws_url: must be a URL (ws:// or wss://) with a host"),
        ("stale_after_s = inf", "stale_after_s: must be <= 86400, got inf"),
        ("resync_interval_s = 1e300", "resync_interval_s: must be <= 86400, got 1e+300"),
        ("stale_after_s = 0", "stale_after_s: must be > 0, got 0"),
    ],
)
def test_venue_endpoints_and_intervals_are_checked(
    tmp_path: Path, line: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _venue_config(tmp_path, line)
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: venues[0].")
    assert message in str(err.value)
    # The same through the CLI, --check included: one line, exit 2, no traceback.
    assert main(["run", "--config", str(path), "--check"]) == 2
    out, errs = capsys.readouterr()
    assert out == ""
    assert errs.count("\n") == 1 and message in errs


def test_valid_endpoints_pass(tmp_path: Path) -> None:
    path = _venue_config(
        tmp_path, 'rest_url = "https://fapi.binance.com"\nws_url = "wss://fstream.binance.com:443"'
    )
    cfg = load_config(path)
    assert cfg.venue("binance-usdm").ws_url == "wss://fstream.binance.com:443"


def test_check_refuses_what_run_refuses_when_building_feeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The sim venue needs a host and port; the config layer cannot know that, its factory does.
    path = _venue_config(tmp_path, 'rest_url = "http://127.0.0.1"', venue="sim")
    assert main(["run", "--config", str(path), "--check"]) == 2
    _, errs = capsys.readouterr()
    assert errs == f"marginwatch: {path}: venues.sim.ws_url: the sim venue needs ws://HOST:PORT\n"


def test_the_http_address_remembers_where_it_came_from(tmp_path: Path) -> None:
    path = tmp_path / "mw.toml"
    path.write_text(
        '[daemon]\nhttp = "127.0.0.1:9999"\n[[venues]]\nvenue = "sim"\nws_url = "ws://127.0.0.1:1"\n',
        encoding="utf-8",
    )
    assert load_config(path).daemon.http.source == f"{path}: [daemon].http"


async def test_a_busy_daemon_http_names_the_config_key_not_a_flag(tmp_path: Path) -> None:
    import socket

    from monitor.daemon import Daemon

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = tmp_path / "mw.toml"
        path.write_text(
            f'[daemon]\nhttp = "127.0.0.1:{port}"\n'
            '[[venues]]\nvenue = "sim"\nws_url = "ws://127.0.0.1:1"\n',
            encoding="utf-8",
        )
        daemon = Daemon(load_config(path))
        with pytest.raises(UsageError) as err:
            await daemon.http.start()
        for sink in daemon.sinks:
            await sink.close()
    assert str(err.value).startswith(f"{path}: [daemon].http 127.0.0.1:{port}: cannot listen")

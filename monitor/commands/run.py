"""``marginwatch run --config FILE [--http HOST:PORT] [--check]``: the monitor daemon.

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT drain the engine and flush every sink),
1 when a task failed (logged with its traceback), 2 for a usage or config error (one line),
130 when a second signal cut the drain short.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket

from monitor.config import Config, check_local_resources, load_config, parse_host_port
from monitor.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve /healthz /readyz /metrics here (overrides [daemon].http)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="run every check `run` does short of listening and connecting (config, secrets, "
        "venue settings, the HTTP address, the sinks' local files), then exit 0",
    )


def with_http(cfg: Config, http: str | None) -> Config:
    if http is None:
        return cfg
    daemon = dataclasses.replace(cfg.daemon, http=parse_host_port(http, "--http"))
    return dataclasses.replace(cfg, daemon=daemon)


def check_startup(cfg: Config) -> None:
    """What start-up would reject, short of listening and connecting: every venue's feeds are
    built (their settings checked by the venue's own factory) and the HTTP host resolves."""
    from monitor.wiring import all_feeds  # noqa: PLC0415 - connectors only when checking

    all_feeds(cfg)  # builds objects only: no socket is opened until a feed runs
    http = cfg.daemon.http
    try:
        socket.getaddrinfo(http.host, http.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"{http.source} {http}: cannot listen: {reason}") from exc


def run(args: argparse.Namespace) -> int:
    cfg = with_http(load_config(args.config), args.http)
    if args.check:
        check_local_resources(cfg)
        check_startup(cfg)
        print(f"{cfg.path}: ok ({len(cfg.accounts)} accounts on {len(cfg.venues)} venues)")
        return 0
    # Imported here so a config error is reported without loading the engine and connectors.
    from monitor.daemon import configure_logging, run_daemon  # noqa: PLC0415 - see above

    configure_logging(cfg.daemon.log_level)
    try:
        return asyncio.run(run_daemon(cfg))
    except asyncio.CancelledError:
        return 130  # a second signal: we stopped waiting for the sinks (logged)

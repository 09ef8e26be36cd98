"""``marginwatch run --config FILE [--http HOST:PORT] [--check]``: the monitor daemon.

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT drain the engine and flush every sink),
1 when a task failed (logged with its traceback), 2 for a usage or config error (one line),
130 when a second signal cut the drain short.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from monitor.config import Config, check_local_resources, load_config, parse_host_port


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
        help="validate the config, secrets and the sinks' local files (JSONL file, spool "
        "directory: writable, not locked), then exit 0",
    )


def with_http(cfg: Config, http: str | None) -> Config:
    if http is None:
        return cfg
    daemon = dataclasses.replace(cfg.daemon, http=parse_host_port(http, "--http"))
    return dataclasses.replace(cfg, daemon=daemon)


def run(args: argparse.Namespace) -> int:
    cfg = with_http(load_config(args.config), args.http)
    if args.check:
        check_local_resources(cfg)
        print(f"{cfg.path}: ok ({len(cfg.accounts)} accounts on {len(cfg.venues)} venues)")
        return 0
    # Imported here so a config error is reported without loading the engine and connectors.
    from monitor.daemon import configure_logging, run_daemon  # noqa: PLC0415 - see above

    configure_logging(cfg.daemon.log_level)
    try:
        return asyncio.run(run_daemon(cfg))
    except asyncio.CancelledError:
        return 130  # a second signal: we stopped waiting for the sinks (logged)

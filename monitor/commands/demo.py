"""``marginwatch demo``: the daemon against a simulated venue that crashes on cue.

Starts the simulated venue in-process on a free loopback port and the real daemon against it
(real websockets, the real driver, engine and sinks), prints alerts as they happen and a compact
live view of account health, and serves /healthz /readyz /metrics. About 8 s in, the scripted
crash takes alice through warning → danger → critical → liquidatable; bob dips and recovers
after the rebound (~28 s). Runs until Ctrl-C, or ``--for SECONDS``; exit status 0 when clean.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from monitor.config import Config, parse_config, parse_host_port
from monitor.errors import UsageError

DEMO_CONFIG = "demo.toml"
VENUES = ("sim", "binance")
# The venue `marginwatch demo` uses without --venue. The Binance fake plugs in by adding a
# runner to _VENUE_RUNNERS below; flip this default then.
DEFAULT_VENUE = "sim"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--for", dest="seconds", type=_positive, metavar="SECONDS", help="stop after SECONDS"
    )
    parser.add_argument("--alerts-jsonl", metavar="FILE", help="also append every alert here")
    parser.add_argument(
        "--http", metavar="HOST:PORT", help="probes and metrics address (default 127.0.0.1:9464)"
    )
    parser.add_argument("--kafka", metavar="HOST:PORT", help="publish alerts and state to Kafka")
    parser.add_argument("--mqtt", metavar="HOST:PORT", help="publish alerts and state to MQTT")
    parser.add_argument("--seed", type=int, default=7, help="seed of the market's random walk")
    parser.add_argument("--venue", choices=VENUES, default=DEFAULT_VENUE, help="venue to simulate")
    parser.add_argument(
        "--time-scale",
        type=_positive,
        default=1.0,
        metavar="X",
        help="play market time X times faster (tests; default 1)",
    )
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="override the config"
    )


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def demo_config(
    ws_url: str,
    *,
    http: str | None = None,
    alerts_jsonl: str | None = None,
    kafka: str | None = None,
    mqtt: str | None = None,
    spool_dir: Path | None = None,
    log_level: str | None = None,
) -> Config:
    """The packaged demo config with the venue's address and the command line filled in."""
    data: dict[str, Any] = tomllib.loads(
        resources.files("monitor.data").joinpath(DEMO_CONFIG).read_text(encoding="utf-8")
    )
    for venue in data["venues"]:
        if venue["venue"] == "sim":
            venue["ws_url"] = ws_url
    daemon = data.setdefault("daemon", {})
    if http is not None:
        parse_host_port(http, "--http")  # the flag's name in the error, not the config key's
        daemon["http"] = http
    if log_level is not None:
        daemon["log_level"] = log_level
    sinks = data.setdefault("sinks", {})
    sinks.pop("console", None)  # the demo's own view prints the alerts
    if alerts_jsonl is not None:
        sinks["jsonl"] = {"path": alerts_jsonl}
    if kafka is not None:
        parse_host_port(kafka, "--kafka")
        spool = (spool_dir or Path(tempfile.gettempdir())) / "kafka"
        sinks["kafka"] = {"bootstrap": kafka, "spool": {"directory": str(spool)}}
    if mqtt is not None:
        hp = parse_host_port(mqtt, "--mqtt")
        sinks["mqtt"] = {"host": hp.host, "port": hp.port}
    return parse_config(data, f"<demo>/{DEMO_CONFIG}", environ=os.environ, config_dir=Path.cwd())


def run(args: argparse.Namespace) -> int:
    if args.venue not in _VENUE_RUNNERS:
        raise UsageError(f"--venue {args.venue}: no simulated {args.venue} venue in this build yet")
    # Validate the command line before starting anything (a bad flag is exit 2, one line).
    for flag in ("http", "kafka", "mqtt"):
        value = getattr(args, flag)
        if value is not None:
            parse_host_port(value, f"--{flag}")
    from monitor.daemon import configure_logging  # noqa: PLC0415 - keep `marginwatch --help` light

    configure_logging(args.log_level or "warning")
    try:
        return asyncio.run(_VENUE_RUNNERS[args.venue](args))
    except KeyboardInterrupt:  # a Ctrl-C before the daemon's own handler was installed
        return 0
    except asyncio.CancelledError:
        return 130  # a second Ctrl-C cut the drain short


@contextmanager
def _scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="marginwatch-demo-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def _run_sim(args: argparse.Namespace) -> int:
    # Imported here: the demo's extra machinery is not part of the daemon's import graph.
    from connectors.sim.market import MarketPath  # noqa: PLC0415
    from connectors.sim.server import SimVenue  # noqa: PLC0415
    from monitor.daemon import Daemon, run_daemon  # noqa: PLC0415
    from monitor.demo_view import AccountRow, DemoView, ViewSource  # noqa: PLC0415

    with _scratch_dir() as scratch:
        venue = SimVenue(path=MarketPath(seed=args.seed), time_scale=args.time_scale)
        await venue.start()
        try:
            cfg = demo_config(
                f"ws://{venue.host}:{venue.port}",
                http=args.http,
                alerts_jsonl=args.alerts_jsonl,
                kafka=args.kafka,
                mqtt=args.mqtt,
                spool_dir=scratch,
                log_level=args.log_level,
            )
            view = DemoView()
            stop = asyncio.Event()
            if args.seconds is not None:
                asyncio.get_running_loop().call_later(args.seconds, stop.set)

            def started(daemon: Daemon) -> None:
                http = f"{cfg.daemon.http.host}:{daemon.http.port}"
                view.attach(
                    ViewSource(
                        accounts=[a.key for a in cfg.accounts],
                        row=_row_reader(daemon, AccountRow),
                        feeds=daemon.health.states,
                        http=http,
                    )
                )
                until = f"for {args.seconds:g} s" if args.seconds else "until Ctrl-C"
                print(
                    f"marginwatch demo: simulated venue on ws://{venue.host}:{venue.port} "
                    f"(crash at ~{8 / args.time_scale:.0f} s), probes and metrics on "
                    f"http://{http}/ (healthz readyz metrics), running {until}",
                    flush=True,
                )

            status = await run_daemon(cfg, stop=stop, extra_sinks=[view], on_started=started)
        finally:
            await venue.close()
    print(f"marginwatch demo: {view.alerts_seen} alerts, exit status {status}", file=sys.stderr)
    return status


def _row_reader(daemon: Any, row_type: Any) -> Callable[[tuple[str, str]], Any]:
    """Live figures of one account from the store (None until its snapshot arrived)."""
    store = daemon.store

    def row(key: tuple[str, str]) -> Any:
        if store.index_of(key) is None:
            return None
        f = store.figures(key)
        down = None
        risk = getattr(store, "risk", None)
        if risk is not None and f.complete:
            down = risk(key).liq_distance_down
        return row_type(f.equity, f.maintenance_margin, f.margin_ratio, f.health, down)

    return row


_VENUE_RUNNERS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "sim": _run_sim
}

"""``marginwatch demo``: the daemon against a fake venue that crashes on cue.

Starts the venue in-process on free loopback ports and the real daemon against it (real
websockets, the real driver, engine and sinks), prints alerts as they happen and a compact live
view of account health, and serves /healthz /readyz /metrics. The default venue is the fake
Binance USDⓈ-M (signed REST snapshots, listenKey user streams, the all-market mark stream;
several cross accounts, one in hedge mode); ``--venue sim`` runs the generic simulated venue.
About 8 s in, the scripted crash takes alice through warning → danger → critical →
liquidatable (on Binance the venue then liquidates her); bob dips and recovers after the
rebound (~25 s). Runs until Ctrl-C, or ``--for SECONDS``; exit status 0 when clean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
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

log = logging.getLogger(__name__)

DEMO_CONFIG = "demo.toml"
DEMO_CONFIGS = {"sim": DEMO_CONFIG, "binance": "demo_binance.toml"}
VENUES = ("binance", "sim")
DEFAULT_VENUE = "binance"  # what `marginwatch demo` (and `make demo`) runs without --venue


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
    rest_url: str | None = None,
    venue: str = "sim",
    http: str | None = None,
    alerts_jsonl: str | None = None,
    kafka: str | None = None,
    mqtt: str | None = None,
    spool_dir: Path | None = None,
    log_level: str | None = None,
) -> Config:
    """The packaged demo config of ``venue`` with its addresses and the command line filled in.

    Secrets the config names (the fake Binance accounts' API keys) are read from ``os.environ``,
    where the demo put them: the config takes the same path as a deployment's.
    """
    name = DEMO_CONFIGS[venue]
    data: dict[str, Any] = tomllib.loads(
        resources.files("monitor.data").joinpath(name).read_text(encoding="utf-8")
    )
    for entry in data["venues"]:
        entry["ws_url"] = ws_url
        if rest_url is not None:
            entry["rest_url"] = rest_url
    daemon = data.setdefault("daemon", {})
    if http is not None:
        parse_host_port(http, "--http")  # the flag's name in the error, not the config key's
        daemon["http"] = http
    if log_level is not None:
        daemon["log_level"] = log_level
    sinks = data.setdefault("sinks", {})
    sinks["console"] = {"enabled": False}  # the demo's own view prints the alerts
    if alerts_jsonl is not None:
        sinks["jsonl"] = {"path": alerts_jsonl}
    if kafka is not None:
        parse_host_port(kafka, "--kafka")
        spool = (spool_dir or Path(tempfile.gettempdir())) / "kafka"
        sinks["kafka"] = {"bootstrap": kafka, "spool": {"directory": str(spool)}}
    if mqtt is not None:
        hp = parse_host_port(mqtt, "--mqtt")
        sinks["mqtt"] = {"host": hp.host, "port": hp.port}
    return parse_config(data, f"<demo>/{name}", environ=os.environ, config_dir=Path.cwd())


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
    from connectors.fakes.sim.market import MarketPath  # noqa: PLC0415
    from connectors.fakes.sim.server import SimVenue  # noqa: PLC0415

    with _scratch_dir() as scratch:
        venue = SimVenue(path=MarketPath(seed=args.seed), time_scale=args.time_scale)
        await venue.start()
        try:
            url = f"ws://{venue.host}:{venue.port}"
            cfg = _config(args, scratch, "sim", url)
            return await _run_daemon(
                args, cfg, f"simulated venue on {url} (crash at ~{8 / args.time_scale:.0f} s)"
            )
        finally:
            await venue.close()


async def _run_binance(args: argparse.Namespace) -> int:
    from connectors.fakes.binance import FakeBinance  # noqa: PLC0415
    from monitor.demo import binance as demo_binance  # noqa: PLC0415

    # Fresh random API keys per run, handed to the daemon the way a deployment hands them:
    # environment variables named by the config (never printed; gone when the demo exits).
    keys: dict[str, tuple[str, str]] = {}

    def credentials(name: str) -> tuple[str, str]:
        key_env, secret_env = demo_binance.credentials(name)
        os.environ[key_env] = secrets.token_hex(32)
        os.environ[secret_env] = secrets.token_hex(32)
        keys[name] = (key_env, secret_env)
        return os.environ[key_env], os.environ[secret_env]

    fake = FakeBinance(contracts=demo_binance.CONTRACTS, autotick=True)
    demo_binance.populate(fake, credentials)
    script = demo_binance.DemoScript(fake, seed=args.seed, time_scale=args.time_scale)
    try:
        with _scratch_dir() as scratch:
            await fake.start()
            mover = asyncio.create_task(script.run(), name="demo market")
            try:
                cfg = _config(args, scratch, "binance", fake.ws_url, fake.rest_url)
                where = (
                    f"fake Binance USDⓈ-M on {fake.rest_url} and {fake.ws_url} "
                    f"(crash at ~{script.crash_at_s:.0f} s)"
                )
                return await _run_daemon(args, cfg, where, mover)
            finally:
                mover.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await mover
                await fake.close()
    finally:
        for names in keys.values():
            for env in names:
                os.environ.pop(env, None)


def _config(
    args: argparse.Namespace, scratch: Path, venue: str, ws_url: str, rest_url: str | None = None
) -> Config:
    return demo_config(
        ws_url,
        rest_url=rest_url,
        venue=venue,
        http=args.http,
        alerts_jsonl=args.alerts_jsonl,
        kafka=args.kafka,
        mqtt=args.mqtt,
        spool_dir=scratch,
        log_level=args.log_level,
    )


async def _run_daemon(
    args: argparse.Namespace, cfg: Config, where: str, *helpers: asyncio.Task[None]
) -> int:
    """The daemon with the live view as an extra sink, until Ctrl-C or ``--for``.

    ``helpers`` (the venue's script) must keep running: one that fails stops the demo with
    status 1 rather than leaving a frozen market behind a healthy-looking view.
    """
    from monitor.daemon import Daemon, run_daemon  # noqa: PLC0415
    from monitor.demo.view import AccountRow, DemoView, ViewSource  # noqa: PLC0415

    view = DemoView()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if args.seconds is not None:
        loop.call_later(args.seconds, stop.set)
    failed: list[BaseException] = []

    def helper_done(task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            failed.append(exc)
            stop.set()

    for task in helpers:
        task.add_done_callback(helper_done)

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
            f"marginwatch demo: {where}, probes and metrics on "
            f"http://{http}/ (healthz readyz metrics), running {until}",
            flush=True,
        )

    status = await run_daemon(cfg, stop=stop, extra_sinks=[view], on_started=started)
    for exc in failed:
        log.error("demo: the venue script failed", exc_info=(type(exc), exc, exc.__traceback__))
        status = 1
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
    "binance": _run_binance,
    "sim": _run_sim,
}

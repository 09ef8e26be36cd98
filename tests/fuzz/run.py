"""Run mutated frames of each venue through parse → ``Store.apply`` → ``Engine.handle`` →
alert encode, and count what went wrong, by stage and site.

``make fuzz`` (``FRAMES=``, ``SEED=``, ``VENUES=`` to change) runs :func:`main`; the slice in
``make test`` calls :func:`run`. Only public APIs are used: the venue registry's frame parser,
``Store``/``Engine`` as the daemon builds them, the store's read methods, and ``to_json`` of
what the engine hands its sinks.

Per frame: the parser either returns events or raises ``VenueDataError`` (counted by reason);
anything else it raises is a parser crash. Each event is held to the bounds (:mod:`.checks`):
one that breaks them is an accepted-but-invalid item. The events then go through the engine (a
crash there is filed under the innermost package it came from: ``store``, ``engine`` or
``rules``; an engine that contains a bug instead of raising reports it to its observer and logs
its traceback, and is counted the same, marked ``(contained)``), every alert and state document
it submitted is encoded (``encode``), and the store is read back (``bad_state``). After a crash
or a bad state the store and engine are rebuilt from the venue's context, and every
:data:`RESET_EVERY` frames anyway, so that one broken state is counted once and the run keeps
attacking a store that holds positions.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from connectors.errors import VenueDataError
from connectors.events import Event
from connectors.venues import FrameParser, frame_parser
from monitor.engine import Engine
from monitor.store import AccountKey, Store
from rules.alert_config import AlertConfig
from rules.alerts import Alert, StateDocument

from .checks import bad_state, violations
from .mutate import mutant
from .targets import T0, TARGETS, Target

RESET_EVERY = 2_000
SEED = 11
_ROOT = Path(__file__).resolve().parents[2]
_SAMPLE_BYTES = 240


@dataclass(slots=True)
class Finding:
    """One kind of fault: how often, and the first frame that showed it."""

    count: int = 0
    frame_no: int = -1
    frame: bytes = b""

    def add(self, n: int, frame: bytes) -> None:
        if not self.count:
            self.frame_no, self.frame = n, frame
        self.count += 1


@dataclass(slots=True)
class Report:
    venue: str
    seed: int
    frames: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    crashes: dict[tuple[str, str], Finding] = field(default_factory=dict)
    """(stage, site) → finding; stage ``parse``, ``store``, ``engine``, ``rules``, ``encode``,
    ``read``."""
    bad_states: dict[str, Finding] = field(default_factory=dict)
    invalid: dict[str, Finding] = field(default_factory=dict)
    slowest_s: float = 0.0
    slowest_no: int = -1

    def crash_count(self, *stages: str) -> int:
        return sum(f.count for (stage, _), f in self.crashes.items() if stage in stages)

    def sites(self, *stages: str) -> set[str]:
        return {site for (stage, site) in self.crashes if stage in stages}

    def invalid_count(self) -> int:
        return sum(f.count for f in self.invalid.values())

    def bad_state_count(self) -> int:
        return sum(f.count for f in self.bad_states.values())


class _Sink:
    """The engine's sink: keeps what it is handed until the harness encodes it."""

    name = "fuzz"

    def __init__(self) -> None:
        self.docs: list[Alert | StateDocument] = []

    def submit(self, alert: Alert) -> None:
        self.docs.append(alert)

    def submit_state(self, state: StateDocument) -> None:
        self.docs.append(state)

    async def run(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def pending(self) -> int:
        return 0


class _Observer:
    """The engine's observer: timings ignored; what it reports rejected kept. An engine that
    contains a bug (logs it, counts it as ``frame_rejected(venue, "apply_error")``, goes on)
    is thereby still seen crashing here."""

    def __init__(self) -> None:
        self.rejected: list[str] = []

    def tick_to_alert(self, seconds: float) -> None:
        return None

    def recompute(self, seconds: float) -> None:
        return None

    def alert(self, kind: str, level: int | str) -> None:
        return None

    def frame_rejected(self, venue: str, reason: str) -> None:
        self.rejected.append(reason)


class _Tracebacks(logging.Handler):
    """The exceptions ``monitor`` logs at ERROR (a contained bug's first traceback of its kind:
    the rig is rebuilt after each, so each is the first of its kind there)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.caught: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.caught.append(record.exc_info[1])


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _config(key: AccountKey) -> AlertConfig:
    return AlertConfig()


class _Rig:
    """A store and engine as the daemon builds them, holding the venue's context."""

    def __init__(self, target: Target, clock: _Clock) -> None:
        self.store = Store()
        self.sink = _Sink()
        self.observer = _Observer()
        self.engine = Engine(self.store, _config, [self.sink], clock, observer=self.observer)
        self.engine.watch(target.venue, target.account, clock.now)
        self.engine.handle(target.context(), clock.now)
        self.sink.docs.clear()
        self.observer.rejected.clear()


def _site(exc: BaseException) -> tuple[str, str]:
    """(stage, site) of an exception: the innermost frame in this repository's packages."""
    stage, where = "unknown", "?"
    for fr in traceback.extract_tb(exc.__traceback__):
        path = Path(fr.filename).resolve()
        try:
            rel = path.relative_to(_ROOT).as_posix()
        except ValueError:
            continue
        top = rel.split("/")[0]
        if top == "monitor":
            stage = rel.split("/")[1] if rel.count("/") > 1 else "monitor"
        elif top in ("rules", "connectors"):
            stage = top
        else:
            continue
        where = f"{rel}:{fr.name}"
    return stage, f"{where}: {type(exc).__name__}"


def _add(table: dict[str, Finding], key: str, n: int, frame: bytes) -> None:
    table.setdefault(key, Finding()).add(n, frame)


def run(target: Target, frames: int, seed: int = SEED, start: int = 0) -> Report:
    """Frames ``start`` … ``start + frames - 1`` of ``target``'s run seeded ``seed``.

    Warnings are errors here, as in the test suite (``filterwarnings = error``): a numpy
    overflow in the store is a site to fix, counted like a crash, in both ``make fuzz`` and the
    slice."""
    logger = logging.getLogger("monitor")
    handler = _Tracebacks()
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return _run(target, frames, seed, start, handler)
    finally:
        logger.removeHandler(handler)


def _run(target: Target, frames: int, seed: int, start: int, logged: _Tracebacks) -> Report:
    parse: FrameParser = frame_parser(target.venue)
    samples = target.samples()
    report = Report(target.venue, seed)
    clock = _Clock()
    rig = _Rig(target, clock)
    perf = time.perf_counter
    for n in range(start, start + frames):
        frame = mutant(seed, target.venue, n, samples)
        clock.now = T0 + n
        if n % RESET_EVERY == 0 and n != start:
            rig = _Rig(target, clock)
        report.frames += 1
        began = perf()
        try:
            events = parse(frame)
        except VenueDataError as exc:
            report.rejected[exc.reason] += 1
            events = []
        except Exception as exc:  # noqa: BLE001 - a parser crash is what the harness counts
            report.crashes.setdefault(("parse", _site(exc)[1]), Finding()).add(n, frame)
            continue
        if events:
            report.accepted += 1
            for ev in events:
                for rule in violations(ev):
                    _add(report.invalid, rule, n, frame)
            logged.caught.clear()
            ok = _downstream(rig, events, clock.now, report, n=n, frame=frame)
            if not _contained(rig, logged, report, n=n, frame=frame) or not ok:
                rig = _Rig(target, clock)
        spent = perf() - began
        if spent > report.slowest_s:
            report.slowest_s, report.slowest_no = spent, n
    return report


def _downstream(
    rig: _Rig, events: Sequence[Event], now: int, report: Report, *, n: int, frame: bytes
) -> bool:
    """Engine, encode, read back; ``False`` when the rig must be rebuilt."""
    stage = "engine"
    try:
        rig.engine.handle(events, now)
        stage = "encode"
        for doc in rig.sink.docs:
            doc.to_json()
        rig.sink.docs.clear()
        stage = "read"
        wrong = bad_state(rig.store)
    except Exception as exc:  # noqa: BLE001 - any crash downstream is a finding, by site
        where, site = _site(exc)
        report.crashes.setdefault((where if stage == "engine" else stage, site), Finding()).add(
            n, frame
        )
        return False
    if wrong is not None:
        _add(report.bad_states, wrong, n, frame)
        return False
    return True


def _contained(rig: _Rig, logged: _Tracebacks, report: Report, *, n: int, frame: bytes) -> bool:
    """Count what the engine contained instead of raising; ``False`` when it did."""
    reasons = [r for r in rig.observer.rejected if r.endswith("_error")]
    rig.observer.rejected.clear()
    if not reasons:
        return True
    if logged.caught:
        for exc in logged.caught:
            stage, site = _site(exc)
            report.crashes.setdefault((stage, f"{site} (contained)"), Finding()).add(n, frame)
    else:
        for reason in reasons:
            report.crashes.setdefault(("engine", f"contained {reason}"), Finding()).add(n, frame)
    return False


# --- the command line ---------------------------------------------------------------------------


def _sample(frame: bytes) -> str:
    text = repr(frame[:_SAMPLE_BYTES])
    return text + (f" …({len(frame)} bytes)" if len(frame) > _SAMPLE_BYTES else "")


def _findings(title: str, table: Iterable[tuple[str, Finding]]) -> list[str]:
    rows = sorted(table, key=lambda kv: -kv[1].count)
    lines = [f"  {title}: {sum(f.count for _, f in rows)}"]
    for key, f in rows:
        lines.append(f"    {f.count:>8}  {key}")
        lines.append(f"              frame #{f.frame_no}: {_sample(f.frame)}")
    return lines


def render(report: Report, seconds: float) -> str:
    crashes = [(f"[{stage}] {site}", f) for (stage, site), f in report.crashes.items()]
    parse_crashes = report.crash_count("parse")
    rate = report.frames / seconds if seconds else 0.0
    lines = [
        f"{report.venue}: {report.frames:,} frames (seed {report.seed}) in {seconds:.1f} s"
        f" ({rate:,.0f}/s): {report.accepted:,} gave events, {sum(report.rejected.values()):,}"
        " rejected, the rest none (acks, ignored events)",
        "  rejected by reason: "
        + ", ".join(f"{r} {c:,}" for r, c in report.rejected.most_common()),
        f"  parser crashes: {parse_crashes}",
        *_findings("crashes (parse and downstream, by stage and site)", crashes),
        *_findings("bad-state frames", report.bad_states.items()),
        *_findings("accepted-but-invalid items", report.invalid.items()),
    ]
    if report.slowest_no >= 0:
        frame = mutant(
            report.seed, report.venue, report.slowest_no, TARGETS[report.venue].samples()
        )
        lines.append(
            f"  slowest frame: {report.slowest_s * 1e6:,.0f} µs, frame #{report.slowest_no}:"
        )
        lines.append(f"              {_sample(frame)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="frames per venue")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--venues", default=",".join(TARGETS), help="comma-separated venue keys")
    args = ap.parse_args(argv)
    failed = False
    for venue in args.venues.split(","):
        began = time.perf_counter()
        report = run(TARGETS[venue], args.frames, args.seed)
        print(render(report, time.perf_counter() - began), flush=True)
        failed |= bool(report.crashes or report.bad_states or report.invalid)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The demo's terminal output: alert lines as they happen plus a compact live view of accounts.

On a terminal the view is a small block redrawn in place every second below the alert lines
(alerts scroll up above it). Anywhere else (a pipe, CI, a log file) alerts are printed as lines
and a one-line status every five seconds, with no escape codes.

It is a :class:`monitor.sinks.base.Sink` (it receives every alert) whose ``run`` task also does
the periodic redraw; account figures are read from the store at draw time, so the view shows the
live numbers, not the last alert's.
"""

from __future__ import annotations

import asyncio
import collections
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from monitor.sinks.console import format_alert
from rules.alert_doc import Alert, Level, StateDocument

TTY_REDRAW_S = 1.0
PLAIN_STATUS_S = 5.0


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One account's live figures as the view shows them (NaN/None: unknown)."""

    equity: float
    maintenance_margin: float
    margin_ratio: float
    health: float
    liq_distance_down: float | None = None


@dataclass(frozen=True, slots=True)
class ViewSource:
    """Where the view reads live state: account rows by key, feed states, the HTTP address."""

    accounts: Sequence[tuple[str, str]]
    row: Callable[[tuple[str, str]], AccountRow | None]
    feeds: Callable[[], Mapping[str, str]]
    http: str


_COLOURS = {
    Level.OK: "\x1b[32m",
    Level.WARNING: "\x1b[33m",
    Level.DANGER: "\x1b[35m",
    Level.CRITICAL: "\x1b[31m",
    Level.LIQUIDATABLE: "\x1b[1;97;41m",
}
_RESET = "\x1b[0m"


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 100:.1f}%"


def _num(x: float | None, fmt: str) -> str:
    if x is None or math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf"
    return format(x, fmt)


class DemoView:
    """Alert lines + live account block. ``name`` is ``console`` (it replaces that sink)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = sys.stdout if stream is None else stream
        self._tty = self._out.isatty() if tty is None else tty
        self._clock = clock
        self._started = clock()
        self._queue: collections.deque[Alert] = collections.deque()
        self._wake = asyncio.Event()
        self._levels: dict[tuple[str, str], Level] = {}
        self._source: ViewSource | None = None
        self._block_lines = 0
        self.alerts_seen = 0

    @property
    def name(self) -> str:
        return "console"

    def attach(self, source: ViewSource) -> None:
        self._source = source
        for key in source.accounts:
            self._levels.setdefault(key, Level.OK)

    def submit(self, alert: Alert) -> None:
        self._queue.append(alert)
        if alert.kind == "margin_level":
            self._levels[(alert.venue, alert.account)] = alert.level
        self._wake.set()

    def submit_state(self, state: StateDocument) -> None:
        self._levels[(state.venue, state.account)] = state.level

    def pending(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        period = TTY_REDRAW_S if self._tty else PLAIN_STATUS_S
        next_status = self._clock() + period
        while True:
            timeout = max(0.0, next_status - self._clock())
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            due = self._clock() >= next_status
            if due:
                next_status = self._clock() + period
            self._draw(status=due or self._tty)

    async def close(self) -> None:
        self._draw(status=True)
        if self._tty:
            self._block_lines = 0  # leave the last view on screen

    # --- drawing -----------------------------------------------------------------------------

    def _draw(self, *, status: bool) -> None:
        out: list[str] = []
        if self._tty and self._block_lines:
            # Cursor to the start of the block, erase to the end of the screen.
            out.append(f"\x1b[{self._block_lines}F\x1b[J")
            self._block_lines = 0
        while self._queue:
            out.append(format_alert(self._queue.popleft(), colour=self._tty) + "\n")
            self.alerts_seen += 1
        if self._tty:
            block = self.block()
            self._block_lines = len(block)
            out.extend(line + "\n" for line in block)
        elif status:
            out.append(self.status_line() + "\n")
        if out:
            self._out.write("".join(out))
            self._out.flush()

    def _elapsed(self) -> str:
        s = int(self._clock() - self._started)
        return f"{s // 60:02d}:{s % 60:02d}"

    def _feeds_summary(self) -> str:
        if self._source is None:
            return "starting"
        feeds = self._source.feeds()
        ok = sum(1 for v in feeds.values() if v == "ok")
        bad = ", ".join(f"{k} {v}" for k, v in feeds.items() if v != "ok")
        return f"feeds {ok}/{len(feeds)} ok" + (f" ({bad})" if bad else "")

    def status_line(self) -> str:
        """``[00:23] feeds 5/5 ok | alice critical 1.14 | bob ok 2.31 | ...``."""
        parts = [f"[{self._elapsed()}] {self._feeds_summary()}"]
        if self._source is not None:
            for key in self._source.accounts:
                row = self._source.row(key)
                health = None if row is None else row.health
                parts.append(f"{key[1]} {self._levels[key].label} {_num(health, '.2f')}")
        return " | ".join(parts)

    def block(self) -> list[str]:
        src = self._source
        head = f"── marginwatch demo  {self._elapsed()}  {self._feeds_summary()}"
        if src is None:
            return [head]
        head += f"  http://{src.http}/metrics"
        lines = [
            head,
            f"   {'account':<16}{'level':<14}{'health':>8}{'ratio':>9}{'to liq':>9}"
            f"{'equity':>14}{'maint. margin':>15}",
        ]
        for key in src.accounts:
            risk = src.row(key)
            level = self._levels[key]
            tag = f"{level.name:<14}"
            if self._tty:
                tag = f"{_COLOURS[level]}{level.name}{_RESET}{' ' * (14 - len(level.name))}"
            who = f"{key[1]}@{key[0]}"
            if risk is None:
                lines.append(f"   {who:<16}{tag}{'waiting for snapshot':>24}")
                continue
            down = risk.liq_distance_down
            lines.append(
                f"   {who:<16}{tag}{_num(risk.health, '.2f'):>8}{_pct(risk.margin_ratio):>9}"
                f"{'-' if down is None else '-' + _pct(down):>9}"
                f"{_num(risk.equity, ',.0f'):>14}{_num(risk.maintenance_margin, ',.0f'):>15}"
            )
        return lines

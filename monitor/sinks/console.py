"""Console sink: one human-readable line per alert, for a person watching a terminal.

    2026-11-27T10:01:02.345Z CRITICAL     alice@sim        health 1.14  ratio 87.7%  -4.1% to liq
    (... one line; continues)  (was danger)

Colour (by level) only when the stream is a terminal, or when told to. Account state documents
are not printed here (the demo's live view shows them).

A write error (a closed pipe, a full disk behind a redirect) keeps the alerts queued: it is
counted, reported as ``delivery_failing`` on the other sinks and retried with a backoff; it
never stops the daemon. An alert whose values cannot be printed (venue garbage) is printed
repaired (:mod:`monitor.sinks.encode`), alone: the lines around it are unaffected.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import sys
from collections.abc import Callable
from typing import Literal, TextIO

from connectors.backoff import Backoff
from monitor.sinks.encode import repaired_json
from monitor.sinks.local import LocalSink
from monitor.sinks.observer import NULL_OBSERVER, DeliveryObserver
from rules.alert_doc import Alert, Figures, Level

# Kinds other than a margin-level change get a short tag in the level column.
_KIND_TAGS = {
    "liquidation_distance": "LIQ-DISTANCE",
    "feed_stale": "FEED-STALE",
    "feed_recovered": "FEED-OK",
    "venue_margin_call": "MARGIN-CALL",
    "model_drift": "MODEL-DRIFT",
    "position_liquidated": "LIQUIDATED",
    "spool_full": "SPOOL-FULL",
    "delivery_failing": "DELIVERY",
}
_LEVEL_COLOURS = {
    Level.OK: "\x1b[32m",  # green
    Level.WARNING: "\x1b[33m",  # yellow
    Level.DANGER: "\x1b[35m",  # magenta
    Level.CRITICAL: "\x1b[31m",  # red
    Level.LIQUIDATABLE: "\x1b[1;97;41m",  # bold white on red
}
_RESET = "\x1b[0m"
log = logging.getLogger(__name__)


def format_time(ms: int) -> str:
    """``2026-11-27T10:01:02.345Z`` (UTC, millisecond precision); a time no calendar date can
    show (a venue's garbage, years past 9999) is printed as the number, ``t=<ms>ms``."""
    try:
        t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    except (OverflowError, ValueError, OSError):
        return f"t={ms}ms"
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def format_figures(f: Figures) -> str:
    """``health 1.14  ratio 87.7%  -4.1% to liq`` (parts that are unknown are left out)."""
    parts = ["health inf" if f.health is None else f"health {f.health:.2f}"]
    if f.margin_ratio is not None and math.isfinite(f.margin_ratio):
        parts.append(f"ratio {f.margin_ratio * 100:.1f}%")
    down, up = f.liq_distance_down, f.liq_distance_up
    if down is not None and (up is None or down <= up):
        parts.append(f"-{down * 100:.1f}% to liq")
    elif up is not None:
        parts.append(f"+{up * 100:.1f}% to liq")
    return "  ".join(parts)


def format_alert(alert: Alert, *, colour: bool = False) -> str:
    """The one line the console prints for ``alert`` (no newline)."""
    ms = alert.emit_time_ms if alert.emit_time_ms is not None else alert.receive_time_ms
    if alert.kind == "margin_level":
        tag = alert.level.name
        tail = f"(was {alert.previous_level.label})"
    else:
        tag = _KIND_TAGS.get(alert.kind, alert.kind.upper())
        tail = _short_message(alert)
    who = f"{alert.account}@{alert.venue}"
    body = format_figures(alert.figures) if alert.figures is not None else ""
    text_tag = f"{tag:<12}"
    if colour:
        text_tag = f"{_LEVEL_COLOURS[alert.level]}{tag}{_RESET}{' ' * max(0, 12 - len(tag))}"
    middle = f"{body}  {tail}" if body else tail
    return f"{format_time(ms)} {text_tag} {who:<16} {middle}"


def _short_message(alert: Alert) -> str:
    """The alert's message without what the line already shows (who, and the figures)."""
    text = alert.message.removeprefix(f"{alert.account}@{alert.venue} ")
    if alert.figures is not None:
        text = text.split(": ", 1)[0]
    return text


class ConsoleSink(LocalSink):
    """Prints alerts line by line; ``submit`` only enqueues, ``run`` writes."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        color: Literal["auto", "always", "never"] = "auto",
        observer: DeliveryObserver = NULL_OBSERVER,
        on_delivery_failing: Callable[[str, str], None] | None = None,
        on_delivery_resumed: Callable[[str], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._stream = sys.stdout if stream is None else stream
        super().__init__(
            log,
            observer=observer,
            on_delivery_failing=on_delivery_failing,
            on_delivery_resumed=on_delivery_resumed,
            backoff=backoff,
        )
        if color == "auto":
            isatty = getattr(self._stream, "isatty", None)
            self._colour = bool(isatty and isatty())
        else:
            self._colour = color == "always"

    @property
    def name(self) -> str:
        return "console"

    async def close(self) -> None:
        self._write()

    def _write(self) -> int:
        # Synchronous on purpose: a batch is written without yielding, so run() and close()
        # never interleave lines. A line is dropped from the queue only after it was written.
        written = repaired = 0
        while self._queue:
            line, fixed = self._line(self._queue[0])
            self._stream.write(line + "\n")
            self._queue.popleft()
            written += 1
            repaired += fixed
        self._stream.flush()
        if written:
            self._observer.delivered(self.name, written)
        self._count_repaired(repaired)
        return written

    def _line(self, alert: Alert) -> tuple[str, bool]:
        """The alert's line, and whether it had to be repaired first (one alert at a time, so
        one that cannot be printed never holds up the others)."""
        try:
            line = format_alert(alert, colour=self._colour)
            line.encode()  # a lone surrogate (venue garbage) would fail the stream's write
        except Exception:  # noqa: BLE001 - whatever the values are, the alert is repaired
            fixed, _ = repaired_json(alert, self.name)
            return format_alert(fixed, colour=self._colour), True
        return line, False

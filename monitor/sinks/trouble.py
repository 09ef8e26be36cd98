"""Delivery trouble as alerts: a failing or full sink is reported on every *other* sink.

A failing Kafka must not hide its own failure, so its ``delivery_failing`` and ``spool_full``
alerts go to the sinks that still work, at most once per sink and reason per
:data:`DELIVERY_ALERT_INTERVAL_MS`. Each outage keeps its start time (hence its own alert id)
until the sink delivers again. The sinks call these hooks; the daemon owns one instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from monitor.sinks.base import Sink
from rules.alert_doc import Alert
from rules.alert_kinds import delivery_failing_alert, spool_full_alert

log = logging.getLogger(__name__)

DELIVERY_ALERT_INTERVAL_MS = 60_000

AlertCounter = Callable[[str, int], None]


class DeliveryTrouble:
    def __init__(
        self,
        clock: Callable[[], int],
        *,
        count_alert: AlertCounter,
        spool_limit_bytes: int = 0,
    ) -> None:
        self._clock = clock
        self._count_alert = count_alert
        self._spool_limit_bytes = spool_limit_bytes
        self._sinks: Sequence[Sink] = ()
        self._alerted: dict[tuple[str, ...], int] = {}
        self._failing_since: dict[str, int] = {}
        self._failures: dict[str, int] = {}

    def attach(self, sinks: Sequence[Sink]) -> None:
        """The sinks to report on and to; built after this object, whose hooks they take."""
        self._sinks = sinks

    def on_spool_full(self, sink: str, depth: int) -> None:
        now = self._clock()
        if not self._due(("spool_full", sink), now):
            return
        used, limit = self._spool_usage(sink)
        alert = spool_full_alert(
            sink=sink, spool_bytes=used, limit_bytes=limit, pending=depth,
            full_since_ms=now, now_ms=now,
        )  # fmt: skip
        self._submit_elsewhere(sink, alert)

    def on_delivery_failing(self, sink: str, reason: str) -> None:
        now = self._clock()
        since = self._failing_since.setdefault(sink, now)
        self._failures[sink] = self._failures.get(sink, 0) + 1
        if not self._due(("delivery_failing", sink, reason), now):
            return
        pending = next((s.pending() for s in self._sinks if s.name == sink), 0)
        alert = delivery_failing_alert(
            sink=sink, reason=reason, failing_since_ms=since,
            attempts=self._failures[sink], pending=pending, now_ms=now,
        )  # fmt: skip
        self._submit_elsewhere(sink, alert)

    def on_delivery_resumed(self, sink: str) -> None:
        """``sink`` delivers again: its outage is over, so the next one is a new one (its own
        start time, hence its own alert id)."""
        since = self._failing_since.pop(sink, None)
        failures = self._failures.pop(sink, 0)
        if since is not None:
            log.info(
                "sink %s delivering again after %.1f s (%d failures reported)",
                sink,
                (self._clock() - since) / 1000,
                failures,
            )

    def _spool_usage(self, name: str) -> tuple[int, int]:
        """(bytes on disk, byte bound) of a sink's spool, from the sink itself when it can say."""
        for s in self._sinks:
            usage = getattr(s, "spool_usage", None)  # only spooling sinks have one
            if s.name == name and callable(usage):
                used, limit = usage()
                return int(used), int(limit)
        return self._spool_limit_bytes, self._spool_limit_bytes

    def _due(self, key: tuple[str, ...], now: int) -> bool:
        last = self._alerted.get(key)
        if last is not None and now - last < DELIVERY_ALERT_INTERVAL_MS:
            return False
        self._alerted[key] = now
        return True

    def _submit_elsewhere(self, failing: str, alert: Alert) -> None:
        stamped = alert.with_emit_time(self._clock())
        for s in self._sinks:
            if s.name != failing:
                s.submit(stamped)
        self._count_alert(stamped.kind, int(stamped.level))

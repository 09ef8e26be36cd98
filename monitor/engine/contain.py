"""The engine's backstop: a bug while applying one event or evaluating one account is counted,
logged once per kind with its traceback, and contained, so every other event and account goes on.

Bad venue data is refused at the edge (the typed wire schemas); what reaches here is a bug, and a
bug must be visible (the first traceback of each kind at ERROR, every occurrence counted in
``marginwatch_venue_frames_rejected_total{reason="apply_error"|"evaluate_error"}``) without
taking the daemon, and with it every other account's alerts, down.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class RejectCounter(Protocol):
    def frame_rejected(self, venue: str, reason: str) -> None: ...


class Containment:
    def __init__(self) -> None:
        self.count = 0
        # (stage, subject kind, exception type) already logged with its traceback.
        self._logged: set[tuple[str, str, str]] = set()

    def contain(
        self, stage: str, venue: str, subject: str, exc: Exception, counter: RejectCounter
    ) -> None:
        self.count += 1
        counter.frame_rejected(venue, stage)
        kind = (stage, subject, type(exc).__name__)
        if kind not in self._logged:
            self._logged.add(kind)
            log.error(
                "engine: %s on a %s (%s); contained, later ones of this kind only counted",
                stage,
                subject,
                kind[2],
                exc_info=exc,
            )

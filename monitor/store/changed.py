"""What one :meth:`monitor.store.Store.apply` did: :class:`Changed`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from connectors.events import MarkPrice
from monitor.store.book import I64

EMPTY: I64 = np.zeros(0, dtype=np.int64)


class Changed(NamedTuple):
    """What an applied event changed. A named tuple: one is built per event, and a frozen
    dataclass costs several times more to build.

    ``accounts``: the account indices it touched; ``candidates``: the subset the alert policy
    must look at (both sorted ascending, without repeats). ``flips``: accounts whose
    completeness (all inputs known) changed, in order, once each. ``rest``: marks of the event
    not applied yet — a batch of marks is applied up to the first repeat of a held instrument,
    so every mark that moves an account is screened (a dip that recovers inside one batch still
    alerts); the caller applies ``rest`` (a :class:`MarkTail`) next, until it is ``None``.
    ``event_ms``: for a batch of marks, the event time of the latest applied mark of a held
    instrument (of the latest applied mark if none was held) — what an alert it causes
    carries; ``-1`` for any other event.
    """

    accounts: I64
    candidates: I64
    flips: tuple[int, ...] = ()
    rest: MarkTail | None = None
    event_ms: int = -1


class MarkTail(NamedTuple):
    """The marks ``marks[start:]`` of a batch not applied yet (the batch itself, not a copy:
    a long batch split at many repeats must not be copied once per part)."""

    marks: Sequence[MarkPrice]
    start: int

    def remaining(self) -> Sequence[MarkPrice]:
        return self.marks[self.start :]


NO_CHANGE = Changed(EMPTY, EMPTY)

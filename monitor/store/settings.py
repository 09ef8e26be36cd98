"""The engine's settings for the store's screen, applied through :meth:`monitor.store.Store.apply`.

They are not venue events (hence not in :mod:`connectors.events`): the alert policy's state
that the store screens ticks with. They change no figure, so applying one returns no candidate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QuietBand:
    """Account ``index`` needs the alert policy only once its health leaves ``(lo, hi)``."""

    index: int
    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class DistanceThreshold:
    """Account ``index``'s liquidation-distance alert threshold (``None``: no distance alerts)."""

    index: int
    threshold: float | None


@dataclass(frozen=True, slots=True)
class KnownAccount:
    """Make the account known (an empty account on first sight): e.g. alert state restored
    from its last state document before any of its events. ``Changed.accounts`` names it."""

    venue: str
    account: str


StoreSetting = QuietBand | DistanceThreshold | KnownAccount

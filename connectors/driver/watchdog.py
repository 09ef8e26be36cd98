"""Staleness and connection age, sampled off the hot path.

The reader only counts frames (an int += n per batch); this task samples the counter a few
times per ``stale_after_s``, so the hot path calls no clock for liveness.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from connectors.driver.control import Restart
from connectors.driver.status import StatusReporter
from connectors.events import FeedState
from connectors.protocol import Feed

_LOG = logging.getLogger(__name__)

SILENT_RECONNECT_FACTOR = 4.0  # stale for this many stale_after_s → reconnect and resubscribe


@dataclass(slots=True)
class Liveness:
    """Per connection, shared by the reader (writes ``frames``, clears ``stale`` when data
    returns) and the watchdog (sets ``stale``)."""

    frames: int = 0
    stale: bool = False


async def watch(
    feed: Feed,
    live: Liveness,
    status: StatusReporter,
    clock: Callable[[], float],
    connected_at: float,
) -> None:
    """Report ``stale`` after ``stale_after_s`` without a frame; reconnect after a long silence
    and at ``max_connection_age_s`` (both planned, so immediate)."""
    stale_after = feed.times.stale_after_s
    max_age = feed.times.max_connection_age_s
    interval = max(0.005, min(stale_after / 4.0, 1.0))
    if max_age is not None:
        interval = min(interval, max(0.005, max_age / 4.0))
    last_frames = live.frames
    last_change = clock()
    while True:
        await asyncio.sleep(interval)
        now = clock()
        if live.frames != last_frames:
            last_frames = live.frames
            last_change = now
        elif not live.stale and now - last_change >= stale_after:
            live.stale = True
            status.report(FeedState.STALE)
            _LOG.warning("feed %s: stale (no frame for %.1f s)", feed.name, now - last_change)
        elif live.stale and now - last_change >= stale_after * SILENT_RECONNECT_FACTOR:
            raise Restart("silent", immediate=True)
        if max_age is not None and now - connected_at >= max_age:
            raise Restart("max_age", immediate=True)

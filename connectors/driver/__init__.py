"""The one connection driver every venue runs through: :func:`run_feed`.

A venue plugs in a :class:`~connectors.protocol.Feed`; the driver does the rest, split by job:

* :mod:`.session` — connect, subscribe, reconnect; which failures are retryable and which are
  fatal; backoff between attempts; the connection's tasks under one ``TaskGroup``.
* :mod:`.reader` — the hot path: receive a batch of frames, parse, deliver or hold.
* :mod:`.ready` — the one place that reads websockets' internals (take frames already received
  without awaiting), with the public API as fallback.
* :mod:`.resync` — snapshot-then-stream: hold pushes, snapshot, deliver the newer ones; the
  gate that bounds forced resyncs.
* :mod:`.watchdog` — staleness and connection age; :mod:`.status` — ``FeedStatus`` events.
"""

from __future__ import annotations

from connectors.driver.reader import MAX_BATCH_FRAMES
from connectors.driver.resync import FORCED_RESYNC_GAP_S, MAX_BUFFERED, ResyncGate
from connectors.driver.session import MAX_FRAME_BYTES, run_feed
from connectors.driver.status import Deliver
from connectors.driver.watchdog import SILENT_RECONNECT_FACTOR
from connectors.protocol import DriverObserver

__all__ = [
    "FORCED_RESYNC_GAP_S",
    "MAX_BATCH_FRAMES",
    "MAX_BUFFERED",
    "MAX_FRAME_BYTES",
    "SILENT_RECONNECT_FACTOR",
    "Deliver",
    "DriverObserver",
    "ResyncGate",
    "run_feed",
]

"""The one observer that observes nothing, for every observer protocol in the project.

The driver (:class:`connectors.protocol.DriverObserver`), the engine
(:class:`monitor.engine.core.EngineObserver`) and the sinks
(:class:`monitor.sinks.observer.DeliveryObserver`) each report flow to an observer that the
metrics layer implements; code run without metrics (tests, ``calc``, benchmarks) gets this one. It
lives at the bottom layer so every layer can default to it, and it answers every protocol's
methods, so a new protocol method is added here once.
"""

from __future__ import annotations


class NullObserver:
    # connectors.protocol.DriverObserver
    def frames_received(self, venue: str, n: int) -> None:
        return None

    def frame_rejected(self, venue: str, reason: str) -> None:
        return None

    def reconnect(self, feed: str, reason: str) -> None:
        return None

    # monitor.engine.core.EngineObserver
    def tick_to_alert(self, seconds: float) -> None:
        return None

    def recompute(self, seconds: float) -> None:
        return None

    def alert(self, kind: str, level: int | str) -> None:
        return None

    # monitor.sinks.observer.DeliveryObserver
    def delivered(self, sink: str, n: int) -> None:
        return None

    def failed(self, sink: str, n: int, reason: str) -> None:
        return None

    def spool_depth(self, sink: str, depth: int) -> None:
        return None

    def repaired(self, sink: str, n: int) -> None:
        return None


NULL_OBSERVER = NullObserver()

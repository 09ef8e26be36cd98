"""What a sink reports about delivery. The metrics layer implements it; tests use a recorder.

``sink`` is the sink's bounded name (``kafka``, ``mqtt``), ``reason`` a bounded label (an error
class name such as ``KafkaConnectionError``), never a message or a payload.
"""

from __future__ import annotations

from typing import Protocol

from connectors.observers import NullObserver


class DeliveryObserver(Protocol):
    def delivered(self, sink: str, n: int) -> None:
        """``n`` alerts were acknowledged by the broker."""
        ...

    def failed(self, sink: str, n: int, reason: str) -> None:
        """A delivery attempt of ``n`` alerts failed; they stay queued or spooled."""
        ...

    def spool_depth(self, sink: str, depth: int) -> None:
        """The sink's spool now holds ``depth`` alerts (disk plus in-memory overflow)."""
        ...

    def repaired(self, sink: str, n: int) -> None:
        """``n`` alerts did not encode as they were and went out repaired (see encode.py)."""
        ...


NULL_OBSERVER: DeliveryObserver = NullObserver()

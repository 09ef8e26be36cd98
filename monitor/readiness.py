"""Which configured feeds are connected and fresh: the answer behind ``/readyz``.

The driver reports a feed's health as :class:`connectors.events.FeedStatus` events in the same
stream as its data; the daemon passes every delivered batch through :meth:`FeedHealth.observe`
before the engine sees it. A feed is ready after its first ``connected``/``resynced`` status and
until a ``stale`` or ``disconnected`` one. Freshness is the driver's call: it knows what proves
a connection alive on each venue (a quiet private stream still answers pings), and it says
``stale`` once nothing has for the feed's ``stale_after_s``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from connectors.events import Event, FeedState, FeedStatus

_READY_STATES = frozenset({FeedState.CONNECTED, FeedState.RESYNCED})


@dataclass(slots=True)
class _Feed:
    state: str = "connecting"


class FeedHealth:
    """Per-feed readiness, keyed by the feed's name (``sim/market``, ``sim/private/alice``)."""

    def __init__(self) -> None:
        self._feeds: dict[str, _Feed] = {}

    def register(self, feed: str) -> None:
        self._feeds.setdefault(feed, _Feed())

    def observe(self, feed: str, events: Iterable[Event]) -> None:
        """A batch arrived from ``feed``: note any status change in it."""
        entry = self._feeds.get(feed)
        if entry is None:
            return
        for ev in events:
            if type(ev) is FeedStatus:
                entry.state = "ok" if ev.state in _READY_STATES else ev.state.value

    def not_ready(self) -> Mapping[str, str]:
        """``{feed: reason}`` for every feed that is not connected and fresh; empty = ready."""
        return {name: e.state for name, e in self._feeds.items() if e.state != "ok"}

    def states(self) -> Mapping[str, str]:
        """Every feed's state label, for the demo's live view."""
        not_ready = self.not_ready()
        return {name: not_ready.get(name, "ok") for name in self._feeds}

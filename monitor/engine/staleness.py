"""Feed staleness per account: the engine's collaborator that says when the monitor is blind.

Three clocks per account, checked by :func:`rules.staleness.check_staleness` on a deadline heap:
the private stream (no account event for ``account_stale_ms``), the marks of the instruments it
holds, and missing inputs (an account incomplete for ``inputs_missing_ms``). Feeds the driver
reports down (:class:`~connectors.events.FeedStatus`) count as stale at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from connectors.events import FeedState, FeedStatus
from monitor.store import Store
from rules.alerts import Alert, AlertConfig, Level
from rules.alerts import Figures as AlertFigures
from rules.staleness import (
    MARK,
    PRIVATE,
    FeedInputs,
    StalenessState,
    check_staleness,
    next_stale_deadline,
)


class StalenessWatch:
    """Staleness state and clocks of every registered account (index order)."""

    def __init__(
        self,
        store: Store,
        config_of: Callable[[int], AlertConfig],
        level_of: Callable[[int], Level],
        figures_of: Callable[[int], AlertFigures | None],
    ) -> None:
        self._store = store
        self._config_of = config_of
        self._level_of = level_of
        self._figures_of = figures_of
        self._states: list[StalenessState] = []
        self._watch_since: list[int] = []
        # (venue, account|None) -> feed name -> receive time it was reported down
        self._down: dict[tuple[str, str | None], dict[str, int]] = {}
        self._missing_since: dict[int, int] = {}  # incomplete accounts: since when (recv ms)
        self._complete_since: dict[int, int] = {}
        self._heap: list[tuple[int, int]] = []  # (deadline, account) staleness checks

    def register(self, i: int, now_ms: int, cfg: AlertConfig) -> None:
        """Account ``i`` (the next index) is watched from ``now_ms``."""
        self._states.append(StalenessState())
        self._watch_since.append(now_ms)
        heapq.heappush(self._heap, (now_ms + cfg.account_stale_ms + 1, i))

    def flipped(self, i: int, recv_ms: int, out: list[Alert]) -> None:
        """Account ``i``'s completeness changed: one turning incomplete starts its
        inputs-missing clock (a feed_stale after ``inputs_missing_ms``); one complete again is
        checked at once (feed_recovered)."""
        if self._store.complete(i):
            if self._missing_since.pop(i, None) is not None:
                self._complete_since[i] = recv_ms
                self.check(i, recv_ms, out)
        elif i not in self._missing_since:
            self._missing_since[i] = recv_ms
            due = recv_ms + self._config_of(i).inputs_missing_ms + 1
            heapq.heappush(self._heap, (due, i))

    def feed_status(self, ev: FeedStatus, now_ms: int, out: list[Alert]) -> None:
        """A feed went down or came back: every account it serves is checked now."""
        down = ev.state in (FeedState.STALE, FeedState.DISCONNECTED)
        name = PRIVATE if ev.account is not None else MARK
        names = self._down.setdefault((ev.venue, ev.account), {})
        if down:
            names.setdefault(name, now_ms)  # a repeated report keeps the outage's start
        else:
            names.pop(name, None)
        for i in range(len(self._states)):
            venue, account = self._store.key_of(i)
            if venue == ev.venue and (ev.account is None or ev.account == account):
                self.check(i, now_ms, out)

    def due(self, now_ms: int, out: list[Alert]) -> None:
        """Check every account whose staleness deadline has come."""
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            _, i = heapq.heappop(heap)
            self.check(i, now_ms, out)

    def check(self, i: int, now_ms: int, out: list[Alert]) -> None:
        cfg = self._config_of(i)
        inputs = self._inputs(i)
        state, alerts = check_staleness(
            self._states[i], inputs, cfg, now_ms, level=self._level_of(i),
            figures=self._figures_of(i),
        )  # fmt: skip
        self._states[i] = state
        out.extend(alerts)
        heapq.heappush(self._heap, (max(now_ms + 1, next_stale_deadline(inputs, cfg)), i))

    def _inputs(self, i: int) -> FeedInputs:
        store = self._store
        key = store.key_of(i)
        times = store.times(key)
        down = {**self._down.get((key[0], None), {}), **self._down.get((key[0], key[1]), {})}
        since = self._missing_since.get(i)
        return FeedInputs(
            venue=key[0],
            account=key[1],
            private_last_ms=times.last_event_recv_ms,
            mark_last_ms=store.mark_recv_times(key),
            watch_since_ms=self._watch_since[i],
            down=frozenset(down),
            down_since_ms=down,
            missing=() if since is None else tuple(store.missing_list(key)),
            missing_since_ms=since,
            complete_since_ms=self._complete_since.get(i),
        )

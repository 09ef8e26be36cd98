"""The engine: apply events to the store, run the alert policy on what moved, hand alerts to sinks.

Synchronous and single-threaded; the daemon wraps it in asyncio. Per batch of events:

1. ``store.apply`` each event; the store returns the *candidates* — accounts whose health left
   the quiet band the policy gave them, or whose liquidation distance may be under threshold.
2. For each candidate, build its :class:`~rules.alerts.AccountRisk` (liquidation figures only
   when the store's conservative screen cannot rule the threshold out, or a distance alert is
   live), run :func:`rules.alerts.evaluate`, store the new quiet band.
3. Relay facts the venue told us: a margin call, a liquidation fill, a venue-reported MM that
   disagrees with ours (model drift).
4. Stamp the emit time and ``submit`` every alert (and the account's state document) to every
   sink. ``submit`` only enqueues; an exception there is a bug and propagates — a lost alert is
   the worst failure here, so nothing on this path is caught and logged.

Containment: an exception while applying one event (``apply_error``) or evaluating one account
(``evaluate_error``) never leaves :meth:`Engine.handle`: it is counted with the rejected frames
(``marginwatch_venue_frames_rejected_total{reason=...}``), the first of its kind is logged with
its traceback as the bug it is, alerts already evaluated are still submitted, and every other
event and account goes on. Bad venue data is refused at the edge (the typed wire schemas);
this is the backstop for what the edge does not foresee.

``tick_timers(now_ms)`` re-evaluates accounts with a pending de-escalation whose cooldown may
have run out, and checks feed staleness (:mod:`rules.staleness`) on a deadline heap.

Candidates needing a liquidation distance (a root search, ~0.33 ms for a 20-leg account) are not
evaluated inline: they join a FIFO queue (one entry per account, evaluated with its latest
figures) worked off within a bounded budget at the end of each ``handle``, in ``tick_timers`` and
in ``drain_pending`` (the daemon calls it on the next loop turns while ``pending_work()``), so a
burst of near accounts never blocks the event loop for hundreds of ms. ``drain()`` empties it.

The engine orchestrates (``handle`` → ``store.apply`` → candidates → evaluate → submit); its
collaborators each keep one part of the state: :mod:`monitor.engine.queue` (the deferred
queue's bookkeeping), :mod:`monitor.engine.staleness` (feed staleness clocks),
:mod:`monitor.engine.relay` (margin calls, liquidations, model drift via
:mod:`monitor.engine.drift`) and :mod:`monitor.engine.publish` (state documents).
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol, cast

import numpy as np

from connectors.clock import wall_ms
from connectors.events import (
    AccountSnapshot,
    Event,
    FeedStatus,
    MarginCall,
    MarkPrice,
    PositionFill,
    RestBan,
)
from connectors.observers import NullObserver
from monitor.engine.contain import Containment
from monitor.engine.drift import DriftCheck
from monitor.engine.publish import STATE_REPUBLISH_MS, StatePublisher
from monitor.engine.queue import DEFERRED_BUDGET_S, DeferredQueue
from monitor.engine.relay import Relay
from monitor.engine.staleness import StalenessWatch
from monitor.sinks.base import Sink
from monitor.store import (
    NO_CHANGE,
    AccountKey,
    Changed,
    DistanceThreshold,
    KnownAccount,
    QuietBand,
    Store,
    StoreInput,
)
from rules.alerts import (
    AccountRisk,
    Alert,
    AlertConfig,
    AlertState,
    Level,
    StateDocument,
    deadline_ms,
    evaluate,
    figures_of,
    needs_tick,
    quiet_band,
    state_document,
)
from rules.alerts import Figures as AlertFigures

log = logging.getLogger(__name__)
# The receive time passed with the engine's own settings (QuietBand...): they were received
# from no one, and the store ignores it.
_SETTING = 0


class EngineObserver(Protocol):
    """Where the engine reports its timings (the metrics module implements it)."""

    def tick_to_alert(self, seconds: float) -> None: ...

    def recompute(self, seconds: float) -> None: ...

    def alert(self, kind: str, level: int | str) -> None: ...

    def frame_rejected(self, venue: str, reason: str) -> None:
        """An event the engine could not apply (``apply_error``) or an account it could not
        evaluate (``evaluate_error``): counted beside the driver's rejected frames."""
        ...


class Engine:
    """Store + alert policy + sinks for every watched account."""

    def __init__(
        self,
        store: Store,
        alert_config_for: Callable[[AccountKey], AlertConfig],
        sinks: Sequence[Sink],
        clock: Callable[[], int] = wall_ms,
        *,
        observer: EngineObserver | None = None,
        drift_rel_tol: float = 1e-6,
        drift_abs_tol: float = 1e-6,
        alert_liquidation_prices: bool = False,
        state_interval_ms: int = STATE_REPUBLISH_MS,
        deferred_budget_s: float | None = DEFERRED_BUDGET_S,
        deferred_limit: int | None = None,
    ) -> None:
        """``deferred_budget_s`` / ``deferred_limit``: time and count bounds on the deferred
        (liquidation-distance) evaluations run per call; ``None`` for no bound of that kind."""
        self.store = store
        self._config_for = alert_config_for
        self.sinks = list(sinks)
        self.clock = clock
        self.observer: EngineObserver = observer or NullObserver()
        # Per-position liquidation prices in an alert's top positions cost a root search per
        # position (milliseconds for a 20-leg account) on the alert path: off by default.
        self._alert_prices = alert_liquidation_prices
        self._configs: list[AlertConfig] = []
        self._states: list[AlertState] = []
        self._timers: list[tuple[int, int]] = []  # (deadline, account) de-escalation clocks
        self._staleness = StalenessWatch(store, self._config_of, self._level_of, self._figures)
        drift = DriftCheck(store, drift_rel_tol, drift_abs_tol)
        self._relay = Relay(store, drift, self._account_of, self._level_of, self._figures)
        self._publisher = StatePublisher(self.sinks, state_interval_ms)
        # Accounts awaiting an evaluation with their liquidation distance (module docstring).
        self._queue = DeferredQueue(deferred_budget_s, deferred_limit)
        self._bugs = Containment()

    # --- public ------------------------------------------------------------------------------

    def handle(self, events: Sequence[Event], recv_ms: int) -> list[Alert]:
        """Apply ``events`` (received at ``recv_ms``); return the alerts submitted.

        A :class:`~connectors.events.MarkRun` (a feed's batch of marks), or a run of
        consecutive mark prices, is applied as one batch: the store hands back the marks after
        a held instrument's repeat (``Changed.rest``), applied next, so each is screened.
        """
        started = time.perf_counter()
        out: list[Alert] = []
        k, n = 0, len(events)
        while k < n:
            ev = events[k]
            item: StoreInput = ev
            if type(ev) is MarkPrice and k + 1 < n and type(events[k + 1]) is MarkPrice:
                j = k + 2
                while j < n and type(events[j]) is MarkPrice:
                    j += 1
                item = cast(Sequence[MarkPrice], events[k:j])
                k = j
            else:
                k += 1
            submitted = len(out)
            try:
                self._apply(ev, item, recv_ms, out)
            except Exception as exc:  # noqa: BLE001 - one event's bug never stops the others
                self._contain("apply_error", ev, exc)
                if self._unsent(out, submitted):
                    # Alerts already evaluated for this event still leave: never lose an alert.
                    self._submit(out, submitted, recv_ms)
        if self._queue:
            self._run_queue(out, bounded=True)
        self.observer.recompute(time.perf_counter() - started)
        return out

    def _apply(self, ev: Event, item: StoreInput, recv_ms: int, out: list[Alert]) -> None:
        """One event (or a run of marks) through the store, then what it made candidates."""
        store = self.store
        changed = store.apply(item, recv_ms)
        while changed is not NO_CHANGE:  # (e.g. a feed's batch of idle marks)
            if changed.accounts.size or changed.flips:
                self._candidates(changed, ev, recv_ms, out)
            if changed.rest is None:
                break
            changed = store.apply(changed.rest, recv_ms)
        if type(ev) in _RELAYED:
            # The account's queued evaluation first: its alerts precede the relayed fact.
            self._flush_queued(ev, out)
            mark = len(out)
            self._relay_fact(ev, recv_ms, out)
            self._submit(out, mark, recv_ms)

    def _unsent(self, out: list[Alert], start: int) -> bool:
        """Whether alerts from ``start`` on were evaluated but not yet submitted (a bug struck
        between the two): every alert in ``out`` is submitted exactly once."""
        return any(a.emit_time_ms is None for a in out[start:])

    def _contain(self, stage: str, subject: object, exc: Exception) -> None:
        venue = getattr(subject, "venue", None)
        if venue is None and isinstance(subject, int):
            venue = self.store.key_of(subject)[0]
        self._bugs.contain(stage, venue or "unknown", type(subject).__name__, exc, self.observer)

    @property
    def contained(self) -> int:
        """Events and evaluations that raised and were contained (a bug each: see the log)."""
        return self._bugs.count

    def pending_work(self) -> bool:
        """Whether deferred evaluations are queued (the daemon then calls :meth:`drain_pending`
        on the next loop turns rather than waiting for the timer)."""
        return bool(self._queue)

    def drain_pending(self) -> list[Alert]:
        """Run queued deferred evaluations within the per-call bound; return the alerts."""
        out: list[Alert] = []
        self._run_queue(out, bounded=True)
        return out

    def drain(self) -> list[Alert]:
        """Run every queued deferred evaluation (shutdown); return the alerts submitted."""
        out: list[Alert] = []
        self._run_queue(out, bounded=False)
        return out

    def _candidates(self, changed: Changed, ev: Event, recv_ms: int, out: list[Alert]) -> None:
        """Evaluate what ``changed`` (from applying ``ev``) made candidates."""
        touched = changed.accounts
        if touched.size and int(touched[-1]) >= len(self._states):  # sorted: [-1] is the max
            self._register([int(touched[-1])])
        if changed.flips:
            self._on_flips(changed.flips, recv_ms, out)
        cands = changed.candidates
        if not cands.size:  # the usual tick: every touched account still quiet
            return
        # Alerts carry the event time: a batch of marks has the store's (its latest held
        # mark's); an Instrument has none of its own, the receive time stands in.
        event_ms = changed.event_ms
        if event_ms < 0:
            event_ms = getattr(ev, "event_ms", recv_ms)
        if cands.size > 1:
            # Most severe first: the lowest health's alert must not queue behind milder ones.
            health = self.store.healths(cands)
            cands = cands[np.argsort(health, kind="stable")]
        # Accounts needing a liquidation distance (a root search, ~0.1–0.7 ms each) are queued
        # (see the module docstring): the cheap accounts' alerts must not queue behind them.
        queue = self._queue
        for i in cands.tolist():
            if self._needs_distance(i):
                queue.push(i, event_ms, recv_ms)
                continue
            # Evaluated now on the latest figures: that subsumes a queued evaluation.
            entry = queue.take(i)
            first = recv_ms if entry is None else entry[2]
            self._evaluate_and_submit(i, event_ms, recv_ms, first, out, need=False)

    def _evaluate_and_submit(
        self, i: int, event_ms: int, recv_ms: int, first_recv_ms: int, out: list[Alert], *,
        need: bool | None,
    ) -> None:  # fmt: skip
        mark = len(out)
        try:
            self._evaluate(i, event_ms, recv_ms, out, need=need)
        except Exception as exc:  # noqa: BLE001 - one account's bug never stops the others
            self._contain("evaluate_error", i, exc)
            del out[mark:]  # half-made alerts of this evaluation: its state was not kept
            return
        if len(out) > mark:
            # Each account's alerts leave at once; latency counts from the first queued input.
            self._submit(out, mark, first_recv_ms)

    def _run_queue(self, out: list[Alert], *, bounded: bool) -> None:
        """Deferred evaluations in FIFO order; ``bounded``: stop at the count or time bound
        (after at least one)."""
        for i, (event_ms, recv_ms, first) in self._queue.batch(bounded=bounded):
            # need=None: re-screened on the latest figures (the distance may no longer matter).
            self._evaluate_and_submit(i, event_ms, recv_ms, first, out, need=None)

    def _flush_queued(self, ev: Event, out: list[Alert]) -> None:
        """Evaluate now the queued entry of the account ``ev`` is about, if any."""
        account = getattr(ev, "account", None)
        if account is None or not self._queue:
            return
        i = self.store.index_of((ev.venue, account))
        if i is None:
            return
        entry = self._queue.take(i)
        if entry is not None:
            event_ms, recv_ms, first = entry
            self._evaluate_and_submit(i, event_ms, recv_ms, first, out, need=None)

    def tick_timers(self, now_ms: int) -> list[Alert]:
        """Matured de-escalation clocks and feed staleness; call about once a second."""
        out: list[Alert] = []
        self._run_queue(out, bounded=True)
        mark = len(out)
        timers = self._timers
        later: list[tuple[int, int]] = []
        while timers and timers[0][0] <= now_ms:
            due, i = heapq.heappop(timers)
            if i in self._queue:
                later.append((due, i))  # after its queued evaluation, never before
                continue
            if self.store.complete(i) and needs_tick(self._states[i]):
                # The clock's own deadline is the event time: ids stay input-derived.
                self._evaluate(i, due, now_ms, out, now_ms=now_ms)
        for entry in later:
            heapq.heappush(timers, entry)
        self._staleness.due(now_ms, out)
        self._submit(out, mark, now_ms)
        self._publisher.republish(now_ms, self.store.complete, self._document)
        return out

    def watch(self, venue: str, account: str, now_ms: int) -> None:
        """Watch a configured account before its first event: its staleness clock starts at
        ``now_ms``, so a private feed that never syncs still raises ``feed_stale``."""
        i = self.store.watch(venue, account)
        if i >= len(self._states):
            self._register([i], now_ms)

    def alert_state(self, key: AccountKey) -> AlertState:
        i = self.store.index_of(key)
        return AlertState() if i is None or i >= len(self._states) else self._states[i]

    def restore(self, doc: StateDocument) -> None:
        """Resume an account's alert state after a restart (from its last state document)."""
        known = self.store.apply(KnownAccount(doc.venue, doc.account), _SETTING)
        i = int(known.accounts[0])
        self._register([i])
        self._states[i] = AlertState.from_document(doc)
        self._set_band(i)

    def levels(self) -> list[int | None]:
        """Alert level per account index (the metrics collector's ``alert_level`` column)."""
        return [int(s.level) for s in self._states]

    # --- per account -------------------------------------------------------------------------

    def _register(self, indices: Sequence[int], now_ms: int | None = None) -> None:
        """First sight of an account: its config, distance threshold and staleness clock."""
        n = len(self._states)
        for i in indices:
            while n <= i:
                key = self.store.key_of(n)
                cfg = self._config_for(key)
                self._configs.append(cfg)
                self._states.append(AlertState())
                now = self.clock() if now_ms is None else now_ms
                self._staleness.register(n, now, cfg)
                self.store.apply(DistanceThreshold(n, cfg.liq_distance), _SETTING)
                n += 1

    def _needs_distance(self, i: int) -> bool:
        """Whether account ``i``'s evaluation needs its liquidation distance computed."""
        state = self._states[i]
        return self._configs[i].liq_distance is not None and (
            state.distance_near
            or state.distance_clear_since is not None
            or self.store.distance_maybe_near(i)
        )

    def _risk(
        self,
        i: int,
        event_ms: int,
        recv_ms: int,
        *,
        need: bool,
        prices: bool = False,
    ) -> AccountRisk:
        key = self.store.key_of(i)
        return self.store.risk(
            key, event_ms=event_ms, recv_ms=recv_ms, with_liquidation=need, with_prices=prices
        )

    def _evaluate(
        self,
        i: int,
        event_ms: int,
        recv_ms: int,
        out: list[Alert],
        *,
        now_ms: int | None = None,
        need: bool | None = None,
    ) -> None:
        """``need``: whether the distance is needed (:meth:`_needs_distance`), if known."""
        if not self.store.complete(i):
            return  # incomplete inputs: figures unknown, staleness speaks for this account
        prev = self._states[i]
        cfg = self._configs[i]
        if need is None:
            need = self._needs_distance(i)
        risk = self._risk(i, event_ms, recv_ms, need=need)
        now = self.clock() if now_ms is None else now_ms
        state, alerts = evaluate(prev, risk, cfg, now)
        if alerts and self._alert_prices:
            # evaluate is pure: the same call with liquidation prices filled in yields the same
            # transitions, now carrying each top position's liquidation price.
            risk = self._risk(i, event_ms, recv_ms, need=need, prices=True)
            state, alerts = evaluate(prev, risk, cfg, now)
        if state is not prev:
            self._states[i] = state
            self._set_band(i)
            due = deadline_ms(state, cfg)
            if due is not None:
                heapq.heappush(self._timers, (due, i))
        elif math.isinf(self.store.band(i)[0]) and not needs_tick(state):
            self._set_band(i)  # first evaluation of the account
        if alerts:
            out.extend(alerts)
        if alerts or not self._publisher.published(i):
            # On every transition, and after the account's first complete evaluation.
            self._publisher.publish(i, state_document(state, risk, now), now)

    def _document(self, i: int, now_ms: int) -> StateDocument:
        """Account ``i``'s state document now (its state republished, no evaluation)."""
        risk = self._risk(i, now_ms, now_ms, need=False)
        return state_document(self._states[i], risk, now_ms)

    def _set_band(self, i: int) -> None:
        lo, hi = quiet_band(self._states[i], self._configs[i])
        self.store.apply(QuietBand(i, lo, hi), _SETTING)

    def _config_of(self, i: int) -> AlertConfig:
        return self._configs[i]

    def _level_of(self, i: int) -> Level:
        return self._states[i].level

    def _figures(self, i: int) -> AlertFigures | None:
        key = self.store.key_of(i)
        if not self.store.complete(i):
            return None
        return figures_of(self.store.risk(key, with_liquidation=False))

    def _relay_fact(self, ev: Event, recv_ms: int, out: list[Alert]) -> None:
        if isinstance(ev, FeedStatus):
            self._staleness.feed_status(ev, recv_ms, out)
            return
        self._relay.relay(ev, recv_ms, out)

    def _account_of(self, venue: str, account: str) -> int:
        """The account a relayed fact is about (a margin call may name one not seen yet)."""
        i = self.store.index_of((venue, account))
        if i is None:
            i = int(self.store.apply(KnownAccount(venue, account), _SETTING).accounts[0])
        self._register([i])
        return i

    def _on_flips(self, flips: tuple[int, ...], recv_ms: int, out: list[Alert]) -> None:
        """Accounts whose completeness changed: see :meth:`StalenessWatch.flipped`."""
        for i in flips:
            if i >= len(self._states):
                self._register([i])
            mark = len(out)
            self._staleness.flipped(i, recv_ms, out)
            self._submit(out, mark, recv_ms)

    # --- delivery ----------------------------------------------------------------------------

    def _submit(self, alerts: list[Alert], start: int, recv_ms: int) -> None:
        """Stamp and hand ``alerts[start:]`` to every sink (replaced in place by the stamped)."""
        if start >= len(alerts):
            return
        emit = self.clock()
        for k in range(start, len(alerts)):
            stamped = alerts[k].with_emit_time(emit)
            alerts[k] = stamped
            for sink in self.sinks:
                sink.submit(stamped)
            self.observer.alert(stamped.kind, int(stamped.level))
        self.observer.tick_to_alert(max(0, emit - recv_ms) / 1000.0)


_RELAYED = frozenset({MarginCall, PositionFill, AccountSnapshot, FeedStatus, RestBan})

"""Prometheus metrics: flow counters and histograms, and gauges computed at scrape time.

One :class:`Metrics` object is the observer the engine, the connection driver and the sinks report
to (it satisfies ``EngineObserver``, ``DriverObserver`` and ``DeliveryObserver`` structurally) and
the renderer behind ``/metrics``. It owns a fresh :class:`~prometheus_client.CollectorRegistry`
(never the global one), so tests build their own.

Per-account gauges are *not* set on every tick: at scrape time the store's figure columns are
copied and formatted by :mod:`monitor.metrics.render`, chunk by chunk, yielding to the event loop
in between so a scrape of 10,000 accounts never stalls ingestion for more than a few ms. The
small families (counters, histograms, feed ages, spool depths) go through prometheus_client's
own ``generate_latest``.

Every label set is bounded: venues, feeds and sinks come from the config, reasons and alert kinds
from fixed vocabularies, and any label value past a family's cap is folded into ``other``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, get_args

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.metrics.render import AccountColumns, AccountExposition, Family, FloatArray, Part
from rules.alert_doc import AlertKind

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Tick handling costs tens of µs; a slow recompute or a GC pause reaches tens of ms.
LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)

LEVEL_NAMES = ("ok", "warning", "danger", "critical", "liquidatable")
# The schema's kinds, in the order the schema lists them (pre-registered label values).
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)
DELIVERY_RESULTS = ("ok", "error")
OTHER = "other"

ACCOUNT_FAMILIES = (
    Family(
        "marginwatch_account_equity",
        "Account equity (collateral value plus unrealised PnL of cross positions), quote currency.",
        (Part("equity"),),
    ),
    Family(
        "marginwatch_account_maintenance_margin",
        "Aggregate maintenance margin of the account's cross positions, quote currency.",
        (Part("maintenance_margin"),),
    ),
    Family(
        "marginwatch_account_initial_margin",
        "Aggregate initial margin of the account's cross positions, quote currency.",
        (Part("initial_margin"),),
    ),
    Family(
        "marginwatch_account_health",
        "Equity / maintenance margin; liquidation at <= 1; +Inf without positions.",
        (Part("health"),),
    ),
    Family(
        "marginwatch_account_margin_ratio",
        "Venue-native margin ratio (MM/equity on most venues, equity/MM where the venue uses it).",
        (Part("margin_ratio"),),
    ),
    Family(
        "marginwatch_account_liquidation_distance_ratio",
        "Smallest uniform relative move of all marks that brings equity to maintenance margin.",
        (
            Part("liq_distance_down", ',direction="down"'),
            Part("liq_distance_up", ',direction="up"'),
        ),
    ),
    Family(
        "marginwatch_account_alert_level",
        "Current alert level: 0 ok, 1 warning, 2 danger, 3 critical, 4 liquidatable.",
        (Part("alert_level"),),
    ),
)

# Column names figures_arrays() may provide, and the names used by the account families.
_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "equity": ("equity",),
    "maintenance_margin": ("maintenance_margin", "mm"),
    "initial_margin": ("initial_margin", "im"),
    "health": ("health",),
    "margin_ratio": ("margin_ratio", "ratio"),
    "liq_distance_down": ("liq_distance_down", "liquidation_distance_down", "distance_down"),
    "liq_distance_up": ("liq_distance_up", "liquidation_distance_up", "distance_up"),
    "alert_level": ("alert_level", "level", "levels"),
}


class FiguresSource(Protocol):
    """What the metrics need from the store: its figure columns, by account index."""

    def figures_arrays(self) -> Any: ...


class _Bounded:
    """Folds label values past ``limit`` distinct ones into ``other`` (warned once)."""

    __slots__ = ("_family", "_limit", "_seen", "_warned")

    def __init__(self, family: str, limit: int) -> None:
        self._family = family
        self._limit = limit
        self._seen: set[str] = set()
        self._warned = False

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "metric %s: more than %d label values; folding the rest into %r",
                    self._family,
                    self._limit,
                    OTHER,
                )
            return OTHER
        self._seen.add(value)
        return value


def _column(raw: Mapping[str, Any], name: str, n: int) -> FloatArray | None:
    for alias in _COLUMN_ALIASES[name]:
        value = raw.get(alias)
        if value is not None:
            # A copy: the scrape formats it across several loop iterations while ticks update
            # the store's live arrays.
            arr = np.array(value, dtype=np.float64, copy=True)[:n]
            if len(arr) < n:
                arr = np.concatenate([arr, np.full(n - len(arr), np.nan)])
            return arr
    return None


def snapshot_columns(figures: Any) -> AccountColumns:
    """Normalise what ``Store.figures_arrays()`` returns into an :class:`AccountColumns` copy.

    Accepts an object with attributes or a mapping, with ``keys`` (list of (venue, account)) and
    float columns named as in :data:`_COLUMN_ALIASES`.
    """
    raw: dict[str, Any]
    if isinstance(figures, Mapping):
        raw = dict(figures)
    else:
        raw = {
            name: getattr(figures, name)
            for name in dir(figures)
            if not name.startswith("_") and not callable(getattr(figures, name))
        }
    keys = list(raw.get("keys", ()))
    n = len(keys)
    columns: dict[str, FloatArray] = {}
    for name in _COLUMN_ALIASES:
        col = _column(raw, name, n)
        if col is not None:
            columns[name] = col
    return AccountColumns(keys=keys, columns=columns)


class Metrics:
    """Observer of engine, driver and sinks; renderer of ``/metrics``."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        store: FiguresSource | None = None,
        top_positions: int = 0,
        clock: Callable[[], float] = time.time,
        chunk_accounts: int = 1000,
    ) -> None:
        # ``*_created`` series double the small families and no dashboard reads them. The switch
        # is process-wide in prometheus_client; nothing else here exposes them.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream
        self.registry = registry if registry is not None else CollectorRegistry()
        self._store = store
        self._top_n = max(0, top_positions)
        self._clock = clock
        self._accounts = AccountExposition(ACCOUNT_FAMILIES, chunk=chunk_accounts)
        self._last_event: dict[str, float] = {}
        self._feed_connected: dict[str, bool] = {}
        self._feed_states: Callable[[], Mapping[str, str]] | None = None
        self._levels: Callable[[], Any] | None = None
        self._last_render_s = 0.0
        self._snapshot: AccountColumns | None = None
        self._venue = _Bounded("venue", 64)
        self._feed = _Bounded("feed", 4096)
        self._sink = _Bounded("sink", 16)
        self._frame_reason = _Bounded("frames_rejected.reason", 32)
        self._reconnect_reason = _Bounded("reconnects.reason", 16)
        self._delivery_reason = _Bounded("delivery_failures.reason", 16)
        self._kind = _Bounded("alert.kind", 32)
        r = self.registry
        self.frames = Counter(
            "marginwatch_venue_frames", "Websocket frames received.", ["venue"], registry=r
        )
        self.frames_rejected = Counter(
            "marginwatch_venue_frames_rejected",
            "Frames dropped as bad venue data, by bounded reason.",
            ["venue", "reason"],
            registry=r,
        )
        self.reconnects = Counter(
            "marginwatch_feed_reconnects",
            "Feed reconnects, by bounded reason.",
            ["feed", "reason"],
            registry=r,
        )
        self.alerts = Counter(
            "marginwatch_alerts", "Alerts emitted by the policy.", ["kind", "level"], registry=r
        )
        self.deliveries = Counter(
            "marginwatch_alert_deliveries",
            "Alert deliveries to sinks, by result (ok: acknowledged; error: attempt failed).",
            ["sink", "result"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "marginwatch_alert_delivery_failures",
            "Failed delivery attempts by bounded reason.",
            ["sink", "reason"],
            registry=r,
        )
        self.repairs = Counter(
            "marginwatch_alert_repairs",
            "Alerts that did not encode as they were and were sent repaired (fields clamped "
            "or dropped, named in the alert).",
            ["sink"],
            registry=r,
        )
        self.spool = Gauge(
            "marginwatch_alert_spool_depth",
            "Alerts waiting in the sink's durable spool.",
            ["sink"],
            registry=r,
        )
        self.tick_to_alert_hist = Histogram(
            "marginwatch_tick_to_alert_seconds",
            "From receiving a tick to handing the alert it caused to the sinks.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.recompute_hist = Histogram(
            "marginwatch_tick_recompute_seconds",
            "Time to apply one tick to the store and re-evaluate the accounts it touched.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        r.register(_ScrapeTimeCollector(self))
        # process_* (CPU, RSS, fds) and python_info, on this registry rather than the global one
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    # -- wiring ------------------------------------------------------------------------------

    def bind_store(self, store: FiguresSource) -> None:
        self._store = store

    def bind_feed_states(self, states: Callable[[], Mapping[str, str]]) -> None:
        """Scrape-time source of feed states (``FeedHealth.states``: ``"ok"`` = connected)."""
        self._feed_states = states

    def bind_levels(self, levels: Callable[[], Any]) -> None:
        """Scrape-time source of each account's alert level, aligned with the store's indices
        (a sequence or array; NaN/None = unknown). Used when ``figures_arrays()`` has none."""
        self._levels = levels

    def register_venues(self, venues: Iterable[str]) -> None:
        """Initialise per-venue counters to 0 so dashboards show data before the first frame."""
        for venue in venues:
            self.frames.labels(self._venue(venue))

    def register_feeds(self, feeds: Iterable[str]) -> None:
        for feed in feeds:
            name = self._feed(feed)
            self._feed_connected.setdefault(name, False)

    def register_sinks(self, sinks: Iterable[str]) -> None:
        """Initialise delivery counters and spool depth of configured sinks (a zero is data)."""
        for sink in sinks:
            name = self._sink(sink)
            for result in DELIVERY_RESULTS:
                self.deliveries.labels(name, result)
            self.repairs.labels(name)
            self.spool.labels(name).set(0)

    def register_alert_kinds(self, kinds: Iterable[str] = ALERT_KINDS) -> None:
        for kind in kinds:
            for level in LEVEL_NAMES:
                self.alerts.labels(self._kind(kind), level)

    # -- DriverObserver ----------------------------------------------------------------------

    def frames_received(self, venue: str, n: int) -> None:
        # The driver reports a whole receive batch at once: a labelled counter costs ~2 µs per
        # call, which at 200k frames/s would be 40 % of a frame's budget if paid per frame.
        self.frames.labels(self._venue(venue)).inc(n)

    def frame_rejected(self, venue: str, reason: str) -> None:
        self.frames_rejected.labels(self._venue(venue), self._frame_reason(reason)).inc()

    def reconnect(self, feed: str, reason: str) -> None:
        self.reconnects.labels(self._feed(feed), self._reconnect_reason(reason)).inc()

    def feed_event(self, feed: str, at_s: float | None = None) -> None:
        """A frame arrived on ``feed`` (wall-clock seconds; now by default)."""
        self._last_event[self._feed(feed)] = self._clock() if at_s is None else at_s

    def feed_connected(self, feed: str, connected: bool) -> None:
        self._feed_connected[self._feed(feed)] = connected

    # -- DeliveryObserver --------------------------------------------------------------------

    def delivered(self, sink: str, n: int) -> None:
        self.deliveries.labels(self._sink(sink), "ok").inc(n)

    def failed(self, sink: str, n: int, reason: str) -> None:
        name = self._sink(sink)
        self.deliveries.labels(name, "error").inc(n)
        self.delivery_failures.labels(name, self._delivery_reason(reason)).inc(n)

    def spool_depth(self, sink: str, depth: int) -> None:
        self.spool.labels(self._sink(sink)).set(depth)

    def repaired(self, sink: str, n: int) -> None:
        self.repairs.labels(self._sink(sink)).inc(n)

    # -- EngineObserver ----------------------------------------------------------------------

    def tick_to_alert(self, seconds: float) -> None:
        self.tick_to_alert_hist.observe(seconds)

    def recompute(self, seconds: float) -> None:
        self.recompute_hist.observe(seconds)

    def alert(self, kind: str, level: int | str) -> None:
        name = LEVEL_NAMES[level] if isinstance(level, int) else level
        self.alerts.labels(self._kind(kind), name).inc()

    # -- scrape-time state -------------------------------------------------------------------

    def feed_ages(self, now_s: float | None = None) -> dict[str, float]:
        now = self._clock() if now_s is None else now_s
        return {feed: max(0.0, now - t) for feed, t in self._last_event.items()}

    def feed_states(self) -> Mapping[str, bool]:
        if self._feed_states is None:
            return self._feed_connected
        return {self._feed(name): state == "ok" for name, state in self._feed_states().items()}

    def account_columns(self) -> AccountColumns | None:
        if self._store is None:
            return None
        snapshot = snapshot_columns(self._store.figures_arrays())
        if "alert_level" not in snapshot.columns and self._levels is not None:
            n = len(snapshot.keys)
            raw = np.array(
                [math.nan if v is None else v for v in self._levels()][:n], dtype=np.float64
            )
            levels = np.full(n, math.nan)
            levels[: len(raw)] = raw
            snapshot = AccountColumns(snapshot.keys, {**snapshot.columns, "alert_level": levels})
        return snapshot

    def top_positions(self, snapshot: AccountColumns) -> list[tuple[float, str, str, str, str]]:
        """The N largest positions by maintenance margin: (mm, venue, account, symbol, side).

        Accounts are visited by descending aggregate MM and the walk stops when an account's
        MM falls below the N-th largest position found: no position there can be larger (a
        position's MM never exceeds its account's sum).
        """
        mm = snapshot.columns.get("maintenance_margin")
        position_mm = getattr(self._store, "position_mm", None)
        if self._top_n == 0 or mm is None or position_mm is None:
            return []
        order = np.argsort(-np.nan_to_num(mm, nan=-1.0), kind="stable")
        heap: list[tuple[float, str, str, str, str]] = []
        for idx in order.tolist():
            account_mm = float(mm[idx])
            if not account_mm > 0 or (len(heap) >= self._top_n and account_mm < heap[0][0]):
                break
            venue, account = snapshot.keys[idx]
            try:
                legs: Mapping[tuple[str, Any], float | None] = position_mm((venue, account))
            except KeyError:
                continue  # the account left the store since the snapshot
            for (symbol, side), value in legs.items():
                if value is None or not value > 0:
                    continue
                label = str(getattr(side, "value", side))
                item = (float(value), venue, account, str(symbol), label)
                if len(heap) < self._top_n:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
        return sorted(heap, reverse=True)

    # -- exposition --------------------------------------------------------------------------

    def _pieces(self) -> Iterator[bytes]:
        started = time.perf_counter()
        snapshot = self.account_columns()
        self._snapshot = snapshot
        yield b""  # a turn for the loop between the store's snapshot and the small families
        yield generate_latest(self.registry)
        if snapshot is not None:
            yield from self._accounts.pieces(snapshot)
        self._last_render_s = time.perf_counter() - started

    async def render_metrics_pieces(self) -> tuple[list[bytes], str]:
        """The exposition as pieces of bounded size; yields to the event loop between them.

        What the HTTP server should serve: joining ~8 MB into one buffer costs a few ms of
        page faults in a single loop step, which the pieces avoid.
        """
        out: list[bytes] = []
        for piece in self._pieces():
            out.append(piece)
            await asyncio.sleep(0)
        return out, CONTENT_TYPE

    async def render_metrics(self) -> tuple[bytes, str]:
        """The whole exposition as one buffer; yields to the event loop between chunks."""
        pieces, ctype = await self.render_metrics_pieces()
        return b"".join(pieces), ctype

    def render_metrics_sync(self) -> tuple[bytes, str]:
        return b"".join(self._pieces()), CONTENT_TYPE


class _ScrapeTimeCollector(Collector):
    """Small gauges computed at scrape time: feed ages, account counts by level, top-N."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterable[Metric]:
        m = self._m
        age = GaugeMetricFamily(
            "marginwatch_feed_last_event_age_seconds",
            "Seconds since the feed's last frame (computed at scrape time).",
            labels=["feed"],
        )
        for feed, seconds in sorted(m.feed_ages().items()):
            age.add_metric([feed], seconds)
        yield age
        up = GaugeMetricFamily(
            "marginwatch_feed_connected",
            "1 while the feed's websocket is connected and subscribed.",
            labels=["feed"],
        )
        for feed, connected in sorted(m.feed_states().items()):
            up.add_metric([feed], 1.0 if connected else 0.0)
        yield up
        render = GaugeMetricFamily(
            "marginwatch_metrics_render_seconds",
            "Wall time the previous /metrics exposition took (spread over loop iterations).",
        )
        render.add_metric([], m._last_render_s)
        yield render
        snapshot = m._snapshot
        if snapshot is None:
            return
        accounts = GaugeMetricFamily(
            "marginwatch_accounts",
            "Accounts monitored, by current alert level.",
            labels=["level"],
        )
        levels = snapshot.columns.get("alert_level")
        if levels is not None:
            known = levels[~np.isnan(levels)].astype(np.int64).clip(0, len(LEVEL_NAMES) - 1)
            counts = np.bincount(known, minlength=len(LEVEL_NAMES)).tolist()
            for name, count in zip(LEVEL_NAMES, counts, strict=True):
                accounts.add_metric([name], float(count))
        else:
            accounts.add_metric(["unknown"], float(len(snapshot.keys)))
        yield accounts
        top = m.top_positions(snapshot)
        if top or m._top_n:
            fam = GaugeMetricFamily(
                "marginwatch_position_maintenance_margin",
                "Maintenance margin of the N largest positions (opt-in top-N).",
                labels=["venue", "account", "symbol", "side"],
            )
            for value, venue, account, symbol, side in top:
                fam.add_metric([venue, account, symbol, side], value)
            yield fam

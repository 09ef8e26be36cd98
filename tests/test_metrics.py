"""Metrics: exposed values and labels, parser round trip, bounded labels, a yielding renderer.

Every test builds its own registry; account gauges come from a real :class:`monitor.store.Store`
fed domain events, and are compared with the store's own figures (exact: ``repr`` round-trips).
"""

from __future__ import annotations

import asyncio
import math

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from store_support import BTC_2024, VENUE, linear, mark, position, table

from connectors.events import AccountSnapshot, BalanceUpdate
from monitor.http import HttpServer
from monitor.metrics import ACCOUNT_FAMILIES, CONTENT_TYPE, LEVEL_NAMES, OTHER, Metrics
from monitor.metrics.render import escape_label_value
from monitor.store import Store
from rules.types import Side

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(body: bytes) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def _account_store(accounts: dict[str, tuple[float, float]], btc_mark: float = 60_000.0) -> Store:
    """One BTCUSDT position (qty, wallet USDT) per account on binance-usdm."""
    store = Store()
    for ev in (linear("BTCUSDT"), table("BTCUSDT", BTC_2024), mark("BTCUSDT", btc_mark)):
        store.apply(ev, 0)
    for name, (qty, wallet) in accounts.items():
        pos = position(name, "BTCUSDT", qty, 59_000.0)
        store.apply(AccountSnapshot(VENUE, name, {"USDT": wallet}, (pos,), 0), 0)
    return store


def _metrics(store: Store | None = None, **kw: int) -> Metrics:
    return Metrics(CollectorRegistry(), store=store, clock=lambda: 1_000.0, **kw)


def test_account_gauges_equal_the_store_figures() -> None:
    store = _account_store({"alice": (2.0, 10_000.0), "bob": (-1.0, 500.0)})
    body, ctype = _metrics(store).render_metrics_sync()
    assert ctype == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    samples = _samples(body)
    # alice: 2 BTC long at 59,000, mark 60,000: notional 120,000, tier 2 (0.5 %, cum 50):
    # MM = 120,000 × 0.005 − 50 = 550; equity = 10,000 + 2 × 1,000 = 12,000.
    alice = {"venue": VENUE, "account": "alice"}
    assert _value(samples, "marginwatch_account_maintenance_margin", **alice) == 550.0
    assert _value(samples, "marginwatch_account_equity", **alice) == 12_000.0
    for name in ("alice", "bob"):
        fig = store.figures((VENUE, name))
        labels = {"venue": VENUE, "account": name}
        assert _value(samples, "marginwatch_account_equity", **labels) == fig.equity
        assert (
            _value(samples, "marginwatch_account_maintenance_margin", **labels)
            == fig.maintenance_margin
        )
        assert _value(samples, "marginwatch_account_initial_margin", **labels) == (
            fig.initial_margin
        )
        assert _value(samples, "marginwatch_account_health", **labels) == fig.health
        assert _value(samples, "marginwatch_account_margin_ratio", **labels) == fig.margin_ratio
    # bob: 1 BTC short at 59,000 marked 60,000: equity 500 − 1,000 = −500;
    # notional 60,000 is in tier 2: MM = 60,000 × 0.005 − 50 = 250.
    bob = {"venue": VENUE, "account": "bob"}
    assert _value(samples, "marginwatch_account_equity", **bob) == -500.0
    assert _value(samples, "marginwatch_account_maintenance_margin", **bob) == 250.0


def test_unknown_figures_have_no_sample_and_no_positions_is_plus_inf() -> None:
    store = _account_store({"flat": (0.0, 1_000.0)})
    # an account holding a position on an instrument without a mark: figures unknown
    store.apply(
        AccountSnapshot(VENUE, "blind", {"USDT": 1.0}, (position("blind", "ETHUSDT", 1, 1),), 0),
        0,
    )
    body, _ = _metrics(store).render_metrics_sync()
    samples = _samples(body)
    flat = {"venue": VENUE, "account": "flat"}
    assert _value(samples, "marginwatch_account_health", **flat) == math.inf
    assert _value(samples, "marginwatch_account_maintenance_margin", **flat) == 0.0
    assert b'marginwatch_account_health{venue="binance-usdm",account="flat"} +Inf\n' in body
    assert not [key for key in samples if ("account", "blind") in key[1]]


def test_label_values_are_escaped_and_round_trip() -> None:
    odd = 'we"ird\\name\nx'
    store = Store()
    store.apply(BalanceUpdate(VENUE, odd, "USDT", 5.0, 0), 0)
    body, _ = _metrics(store).render_metrics_sync()
    assert escape_label_value(odd).encode() in body
    samples = _samples(body)
    assert _value(samples, "marginwatch_account_equity", venue=VENUE, account=odd) == 5.0


def test_exposition_parses_with_help_and_type_for_every_family() -> None:
    store = _account_store({f"a{i}": (0.1 * i, 1_000.0 * i) for i in range(1, 40)})
    metrics = _metrics(store, chunk_accounts=7)
    body, _ = metrics.render_metrics_sync()
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for family in ACCOUNT_FAMILIES:
        assert families[family.name].type == "gauge"
        assert families[family.name].documentation
    # 39 accounts, chunked by 7: every account exactly once per family
    assert len(families["marginwatch_account_health"].samples) == 39
    assert families["marginwatch_venue_frames"].type == "counter"
    assert families["marginwatch_tick_to_alert_seconds"].type == "histogram"
    text = body.decode()
    for family in ACCOUNT_FAMILIES:
        assert text.count(f"# TYPE {family.name} gauge") == 1
    assert "_created" not in text


def test_new_accounts_appear_and_the_label_cache_follows_the_keys() -> None:
    store = _account_store({"a": (1.0, 10_000.0)})
    metrics = _metrics(store, chunk_accounts=2)
    first = _samples(metrics.render_metrics_sync()[0])
    assert ("marginwatch_account_health", frozenset({("venue", VENUE), ("account", "a")})) in first
    for name in ("b", "c"):
        pos = position(name, "BTCUSDT", 0.5, 60_000.0)
        store.apply(AccountSnapshot(VENUE, name, {"USDT": 100.0}, (pos,), 0), 0)
    second = _samples(metrics.render_metrics_sync()[0])
    accounts = {
        dict(labels)["account"] for name, labels in second if name == "marginwatch_account_equity"
    }
    assert accounts == {"a", "b", "c"}
    assert _value(second, "marginwatch_account_equity", venue=VENUE, account="c") == 100.0


def test_flow_counters_and_histograms() -> None:
    m = _metrics()
    m.register_venues(["okx"])
    m.register_sinks(["kafka"])
    m.register_alert_kinds()
    for _ in range(3):
        m.frames_received("binance-usdm", 1)
    m.frames_received("binance-usdm", 480)  # the driver's once-per-batch report
    m.frame_rejected("binance-usdm", "bad_json")
    m.reconnect("binance-usdm/market", "timeout")
    m.alert("margin_level", 3)
    m.alert("feed_stale", "warning")
    m.delivered("kafka", 5)
    m.failed("kafka", 2, "KafkaConnectionError")
    m.spool_depth("kafka", 7)
    m.tick_to_alert(0.0003)
    m.recompute(0.00004)
    m.recompute(0.002)
    s = _samples(m.render_metrics_sync()[0])
    assert _value(s, "marginwatch_venue_frames_total", venue="binance-usdm") == 483
    assert _value(s, "marginwatch_venue_frames_total", venue="okx") == 0  # registered: a zero
    assert (
        _value(
            s, "marginwatch_venue_frames_rejected_total", venue="binance-usdm", reason="bad_json"
        )
        == 1
    )
    assert (
        _value(s, "marginwatch_feed_reconnects_total", feed="binance-usdm/market", reason="timeout")
        == 1
    )
    assert _value(s, "marginwatch_alerts_total", kind="margin_level", level="critical") == 1
    assert _value(s, "marginwatch_alerts_total", kind="feed_stale", level="warning") == 1
    assert _value(s, "marginwatch_alerts_total", kind="model_drift", level="ok") == 0
    assert _value(s, "marginwatch_alert_deliveries_total", sink="kafka", result="ok") == 5
    assert _value(s, "marginwatch_alert_deliveries_total", sink="kafka", result="error") == 2
    assert (
        _value(
            s,
            "marginwatch_alert_delivery_failures_total",
            sink="kafka",
            reason="KafkaConnectionError",
        )
        == 2
    )
    assert _value(s, "marginwatch_alert_spool_depth", sink="kafka") == 7
    assert _value(s, "marginwatch_tick_to_alert_seconds_count") == 1
    assert _value(s, "marginwatch_tick_to_alert_seconds_bucket", le="0.0005") == 1
    assert _value(s, "marginwatch_tick_to_alert_seconds_bucket", le="0.00025") == 0
    assert _value(s, "marginwatch_tick_recompute_seconds_bucket", le="5e-05") == 1
    assert _value(s, "marginwatch_tick_recompute_seconds_bucket", le="0.0025") == 2
    assert _value(s, "marginwatch_tick_recompute_seconds_sum") == pytest.approx(0.00204)


def test_label_sets_are_bounded() -> None:
    m = _metrics()
    for i in range(100):
        m.frame_rejected("binance-usdm", f"reason_{i}")
        m.frames_received(f"venue_{i}", 1)
    s = _samples(m.render_metrics_sync()[0])
    reasons = {
        dict(labels)["reason"]
        for name, labels in s
        if name == "marginwatch_venue_frames_rejected_total"
    }
    assert len(reasons) == 33  # 32 distinct, then everything else is "other"
    assert OTHER in reasons
    assert _value(
        s, "marginwatch_venue_frames_rejected_total", venue="binance-usdm", reason=OTHER
    ) == (100 - 32)
    venues = {
        dict(labels)["venue"] for name, labels in s if name == "marginwatch_venue_frames_total"
    }
    assert len(venues) == 64  # 63 venue_i (binance-usdm took a slot) and "other"


def test_no_position_series_by_default_and_top_n_when_opted_in() -> None:
    store = _account_store({"a": (2.0, 10_000.0), "b": (0.5, 10_000.0), "c": (-5.0, 90_000.0)})
    store.apply(linear("ETHUSDT"), 0)
    store.apply(table("ETHUSDT", BTC_2024), 0)
    store.apply(mark("ETHUSDT", 3_000.0), 0)
    store.apply(
        AccountSnapshot(
            VENUE,
            "d",
            {"USDT": 10_000.0},
            (
                position("d", "ETHUSDT", 10.0, 3_000.0, Side.LONG),
                position("d", "BTCUSDT", 1.0, 60_000.0, Side.LONG),
            ),
            0,
        ),
        0,
    )
    plain = _metrics(store).render_metrics_sync()[0]
    assert b"marginwatch_position_" not in plain
    s = _samples(_metrics(store, top_positions=2).render_metrics_sync()[0])
    top = {
        (dict(labels)["account"], dict(labels)["symbol"], dict(labels)["side"]): value
        for (name, labels), value in s.items()
        if name == "marginwatch_position_maintenance_margin"
    }
    # MMs: c 5 BTC short 300,000 × 0.5 % − 50 = 1,450; a 550; d BTC 250, d ETH 120; b 120
    assert top == {("c", "BTCUSDT", "both"): 1_450.0, ("a", "BTCUSDT", "both"): 550.0}


def test_feed_age_is_computed_at_scrape_time() -> None:
    now = [1_000.0]
    m = Metrics(CollectorRegistry(), clock=lambda: now[0])
    m.register_feeds(["sim/market", "sim/private/alice"])
    m.feed_event("sim/market", 990.0)
    m.feed_event("sim/private/alice")  # now
    m.feed_connected("sim/market", True)
    s = _samples(m.render_metrics_sync()[0])
    assert _value(s, "marginwatch_feed_last_event_age_seconds", feed="sim/market") == 10.0
    assert _value(s, "marginwatch_feed_last_event_age_seconds", feed="sim/private/alice") == 0.0
    assert _value(s, "marginwatch_feed_connected", feed="sim/market") == 1.0
    assert _value(s, "marginwatch_feed_connected", feed="sim/private/alice") == 0.0
    now[0] = 1_030.5
    s = _samples(m.render_metrics_sync()[0])
    assert _value(s, "marginwatch_feed_last_event_age_seconds", feed="sim/market") == 40.5
    states = {"sim/market": "stale", "sim/private/alice": "ok"}
    m.bind_feed_states(lambda: states)
    s = _samples(m.render_metrics_sync()[0])
    assert _value(s, "marginwatch_feed_connected", feed="sim/market") == 0.0
    assert _value(s, "marginwatch_feed_connected", feed="sim/private/alice") == 1.0


def test_alert_levels_from_a_bound_source_and_accounts_by_level() -> None:
    store = _account_store({"a": (1.0, 10_000.0), "b": (1.0, 100.0), "c": (1.0, 50.0)})
    m = _metrics(store)
    s = _samples(m.render_metrics_sync()[0])
    assert not [k for k in s if k[0] == "marginwatch_account_alert_level"]
    assert _value(s, "marginwatch_accounts", level="unknown") == 3
    m.bind_levels(lambda: [0, 3, None])
    s = _samples(m.render_metrics_sync()[0])
    assert _value(s, "marginwatch_account_alert_level", venue=VENUE, account="a") == 0
    assert _value(s, "marginwatch_account_alert_level", venue=VENUE, account="b") == 3
    assert (
        "marginwatch_account_alert_level",
        frozenset({("venue", VENUE), ("account", "c")}),
    ) not in s
    counts = {name: _value(s, "marginwatch_accounts", level=name) for name in LEVEL_NAMES}
    assert counts == {"ok": 1, "warning": 0, "danger": 0, "critical": 1, "liquidatable": 0}


async def test_async_render_yields_to_the_loop_between_chunks() -> None:
    store = _account_store({f"a{i}": (0.01 * i, 100.0) for i in range(50)})
    metrics = _metrics(store, chunk_accounts=10)
    done = asyncio.Event()
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    turns = 0
    pieces, _ = await metrics.render_metrics_pieces()
    done.set()
    await task
    # 5 families with a column in the store (no liquidation distance or alert level bound)
    # × 5 chunks of 10 accounts; the other task ran once after every piece.
    account_pieces = [p for p in pieces if p.startswith(b"\nmarginwatch_account_")]
    assert len(account_pieces) == 5 * 5
    assert turns >= len(pieces) - 1

    def stable(body: bytes) -> list[bytes]:  # render time and process_* differ between renders
        return [
            x
            for x in body.split(b"\n")
            if x.startswith(b"marginwatch_") and not x.startswith(b"marginwatch_metrics_render")
        ]

    assert stable(b"".join(pieces)) == stable(metrics.render_metrics_sync()[0])
    joined, _ = await metrics.render_metrics()
    assert stable(joined) == stable(b"".join(pieces))


async def test_served_over_the_daemon_http_server() -> None:
    store = _account_store({f"a{i}": (0.01 * i, 100.0) for i in range(30)})
    metrics = _metrics(store, chunk_accounts=4)
    server = HttpServer("127.0.0.1", 0, readiness=dict, metrics=metrics.render_metrics_pieces)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        response = await reader.read()
        writer.close()
        await writer.wait_closed()
    finally:
        await server.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert f"Content-Type: {CONTENT_TYPE}".encode() in head
    assert f"Content-Length: {len(body)}".encode() in head
    s = _samples(body)
    fig = store.figures((VENUE, "a29"))
    assert _value(s, "marginwatch_account_health", venue=VENUE, account="a29") == fig.health

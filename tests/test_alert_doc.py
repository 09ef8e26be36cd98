"""Alert and state documents: exact schema-1 JSON, round trips, ids, Kafka key/headers, kinds."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import cast

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.alert_doc import (
    ALERT_KINDS,
    Alert,
    DocumentError,
    Figures,
    JsonValue,
    Level,
    StateDocument,
    TopPosition,
    alert_id,
)
from rules.alerts import (
    DriftPosition,
    check_drift,
    delivery_failing_alert,
    position_liquidated_alert,
    spool_full_alert,
    venue_margin_call_alert,
)
from rules.types import Side

FIGURES = Figures(
    equity=11_400.0,
    maintenance_margin=10_000.0,
    initial_margin=40_000.0,
    margin_ratio=10_000.0 / 11_400.0,
    health=1.14,
    liq_distance_down=0.041,
    liq_distance_up=None,
)
TOP = (
    TopPosition("BTCUSDT", "both", 600_000.0, 6_000.0, 0.6, 58_137.5),
    TopPosition("ETHUSDT", "short", 400_000.0, 4_000.0, 0.4, None),
)


def sample_alert() -> Alert:
    return Alert(
        id=alert_id("binance-usdm", "alice", "margin_level", "danger>critical", 1_700_000_000_123),
        kind="margin_level",
        venue="binance-usdm",
        account="alice",
        level=Level.CRITICAL,
        previous_level=Level.DANGER,
        figures=FIGURES,
        top_positions=TOP,
        event_time_ms=1_700_000_000_123,
        receive_time_ms=1_700_000_000_131,
        message="alice@binance-usdm CRITICAL (was danger): health 1.14, margin ratio 87.7%, "
        "-4.1% to liquidation",
        detail={"direction": "escalation"},
    )


def test_alert_id_is_sha256_of_the_documented_key() -> None:
    key = b"1|binance-usdm|alice|margin_level|danger>critical|1700000000123"
    expected = hashlib.sha256(key).hexdigest()[:32]
    assert expected == "3cb6cd3662c7f7b027a0520183509be4"  # pinned: ids must never change
    assert alert_id("binance-usdm", "alice", "margin_level", "danger>critical", 1_700_000_000_123)
    assert sample_alert().id == expected


def test_alert_json_schema_v1_exact() -> None:
    alert = sample_alert().with_emit_time(1_700_000_000_140)
    assert orjson.loads(alert.to_json()) == {
        "schema_version": 1,
        "id": "3cb6cd3662c7f7b027a0520183509be4",
        "kind": "margin_level",
        "venue": "binance-usdm",
        "account": "alice",
        "level": "critical",
        "previous_level": "danger",
        "figures": {
            "equity": 11_400.0,
            "maintenance_margin": 10_000.0,
            "initial_margin": 40_000.0,
            "margin_ratio": 10_000.0 / 11_400.0,
            "health": 1.14,
            "liquidation_distance": {"down": 0.041, "up": None},
        },
        "top_positions": [
            {
                "symbol": "BTCUSDT",
                "side": "both",
                "notional": 600_000.0,
                "maintenance_margin": 6_000.0,
                "mm_share": 0.6,
                "liquidation_price": 58_137.5,
            },
            {
                "symbol": "ETHUSDT",
                "side": "short",
                "notional": 400_000.0,
                "maintenance_margin": 4_000.0,
                "mm_share": 0.4,
                "liquidation_price": None,
            },
        ],
        "event_time_ms": 1_700_000_000_123,
        "receive_time_ms": 1_700_000_000_131,
        "emit_time_ms": 1_700_000_000_140,
        "message": "alice@binance-usdm CRITICAL (was danger): health 1.14, margin ratio 87.7%, "
        "-4.1% to liquidation",
        "detail": {"direction": "escalation"},
    }


def test_with_emit_time_copies_and_keeps_id() -> None:
    alert = sample_alert()
    stamped = alert.with_emit_time(5)
    assert alert.emit_time_ms is None
    assert (stamped.emit_time_ms, stamped.id) == (5, alert.id)


def test_round_trip() -> None:
    alert = sample_alert().with_emit_time(1_700_000_000_140)
    assert Alert.from_json(alert.to_json()) == alert
    assert Alert.from_json(sample_alert().to_json()) == sample_alert()


def test_infinite_health_and_ratio_are_null() -> None:
    figures = Figures(100.0, 0.0, 0.0, math.inf, None, None, None)
    assert orjson.loads(orjson.dumps(figures.to_dict())) == {
        "equity": 100.0,
        "maintenance_margin": 0.0,
        "initial_margin": 0.0,
        "margin_ratio": None,
        "health": None,
        "liquidation_distance": {"down": None, "up": None},
    }
    assert figures.summary() == "health ∞"


def test_kafka_key_and_headers() -> None:
    alert = sample_alert()
    assert alert.key() == b"binance-usdm:alice"
    assert alert.headers() == [
        ("kind", b"margin_level"),
        ("level", b"critical"),
        ("schema_version", b"1"),
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schema_version": 2}, "schema_version"),
        ({"kind": "margin_levels"}, "kind"),
        ({"level": "severe"}, "level"),
        ({"event_time_ms": "1"}, "event_time_ms"),
        ({"top_positions": {}}, "top_positions"),
        ({"figures": {"equity": 1.0}}, "figures.liquidation_distance"),
        ({"id": None}, "id"),
    ],
)
def test_from_json_rejects_bad_documents_naming_the_field(
    change: dict[str, object], field: str
) -> None:
    raw = orjson.loads(sample_alert().to_json())
    raw.update(change)
    with pytest.raises(DocumentError, match=rf"^{field}: "):
        Alert.from_json(orjson.dumps(raw))


def test_from_json_rejects_non_json() -> None:
    with pytest.raises(DocumentError, match="not JSON"):
        Alert.from_json(b"{not json")
    with pytest.raises(DocumentError, match=r"^alert: expected an object"):
        Alert.from_json(b"[1]")


def test_state_document_json_and_round_trip() -> None:
    doc = StateDocument(
        venue="binance-usdm",
        account="alice",
        level=Level.CRITICAL,
        figures=FIGURES,
        updated_ms=1_700_000_000_200,
        last_alert_id="3cb6cd3662c7f7b027a0520183509be4",
        seq=4,
        liquidation_near=True,
    )
    assert orjson.loads(doc.to_json()) == {
        "schema_version": 1,
        "venue": "binance-usdm",
        "account": "alice",
        "level": "critical",
        "figures": FIGURES.to_dict(),
        "updated_ms": 1_700_000_000_200,
        "last_alert_id": "3cb6cd3662c7f7b027a0520183509be4",
        "seq": 4,
        "liquidation_near": True,
    }
    assert StateDocument.from_json(doc.to_json()) == doc
    assert doc.key() == b"binance-usdm:alice"


def test_level_labels() -> None:
    assert [lv.label for lv in Level] == ["ok", "warning", "danger", "critical", "liquidatable"]
    assert Level.from_label("danger") is Level.DANGER
    with pytest.raises(ValueError, match="level"):
        Level.from_label("meh")


# --- the other kinds ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalledPosition:  # shaped like connectors.events.MarginCallPosition
    symbol: str
    side: Side
    qty: float
    mark: float
    maintenance_margin: float
    upnl: float


def test_venue_margin_call_alert() -> None:
    alert = venue_margin_call_alert(
        venue="binance-usdm",
        account="alice",
        event_ms=1_587_727_187_525,
        recv_ms=1_587_727_187_600,
        positions=[CalledPosition("ETHUSDT", Side.LONG, 1.327, 187.17, 1.614445, -1.166074)],
        level=Level.CRITICAL,
        figures=FIGURES,
        cross_wallet_balance=3.16812045,
    )
    assert alert.kind == "venue_margin_call"
    assert alert.id == alert_id(
        "binance-usdm", "alice", "venue_margin_call", "call", 1_587_727_187_525
    )
    assert alert.message.startswith("alice@binance-usdm VENUE MARGIN CALL (ETHUSDT): health 1.14")
    assert alert.detail == {
        "positions": [
            {
                "symbol": "ETHUSDT",
                "side": "long",
                "qty": 1.327,
                "mark": 187.17,
                "maintenance_margin": 1.614445,
                "upnl": -1.166074,
            }
        ],
        "cross_wallet_balance": 3.16812045,
    }
    assert Alert.from_json(alert.to_json()) == alert


def drift(
    was: bool, venue_mm: float, event_ms: int, positions: tuple[DriftPosition, ...] = ()
) -> tuple[bool, Alert | None]:
    return check_drift(
        was,
        venue="binance-usdm",
        account="alice",
        our_mm=100.0,
        venue_mm=venue_mm,
        rel_tol=1e-6,
        event_ms=event_ms,
        recv_ms=event_ms + 1,
        level=Level.OK,
        positions=positions,
    )


def test_model_drift_alerts_once_per_transition() -> None:
    assert drift(False, 100.00001, 1) == (False, None)  # within 1e-6 relative
    drifting, alert = drift(False, 101.0, 10, (DriftPosition("BTCUSDT", 100.0, 101.0),))
    assert drifting and alert is not None
    assert alert.message == "alice@binance-usdm MODEL DRIFT: our MM 100 vs venue 101 (-0.9901%)"
    assert alert.detail["state"] == "drift"
    assert alert.detail["relative_difference"] == pytest.approx(-1 / 101)
    assert alert.detail["positions"] == [{"symbol": "BTCUSDT", "our_mm": 100.0, "venue_mm": 101.0}]
    assert drift(True, 101.0, 20) == (True, None)  # persisting drift: no new alert
    back, cleared = drift(True, 100.0, 30)
    assert not back and cleared is not None and cleared.detail["state"] == "agree"
    assert cleared.id != alert.id


def test_position_liquidated_alert() -> None:
    alert = position_liquidated_alert(
        venue="binance-usdm",
        account="alice",
        symbol="BTCUSDT",
        side=Side.LONG,
        qty=0.5,
        price=58_137.5,
        event_ms=1_000,
        recv_ms=1_010,
        level=Level.LIQUIDATABLE,
        order_id="8886774",
    )
    assert alert.message == "alice@binance-usdm POSITION LIQUIDATED: BTCUSDT long 0.5 at 58137.5"
    assert alert.id == alert_id(
        "binance-usdm", "alice", "position_liquidated", "BTCUSDT:long:8886774", 1_000
    )
    assert alert.figures is None and alert.top_positions == ()


def test_delivery_kinds_are_keyed_by_sink() -> None:
    full = spool_full_alert(
        sink="kafka",
        spool_bytes=1_048_576,
        limit_bytes=1_048_576,
        pending=812,
        full_since_ms=50_000,
        now_ms=50_010,
    )
    assert (full.venue, full.account, full.level) == ("marginwatch", "kafka", Level.CRITICAL)
    assert full.key() == b"marginwatch:kafka"
    assert full.message == "sink kafka: SPOOL FULL (1048576 of 1048576 bytes, 812 alerts pending)"
    failing = delivery_failing_alert(
        sink="kafka",
        reason="broker_unreachable",
        failing_since_ms=40_000,
        attempts=7,
        pending=12,
        now_ms=70_500,
    )
    assert failing.message == (
        "sink kafka: DELIVERY FAILING for 30.5 s "
        "(broker_unreachable, 7 attempts, 12 alerts pending)"
    )
    # The id depends on when the failure started, not on when it is reported.
    later = delivery_failing_alert(
        sink="kafka",
        reason="broker_unreachable",
        failing_since_ms=40_000,
        attempts=9,
        pending=15,
        now_ms=90_000,
    )
    assert later.id == failing.id
    for alert in (full, failing):
        assert Alert.from_json(alert.to_json()) == alert


# --- property ------------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
maybe = st.none() | finite
figures = st.builds(Figures, finite, finite, finite, maybe, maybe, maybe, maybe)
tops = st.builds(
    TopPosition,
    st.text(max_size=12),
    st.sampled_from(["both", "long", "short"]),
    finite,
    finite,
    maybe,
    maybe,
)
json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | finite | st.text(max_size=8)


@st.composite
def alerts(draw: st.DrawFn) -> Alert:
    kind = draw(st.sampled_from(sorted(ALERT_KINDS)))
    event_ms = draw(st.integers(0, 2**53))
    # Lists are invariant, so a strategy of leaf lists is not typed as JSON values; it is one.
    detail_values = cast(
        "st.SearchStrategy[JsonValue]", json_leaf | st.lists(json_leaf, max_size=3)
    )
    return Alert(
        id=alert_id("v", "a", kind, "x", event_ms),
        kind=kind,  # type: ignore[arg-type]
        venue=draw(st.text(max_size=12)),
        account=draw(st.text(max_size=12)),
        level=draw(st.sampled_from(list(Level))),
        previous_level=draw(st.sampled_from(list(Level))),
        figures=draw(st.none() | figures),
        top_positions=tuple(draw(st.lists(tops, max_size=5))),
        event_time_ms=event_ms,
        receive_time_ms=draw(st.integers(0, 2**53)),
        emit_time_ms=draw(st.none() | st.integers(0, 2**53)),
        message=draw(st.text(max_size=40)),
        detail=draw(st.dictionaries(st.text(max_size=8), detail_values, max_size=4)),
    )


@given(alert=alerts())
def test_any_alert_round_trips(alert: Alert) -> None:
    assert Alert.from_json(alert.to_json()) == alert

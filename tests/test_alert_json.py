"""The Kafka sink's encoding kernel (monitor/sinks/alert_json.py) and the plain path
(``Alert.to_json``) agree byte for byte, and raise on the same alerts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.sinks.alert_json import alert_json
from rules.alert_doc import ALERT_KINDS, Alert, Figures, Level, TopPosition

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 1e308]),
)
optional = st.one_of(st.none(), numbers)
figures = st.builds(
    Figures,
    equity=numbers,
    maintenance_margin=numbers,
    initial_margin=numbers,
    margin_ratio=optional,
    health=optional,
    liq_distance_down=optional,
    liq_distance_up=optional,
)
positions = st.builds(
    TopPosition,
    symbol=st.text(max_size=12),
    side=st.sampled_from(["long", "short", "LONG"]),
    notional=numbers,
    maintenance_margin=numbers,
    mm_share=optional,
    liquidation_price=optional,
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.text(max_size=8), numbers),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
times = st.integers(min_value=-(2**63), max_value=2**64 + 5)  # past 2^64: both raise
alerts = st.builds(
    Alert,
    id=st.text(max_size=32),
    kind=st.sampled_from(sorted(ALERT_KINDS)),
    venue=st.text(max_size=10),
    account=st.text(max_size=10),
    level=st.sampled_from(list(Level)),
    previous_level=st.sampled_from(list(Level)),
    figures=st.one_of(st.none(), figures),
    top_positions=st.lists(positions, max_size=5).map(tuple),
    event_time_ms=times,
    receive_time_ms=times,
    message=st.text(max_size=40),
    detail=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    emit_time_ms=st.one_of(st.none(), times),
)


@given(alerts)
def test_kernel_and_plain_path_agree_byte_for_byte(alert: Alert) -> None:
    try:
        plain = alert.to_json()
    except TypeError:
        with pytest.raises(TypeError):
            alert_json(alert)
        return
    assert alert_json(alert) == plain

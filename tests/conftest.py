"""Shared fixtures. Keep this small: helpers live in their own modules (services.py, …)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from services import Service, start_mosquitto, start_tansu

# Property tests must not flake on a loaded 2-core CI machine: no per-example deadline, and a
# derandomised, fixed-size run under CI so a red build is reproducible from its log.
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[Service]:
    """A Tansu broker (Kafka protocol, in-memory storage) on a free loopback port."""
    service = start_tansu(tmp_path)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Service]:
    """A Mosquitto broker on a free loopback port, persisting to this test's directory."""
    service = start_mosquitto(tmp_path)
    try:
        yield service
    finally:
        service.stop()

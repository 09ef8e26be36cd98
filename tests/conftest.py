"""Shared fixtures. Keep this small: helpers live in their own modules (services.py, …)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from services import Service, start_mosquitto, start_tansu


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

"""A loopback Binance futures venue for tests and the demo (REST + websockets, fault switches)."""

from connectors.binance.fake.account import FakeAccount
from connectors.binance.fake.clock import Clock, ManualClock, WallClock
from connectors.binance.fake.server import FakeBinance

__all__ = ["Clock", "FakeAccount", "FakeBinance", "ManualClock", "WallClock"]

"""A loopback Binance futures venue for tests and the demo (REST + websockets, fault switches)."""

from connectors.fakes.binance.account import FakeAccount
from connectors.fakes.binance.clock import Clock, ManualClock, WallClock
from connectors.fakes.binance.server import FakeBinance

__all__ = ["Clock", "FakeAccount", "FakeBinance", "ManualClock", "WallClock"]

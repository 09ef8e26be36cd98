"""Alerts, state documents and a recording delivery observer for the broker-sink tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from rules.alert_doc import Alert, Figures, Level, StateDocument, TopPosition

FIGURES = Figures(
    equity=10_500.0,
    maintenance_margin=9_000.0,
    initial_margin=12_000.0,
    margin_ratio=9_000.0 / 10_500.0,
    health=10_500.0 / 9_000.0,
    liq_distance_down=0.041,
    liq_distance_up=None,
)
TOP = TopPosition("BTCUSDT", "long", 250_000.0, 6_250.0, 0.6944, 96_123.5)


def make_alert(i: int, account: str = "acct-1", venue: str = "binance") -> Alert:
    return Alert(
        id=f"{i:032x}",
        kind="margin_level",
        venue=venue,
        account=account,
        level=Level.DANGER,
        previous_level=Level.WARNING,
        figures=FIGURES,
        top_positions=(TOP,),
        event_time_ms=1_700_000_000_000 + i,
        receive_time_ms=1_700_000_000_005 + i,
        message=f"health 1.17 (alert {i})",
        emit_time_ms=1_700_000_000_009 + i,
    )


def make_state(
    account: str, health: float, updated_ms: int, venue: str = "binance"
) -> StateDocument:
    mm = 9_000.0
    figures = Figures(
        equity=health * mm,
        maintenance_margin=mm,
        initial_margin=12_000.0,
        margin_ratio=1 / health,
        health=health,
    )
    level = Level.DANGER if health < 1.2 else Level.OK
    return StateDocument(venue, account, level, figures, updated_ms, f"{updated_ms:032x}", seq=1)


class RecordingObserver:
    """A DeliveryObserver that keeps what it saw and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.delivered_total = 0
        self.failures: list[tuple[int, str]] = []
        self.depths: list[int] = []
        self.repaired_total = 0
        self._changed = asyncio.Event()

    def delivered(self, sink: str, n: int) -> None:
        self.delivered_total += n
        self._changed.set()

    def failed(self, sink: str, n: int, reason: str) -> None:
        self.failures.append((n, reason))
        self._changed.set()

    def spool_depth(self, sink: str, depth: int) -> None:
        self.depths.append(depth)
        self._changed.set()

    def repaired(self, sink: str, n: int) -> None:
        self.repaired_total += n
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; callers bound it with ``asyncio.timeout``."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

"""Model drift: our maintenance margin against the figure the venue itself reported.

A venue snapshot may carry its own total and per-position MM (:class:`VenueFigures`). Right
after the store applied that snapshot both describe the same positions at (nearly) the same
marks, so a disagreement beyond tolerance means our tier table or model is out of date. One
alert per transition (agree → drift → agree); the drift alert names the positions that disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from connectors.events import AccountSnapshot
from monitor.store import Store
from rules.account import account_figures
from rules.alerts import Alert, DriftPosition, Figures, Level, drift_exceeds, model_drift_alert
from rules.types import Side


class DriftCheck:
    def __init__(self, store: Store, rel_tol: float, abs_tol: float) -> None:
        self.store = store
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol
        self._drifting: dict[int, bool] = {}

    def _our_mm(
        self, key: tuple[str, str], marks: Mapping[str, float]
    ) -> tuple[dict[tuple[str, Side], float | None], float]:
        """Our per-position and total MM, at the venue's own marks when it reported them
        (comparing at different instants would report market moves as drift)."""
        if not marks:
            return self.store.position_mm(key), self.store.figures(key).maintenance_margin
        a = self.store.account_input(key)
        positions = [replace(p, mark_price=marks.get(p.symbol, p.mark_price)) for p in a.positions]
        figs = account_figures(replace(a, positions=tuple(positions)))
        per = {
            (p.symbol, p.side): f.maintenance_margin
            for p, f in zip(positions, figs.positions, strict=True)
        }
        return dict(per), figs.maintenance_margin

    def check(
        self, i: int, ev: AccountSnapshot, recv_ms: int, level: Level, figures: Figures | None
    ) -> Alert | None:
        reported = ev.reported
        if reported is None or not self.store.complete(i):
            return None
        key = self.store.key_of(i)
        ours, our_total = self._our_mm(key, reported.mark_prices)
        positions: list[DriftPosition] = []
        disagree: list[DriftPosition] = []
        for (symbol, side), our_mm in sorted(ours.items(), key=lambda kv: kv[0][0]):
            if our_mm is None:
                continue
            venue_mm = reported.position_maintenance_margin.get((symbol, side))
            row = DriftPosition(symbol=symbol, our_mm=our_mm, venue_mm=venue_mm)
            positions.append(row)
            if venue_mm is not None and drift_exceeds(our_mm, venue_mm, self.rel_tol, self.abs_tol):
                disagree.append(row)
        venue_total = reported.total_maintenance_margin
        drifting = bool(disagree) or (
            venue_total is not None
            and drift_exceeds(our_total, venue_total, self.rel_tol, self.abs_tol)
        )
        was = self._drifting.get(i, False)
        self._drifting[i] = drifting
        if drifting == was:
            return None
        return model_drift_alert(
            venue=key[0],
            account=key[1],
            drifting=drifting,
            our_mm=our_total,
            venue_mm=our_total if venue_total is None else venue_total,
            rel_tol=self.rel_tol,
            event_ms=ev.event_ms,
            recv_ms=recv_ms,
            level=level,
            figures=figures,
            positions=disagree if drifting else positions,
        )

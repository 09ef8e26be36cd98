"""Model drift: our maintenance margin against the figure the venue itself reported.

A venue snapshot may carry its own total and per-position MM (:class:`VenueFigures`). Right
after the store applied that snapshot both describe the same positions at (nearly) the same
marks, so a disagreement beyond tolerance means our tier table or model is out of date. One
alert per transition (agree → drift → agree); the drift alert names the positions that disagree.
"""

from __future__ import annotations

from connectors.events import AccountSnapshot
from monitor.store import Store
from rules.alerts import Alert, DriftPosition, Figures, Level, drift_exceeds, model_drift_alert


class DriftCheck:
    def __init__(self, store: Store, rel_tol: float, abs_tol: float) -> None:
        self.store = store
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol
        self._drifting: dict[int, bool] = {}

    def check(
        self, i: int, ev: AccountSnapshot, recv_ms: int, level: Level, figures: Figures | None
    ) -> Alert | None:
        reported = ev.reported
        if reported is None or not self.store.table.complete[i]:
            return None
        key = self.store.key_of(i)
        ours = self.store.position_mm(key)
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
        our_total = self.store.figures(key).maintenance_margin
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

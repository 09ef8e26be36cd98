"""The venue's MM figures of ONE instant, from two REST answers taken at two instants.

A snapshot asks ``account`` and ``positionRisk`` separately, and Binance recomputes marks every
second: a mark that moves between the two answers would make the account's MM disagree with
positionRisk's marks, and the drift check (which values our model at the venue's marks) would
report model drift that isn't there. Everything here is anchored on the positionRisk answer,
which carries each position's ``markPrice`` (and, on USDⓈ-M v3, its ``maintMargin``) together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.events import VenueFigures

if TYPE_CHECKING:
    from connectors.binance.snapshots import AccountFacts, PositionFacts


def _same(a: float, b: float) -> bool:
    """Equal as Binance prints them (8 decimals), with room for float parsing."""
    return abs(a - b) <= 2e-8 + 1e-9 * max(abs(a), abs(b))


def _same_instant(facts: AccountFacts, risk: PositionFacts) -> bool:
    """Did both answers see the same marks? They are two requests, and Binance moves marks
    every second. Each position's uPnL (and MM, where positionRisk has it) must agree: both move
    with the mark, |Δ uPnL| being exactly |Δ notional|, so an undetectable move cannot move the
    MM by more than the print precision either."""
    if facts.position_maintenance_margin.keys() != {(p.symbol, p.side) for p in risk.positions}:
        return False
    for key, upnl in risk.upnl.items():
        theirs = facts.position_upnl.get(key)
        if theirs is None or not _same(theirs, upnl):
            return False
    if risk.maintenance_margin is None:
        # Without MM in positionRisk the uPnL is the only witness: it must cover every position.
        return risk.upnl.keys() == facts.position_maintenance_margin.keys()
    return all(
        _same(facts.position_maintenance_margin[key], mm)
        for key, mm in risk.maintenance_margin.items()
    )


def venue_figures(facts: AccountFacts, risk: PositionFacts, *, multi_asset: bool) -> VenueFigures:
    """The venue's MM figures at ONE instant: the positionRisk answer's, whose marks ride along.

    The drift check values our model at ``mark_prices``, so every MM figure must belong to those
    marks. Per position: positionRisk's own ``maintMargin`` (USDⓈ-M v3). COIN-M's positionRisk
    has none; the account's per-position MM is used for a position only when its uPnL there
    equals positionRisk's (same mark). Total: the account's ``totalMaintMargin`` when no mark
    moved between the two requests (:func:`_same_instant`); otherwise Σ positionRisk
    ``maintMargin`` over the positions that total covers (all in multi-assets mode, else those
    margined in its asset), or no total when positionRisk has no MM (COIN-M; the next snapshot
    checks again).
    """
    same = _same_instant(facts, risk)
    if risk.maintenance_margin is not None:
        per_position = dict(risk.maintenance_margin)
    else:
        per_position = {
            key: mm
            for key, mm in facts.position_maintenance_margin.items()
            if key in risk.upnl
            and key in facts.position_upnl
            and _same(facts.position_upnl[key], risk.upnl[key])
        }
    total = facts.total_maintenance_margin
    if not same:
        if risk.maintenance_margin is None:
            total = None
        else:
            scope = None if multi_asset else facts.total_asset
            total = sum(
                mm
                for key, mm in risk.maintenance_margin.items()
                if scope is None or risk.margin_assets.get(key, scope) == scope
            )
    return VenueFigures(total, per_position, facts.total_margin_balance, dict(risk.marks))

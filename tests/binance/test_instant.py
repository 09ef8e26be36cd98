"""The venue's MM figures of one instant, joined from the account and positionRisk answers
(connectors.binance.instant): worked examples on hand-made bodies in Binance's shapes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from connectors.binance.snapshots import (
    account_snapshot,
    parse_account_v3,
    parse_position_risk_v3,
)
from connectors.events import VenueFigures
from rules.types import Side

V = "binance-usdm"
ETH, BTC = ("ETHUSDT", Side.BOTH), ("BTCUSDC", Side.BOTH)


def account(rows: list[tuple[str, str, str, str]], total: str | None = "0") -> dict[str, Any]:
    """rows: (symbol, positionAmt, maintMargin, unrealizedProfit); ``total=None`` → COIN-M."""
    doc: dict[str, Any] = {
        "assets": [{"asset": "USDT", "crossWalletBalance": "10000", "maintMargin": "0"}],
        "positions": [
            {"symbol": s, "positionSide": "BOTH", "positionAmt": q, "maintMargin": mm,
             "unrealizedProfit": up}
            for s, q, mm, up in rows
        ],
    }  # fmt: skip
    if total is None:
        doc["assets"][0]["maintMargin"] = rows[0][2] if rows else "0"
    else:
        doc["totalMaintMargin"] = total
    return doc


def risk(rows: Sequence[tuple[str, str, str, str | None, str, str]]) -> list[dict[str, Any]]:
    """rows: (symbol, positionAmt, markPrice, maintMargin or None, unRealizedProfit, asset)."""
    out = []
    for s, q, mark, mm, up, asset in rows:
        row = {"symbol": s, "positionSide": "BOTH", "positionAmt": q, "entryPrice": "3000",
               "markPrice": mark, "unRealizedProfit": up, "isolatedWallet": "0",
               "marginAsset": asset}  # fmt: skip
        if mm is not None:
            row["maintMargin"] = mm
        out.append(row)
    return out


def figures(acct: dict[str, Any], rows: list[Any], *, multi_asset: bool = False) -> VenueFigures:
    snap = account_snapshot(
        V,
        "alice",
        parse_account_v3(acct, V),
        parse_position_risk_v3(rows, V, "alice", event_ms=1),
        multi_asset=multi_asset,
        event_ms=1,
    )
    assert snap.reported is not None
    return snap.reported


# ETHUSDT short 50 from 3 000: at 3 000 MM 700 (0.5 %, cum 50), uPnL 0; at 3 000.01 MM 700.0025,
# uPnL −0.5.
ETH_AT_3000 = ("ETHUSDT", "-50", "700", "0")
ETH_RISK_AT_3000 = ("ETHUSDT", "-50", "3000", "700", "0", "USDT")
ETH_RISK_MOVED = ("ETHUSDT", "-50", "3000.01", "700.0025", "-0.5", "USDT")


def test_same_instant_keeps_the_accounts_total() -> None:
    # 712.5 covers something positionRisk does not show; the marks agree, so it is kept as is.
    got = figures(account([ETH_AT_3000], total="712.5"), risk([ETH_RISK_AT_3000]))
    assert got == VenueFigures(712.5, {ETH: 700.0}, None, {"ETHUSDT": 3000.0})


def test_a_mark_moved_between_the_answers_gives_positionrisks_sum() -> None:
    got = figures(account([ETH_AT_3000], total="700"), risk([ETH_RISK_MOVED]))
    assert got == VenueFigures(700.0025, {ETH: 700.0025}, None, {"ETHUSDT": 3000.01})


def test_a_position_opened_between_the_answers_is_not_one_instant() -> None:
    got = figures(account([], total="0"), risk([ETH_RISK_AT_3000]))
    assert (got.total_maintenance_margin, dict(got.position_maintenance_margin)) == (
        700.0,
        {ETH: 700.0},
    )


@pytest.mark.parametrize(("multi_asset", "total"), [(False, 700.0025), (True, 700.0025 + 12.0)])
def test_the_sum_covers_what_the_accounts_total_covers(multi_asset: bool, total: float) -> None:
    # Outside multi-assets mode totalMaintMargin is "only for USDT asset": a USDC position's MM
    # stays out of the sum, as it was out of the total.
    btc = ("BTCUSDC", "0.1", "60000", "12", "0", "USDC")
    got = figures(
        account([ETH_AT_3000, ("BTCUSDC", "0.1", "12", "0")], total="700"),
        risk([ETH_RISK_MOVED, btc]),
        multi_asset=multi_asset,
    )
    assert got.total_maintenance_margin == pytest.approx(total, rel=1e-15)
    assert got.position_maintenance_margin == {ETH: 700.0025, BTC: 12.0}


def test_coinm_positionrisk_without_mm_uses_the_accounts_when_the_upnl_agrees() -> None:
    coinm = account([("BTCUSD_PERP", "6000", "0.065", "0.001")], total=None)
    same = [("BTCUSD_PERP", "6000", "50000", None, "0.001", "BTC")]
    got = figures(coinm, risk(same))
    key = ("BTCUSD_PERP", Side.BOTH)
    assert got == VenueFigures(0.065, {key: 0.065}, None, {"BTCUSD_PERP": 50000.0})
    # The mark moved between the answers (uPnL differs): nothing of that instant to compare.
    moved = [("BTCUSD_PERP", "6000", "50010", None, "0.0014", "BTC")]
    got = figures(coinm, risk(moved))
    assert got == VenueFigures(None, {}, None, {"BTCUSD_PERP": 50010.0})


def test_rows_partly_without_mm_are_treated_as_having_none() -> None:
    rows = risk([ETH_RISK_MOVED, ("BTCUSDC", "0.1", "60000", None, "0", "USDC")])
    facts = parse_position_risk_v3(rows, V, "alice", event_ms=1)
    assert facts.maintenance_margin is None
    assert facts.upnl == {ETH: -0.5, BTC: 0.0}
    assert facts.margin_assets == {ETH: "USDT", BTC: "USDC"}

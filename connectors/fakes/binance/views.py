"""REST response bodies of the fake venue, shaped like ``ws-samples/binance-usdm/rest_*.json``.

USDⓈ-M answers ``/fapi/v3/account`` and ``/fapi/v3/positionRisk``; COIN-M answers the
``/dapi/v1`` shapes (no account-wide totals: one cross pool per margin coin).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.fakes.binance.account import Contract, FakeAccount, fmt
from rules.types import ContractKind


def _asset_row(acct: FakeAccount, asset: str, now: int) -> dict[str, Any]:
    wb = acct.balances[asset]
    up = acct.unrealized(asset)
    mm = acct.total_maint_margin(asset)
    return {
        "asset": asset,
        "walletBalance": fmt(wb),
        "unrealizedProfit": fmt(up),
        "marginBalance": fmt(wb + up),
        "maintMargin": fmt(mm),
        "initialMargin": "0",
        "positionInitialMargin": "0",
        "openOrderInitialMargin": "0",
        "crossWalletBalance": fmt(wb),
        "crossUnPnl": fmt(up),
        "availableBalance": fmt(wb + up - mm),
        "maxWithdrawAmount": fmt(max(wb + up - mm, 0.0)),
        "updateTime": now,
    }


def _position_row(acct: FakeAccount, symbol: str, side: str) -> dict[str, Any]:
    p = acct.positions[(symbol, side)]
    return {
        "symbol": symbol,
        "positionSide": side,
        "positionAmt": fmt(p.qty),
        "unrealizedProfit": fmt(acct.upnl(p)),
        "isolatedMargin": "0",
        "notional": fmt(acct.notional(p) * (1 if p.qty > 0 else -1)),
        "isolatedWallet": "0",
        "initialMargin": "0",
        "maintMargin": fmt(acct.maint_margin(p)),
        "updateTime": p.update_ms,
    }


def account_body(acct: FakeAccount, kind: ContractKind, now: int) -> dict[str, Any]:
    assets = [_asset_row(acct, a, now) for a in acct.balances]
    positions = [_position_row(acct, p.symbol, p.side) for p in acct.open_positions()]
    if kind is ContractKind.INVERSE:
        return {"assets": assets, "positions": positions, "canDeposit": True, "updateTime": now}
    main = "USDT" if "USDT" in acct.balances else next(iter(acct.balances))
    row = next(a for a in assets if a["asset"] == main)
    return {
        "totalInitialMargin": "0",
        "totalMaintMargin": fmt(acct.total_maint_margin(main)),
        "totalWalletBalance": row["walletBalance"],
        "totalUnrealizedProfit": row["unrealizedProfit"],
        "totalMarginBalance": row["marginBalance"],
        "totalPositionInitialMargin": "0",
        "totalOpenOrderInitialMargin": "0",
        "totalCrossWalletBalance": row["crossWalletBalance"],
        "totalCrossUnPnl": row["crossUnPnl"],
        "availableBalance": row["availableBalance"],
        "maxWithdrawAmount": row["maxWithdrawAmount"],
        "assets": assets,
        "positions": positions,
    }


def account_config_body(acct: FakeAccount, now: int) -> dict[str, Any]:
    """``GET /fapi/v1/accountConfig``: the account's position and multi-assets modes."""
    return {
        "feeTier": 0,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "dualSidePosition": acct.hedge,
        "updateTime": now,
        "multiAssetsMargin": acct.multi_assets,
        "tradeGroupId": -1,
    }


def position_risk_body(acct: FakeAccount, kind: ContractKind) -> list[dict[str, Any]]:
    """v3 (USDⓈ-M) returns only open positions; the COIN-M v1 shape adds ``marginType`` and has
    no ``initialMargin``/``maintMargin`` (the account answer carries those)."""
    rows: list[dict[str, Any]] = []
    for p in acct.open_positions():
        mark = acct.market.marks[p.symbol]
        row: dict[str, Any] = {
            "symbol": p.symbol,
            "positionSide": p.side,
            "positionAmt": fmt(p.qty),
            "entryPrice": fmt(p.entry),
            "breakEvenPrice": fmt(p.entry),
            "markPrice": fmt(mark),
            "unRealizedProfit": fmt(acct.upnl(p)),
            "liquidationPrice": "0",
            "isolatedMargin": "0",
            "marginAsset": acct.market.contracts[p.symbol].margin_asset,
            "isolatedWallet": "0",
            "initialMargin": "0",
            "maintMargin": fmt(acct.maint_margin(p)),
            "adl": 1,
            "updateTime": p.update_ms,
        }
        if kind is ContractKind.LINEAR:
            row["notional"] = fmt(acct.notional(p) * (1 if p.qty > 0 else -1))
        else:
            del row["initialMargin"], row["maintMargin"]
            row["notionalValue"] = fmt(acct.notional(p) * (1 if p.qty > 0 else -1))
            row["marginType"] = "cross"
            row["leverage"] = str(acct.leverage.get(p.symbol, 20))
        rows.append(row)
    return rows


def brackets_body(acct: FakeAccount, kind: ContractKind) -> list[dict[str, Any]]:
    floor_key, cap_key = (
        ("notionalFloor", "notionalCap") if kind is ContractKind.LINEAR else ("qtyFloor", "qtyCap")
    )
    out: list[dict[str, Any]] = []
    for symbol in acct.market.contracts:
        row: dict[str, Any] = {
            "symbol": symbol,
            "brackets": [
                {
                    "bracket": n,
                    "initialLeverage": b.max_leverage,
                    cap_key: b.cap,
                    floor_key: b.floor,
                    "maintMarginRatio": b.mmr,
                    "cum": b.cum,
                }
                for n, b in enumerate(acct.brackets(symbol), start=1)
            ],
        }
        if acct.notional_coef is not None:
            row["notionalCoef"] = acct.notional_coef
        out.append(row)
    return out


def exchange_info_body(contracts: Mapping[str, Contract], kind: ContractKind) -> dict[str, Any]:
    rows = []
    for c in contracts.values():
        row: dict[str, Any] = {
            "symbol": c.symbol,
            "pair": c.symbol.split("_")[0],
            "contractType": "PERPETUAL",
            "status": "TRADING",
            "marginAsset": c.margin_asset,
        }
        if kind is ContractKind.INVERSE:
            row["contractSize"] = int(c.contract_size)
            row["contractStatus"] = "TRADING"
        rows.append(row)
    return {"timezone": "UTC", "symbols": rows}


def premium_index_row(symbol: str, mark: float, now: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "markPrice": fmt(mark),
        "indexPrice": fmt(mark),
        "estimatedSettlePrice": fmt(mark),
        "lastFundingRate": "0.00010000",
        "interestRate": "0.00010000",
        "nextFundingTime": (now // 28_800_000 + 1) * 28_800_000,
        "time": now,
    }


def mark_price_update(symbol: str, mark: float, now: int, kind: ContractKind) -> dict[str, Any]:
    """The ``markPriceUpdate`` push, with the current spec's ``ap`` and ``st`` fields."""
    return {
        "e": "markPriceUpdate",
        "E": now,
        "s": symbol,
        "p": fmt(mark),
        "i": fmt(mark),
        "P": fmt(mark),
        "r": "0.00010000",
        "ap": fmt(mark),
        "T": (now // 28_800_000 + 1) * 28_800_000,
        "st": 1 if kind is ContractKind.LINEAR else 2,
    }


# Multi-assets collateral the fake prices: (asset, mark symbol for its index or a fixed USD
# price, bidBuffer, autoExchangeBidBuffer). Buffers as Binance publishes them: stablecoins
# 0.01 %, majors 5 %, others 10 %.
ASSET_INDEX: tuple[tuple[str, str | float, float, float], ...] = (
    ("USDT", 0.99985, 0.0001, 0.0001),
    ("USDC", 0.99992, 0.0001, 0.0001),
    ("FDUSD", 0.99971, 0.0001, 0.0001),
    ("BTC", "BTCUSDT", 0.05, 0.025),
    ("ETH", "ETHUSDT", 0.05, 0.025),
    ("BNB", 600.25, 0.05, 0.025),
    ("SOL", 150.5, 0.1, 0.05),
)


def asset_index_body(marks: Mapping[str, float], now: int) -> list[dict[str, Any]]:
    """``GET /fapi/v1/assetIndex`` (every asset): ``bidRate = index·(1 − bidBuffer)``,
    ``askRate = index·(1 + askBuffer)``, the auto-exchange rates likewise."""
    out: list[dict[str, Any]] = []
    for asset, source, bid, auto in ASSET_INDEX:
        index = source if isinstance(source, float) else marks.get(source)
        if index is None:
            continue
        out.append(
            {
                "symbol": f"{asset}USD",
                "time": now,
                "index": f"{index:.8f}",
                "bidBuffer": f"{bid:.8f}",
                "askBuffer": f"{bid:.8f}",
                "bidRate": f"{index * (1 - bid):.8f}",
                "askRate": f"{index * (1 + bid):.8f}",
                "autoExchangeBidBuffer": f"{auto:.8f}",
                "autoExchangeAskBuffer": f"{auto:.8f}",
                "autoExchangeBidRate": f"{index * (1 - auto):.8f}",
                "autoExchangeAskRate": f"{index * (1 + auto):.8f}",
            }
        )
    return out

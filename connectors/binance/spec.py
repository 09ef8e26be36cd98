"""What differs between Binance USDⓈ-M and COIN-M futures: one frozen value, no subclasses.

Both products share the wire formats of their websocket events and nearly all REST shapes; they
differ in hosts, path prefixes (``/fapi`` vs ``/dapi``), the contract kind (linear vs inverse),
which endpoint versions exist, and the unit of leverage brackets (quote notional vs coin
quantity). Every parser, feed and the fake take a :class:`VenueSpec` instead of branching on a
product name.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules.types import ContractKind


@dataclass(frozen=True, slots=True)
class VenueSpec:
    venue: str
    """Our venue label, used in every event and metric (``binance-usdm`` / ``binance-coinm``)."""
    kind: ContractKind
    rest_base: str
    ws_base: str
    market_route: str
    """Route prefix for mark-price streams (the 2026 split: ``/market``); ``""`` for none."""
    private_route: str
    """Route prefix for user-data streams (``/private``); ``""`` for none."""
    time_path: str
    exchange_info_path: str
    premium_index_path: str
    listen_key_path: str
    account_path: str
    position_risk_path: str
    leverage_bracket_path: str
    dual_side_path: str
    multi_assets_path: str | None
    """``None`` where the product has no multi-assets mode (COIN-M)."""
    asset_index_path: str | None = None
    """Multi-assets mode collateral prices and haircuts (public); ``None`` without that mode."""
    account_config_path: str | None = None
    """Position mode and multi-assets mode in one call (weight 5, against 30 each apart)."""


USDM = VenueSpec(
    venue="binance-usdm",
    kind=ContractKind.LINEAR,
    rest_base="https://fapi.binance.com",
    ws_base="wss://fstream.binance.com",
    market_route="/market",
    private_route="/private",
    time_path="/fapi/v1/time",
    exchange_info_path="/fapi/v1/exchangeInfo",
    premium_index_path="/fapi/v1/premiumIndex",
    listen_key_path="/fapi/v1/listenKey",
    account_path="/fapi/v3/account",
    position_risk_path="/fapi/v3/positionRisk",
    leverage_bracket_path="/fapi/v1/leverageBracket",
    dual_side_path="/fapi/v1/positionSide/dual",
    multi_assets_path="/fapi/v1/multiAssetsMargin",
    asset_index_path="/fapi/v1/assetIndex",
    account_config_path="/fapi/v1/accountConfig",
)

# COIN-M has no published route split; its streams stay on the classic /ws and /stream paths.
COINM = VenueSpec(
    venue="binance-coinm",
    kind=ContractKind.INVERSE,
    rest_base="https://dapi.binance.com",
    ws_base="wss://dstream.binance.com",
    market_route="",
    private_route="",
    time_path="/dapi/v1/time",
    exchange_info_path="/dapi/v1/exchangeInfo",
    premium_index_path="/dapi/v1/premiumIndex",
    listen_key_path="/dapi/v1/listenKey",
    account_path="/dapi/v1/account",
    position_risk_path="/dapi/v1/positionRisk",
    leverage_bracket_path="/dapi/v2/leverageBracket",
    dual_side_path="/dapi/v1/positionSide/dual",
    multi_assets_path=None,
)

SPECS: dict[str, VenueSpec] = {USDM.venue: USDM, COINM.venue: COINM}


def spec_for(venue: str) -> VenueSpec:
    """The spec of a Binance venue label; ``KeyError`` names an unknown one."""
    return SPECS[venue]

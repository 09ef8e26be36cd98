"""Binance futures REST bodies the snapshots read: msgspec ``Struct``s with the venue's names.

The websocket shapes are in :mod:`.wire`; the conventions are the same. Only the fields the
parsers read are declared (unknown ones are skipped); decimals are ``Num`` and converted by
:func:`.handlers.num`; times are ``Ms``; a field passed through or looked up unchecked, or read
only on some rows (an open position's, say), is ``Unchecked`` (what Binance sends is in its
docstring), and required by the parser where it reads it. One body shape serves USDⓈ-M
(``/fapi``) and COIN-M (``/dapi``): where they differ, both spellings are declared.
"""

from __future__ import annotations

from msgspec import UNSET, Struct, UnsetType

from connectors.binance.wire import Ms, Num, Unchecked

# ruff: noqa: N815 - the venue's camelCase field names, kept as they are


class AccountAsset(Struct, frozen=True, gc=False):
    """One row of ``GET /fapi/v3/account`` (or ``/dapi/v1/account``) ``assets``."""

    asset: Unchecked
    """The margin asset (a string)."""
    crossWalletBalance: Num
    """Cross wallet balance: the cross pool's collateral before uPnL."""
    maintMargin: Unchecked = UNSET
    """The asset's maintenance margin (a decimal): read when there is no ``totalMaintMargin``."""


class AccountPosition(Struct, frozen=True, gc=False):
    """One row of the account's ``positions`` (closed rows are listed too)."""

    positionAmt: Num
    """Signed amount; a zero row is skipped, and nothing else of it is read."""
    symbol: Unchecked = UNSET
    """The contract (a string)."""
    positionSide: Unchecked = UNSET
    """``BOTH`` | ``LONG`` | ``SHORT``."""
    maintMargin: Unchecked = UNSET
    """The position's maintenance margin at the account answer's mark (a decimal)."""
    unrealizedProfit: Unchecked = None
    """uPnL at that mark (a decimal): tells whether the two answers saw the same marks."""


class Account(Struct, frozen=True, gc=False):
    """``GET /fapi/v3/account`` (USDⓈ-M) or ``/dapi/v1/account`` (COIN-M)."""

    assets: list[AccountAsset]
    """Per margin asset: wallet figures."""
    totalMaintMargin: Num | None = None
    """The account's maintenance margin: USDⓈ-M only (the USDT pool outside multi-assets)."""
    totalMarginBalance: Num | None = None
    """Wallet balance plus uPnL."""
    positions: list[AccountPosition] | None = None
    """Per position leg."""
    multiAssetsMargin: bool | None = None
    """Present in the v2 body only; v3 callers ask ``multiAssetsMargin`` separately."""


class PositionRisk(Struct, frozen=True, gc=False):
    """One row of ``GET /fapi/v3/positionRisk`` (or ``/dapi/v1/positionRisk``)."""

    symbol: Unchecked
    """The contract (a string)."""
    positionAmt: Num
    """Signed amount; a zero row contributes its mark only (nothing below is read)."""
    markPrice: Num
    """The mark this row was valued at."""
    positionSide: Unchecked = UNSET
    """``BOTH`` | ``LONG`` | ``SHORT``."""
    entryPrice: Unchecked = UNSET
    """Entry price (a decimal)."""
    maintMargin: Unchecked = None
    """Maintenance margin at ``markPrice`` (a decimal): USDⓈ-M v3 only."""
    unRealizedProfit: Unchecked = UNSET
    """uPnL at ``markPrice`` (a decimal)."""
    marginAsset: Unchecked = UNSET
    """The asset margining the position (a string)."""
    marginType: Unchecked = None
    """``cross`` | ``isolated``; dropped by v3 (then an isolated wallet says isolated)."""
    isolatedWallet: Unchecked = UNSET
    """Isolated margin (a decimal): non-zero for an open isolated position."""
    leverage: Unchecked = None
    """The symbol's leverage setting (a decimal)."""


class Bracket(Struct, frozen=True, gc=False):
    """One leverage bracket. USDⓈ-M sizes by quote notional, COIN-M by coin quantity (the docs
    also spell its floor ``qtylFloor``)."""

    bracket: Num
    """Its rank, 1 first."""
    initialLeverage: Num
    """The bracket's maximum leverage."""
    maintMarginRatio: Num
    """The maintenance margin rate."""
    cum: Num
    """The maintenance amount (deduction)."""
    notionalFloor: Unchecked = UNSET
    """USDⓈ-M: the bracket's lower bound (a decimal; the first spelling present is read)."""
    notionalCap: Unchecked = UNSET
    """USDⓈ-M: its upper bound."""
    qtyFloor: Unchecked = UNSET
    """COIN-M: the lower bound, in coin."""
    qtylFloor: Unchecked = UNSET
    """COIN-M, as the docs also spell it."""
    qtyCap: Unchecked = UNSET
    """COIN-M: the upper bound, in coin."""


class SymbolBrackets(Struct, frozen=True, gc=False):
    """One row of ``GET /fapi/v1/leverageBracket`` (or ``/dapi/v2/leverageBracket``)."""

    symbol: str
    """The contract."""
    brackets: list[Bracket]
    """Its brackets, in any order (sorted by ``bracket``)."""
    notionalCoef: Num | None = None
    """The account's scaling of the default brackets (present only when it differs)."""


class SymbolInfo(Struct, frozen=True, gc=False):
    """One row of ``GET …/exchangeInfo`` ``symbols``."""

    symbol: Unchecked
    """The contract (a string)."""
    marginAsset: Unchecked
    """The asset it settles in (a string)."""
    contractSize: Num | UnsetType = UNSET
    """COIN-M: USD per contract; absent on USDⓈ-M (1)."""


class ExchangeInfo(Struct, frozen=True, gc=False):
    """``GET …/exchangeInfo``."""

    symbols: list[SymbolInfo] | SymbolInfo
    """Every contract."""


class PremiumIndex(Struct, frozen=True, gc=False):
    """One row of ``GET …/premiumIndex``: the REST mark price."""

    markPrice: Num
    """``"0"`` (or empty) for a settling or delisted symbol: such a row is dropped."""
    symbol: Unchecked = UNSET
    """The contract: a string (checked)."""
    time: Unchecked = UNSET
    """The mark's time (``Ms``)."""
    indexPrice: Unchecked = None
    """The index price (a decimal); empty for some rows: read as absent."""


class AssetIndex(Struct, frozen=True, gc=False):
    """One row of ``GET /fapi/v1/assetIndex`` (multi-assets collateral)."""

    symbol: str
    """``<ASSET>USD``."""
    index: Num
    """USD per unit."""
    bidBuffer: Num
    """The haircut on a positive balance."""
    time: Ms


class DualSide(Struct, frozen=True, gc=False):
    """``GET …/positionSide/dual``."""

    dualSidePosition: bool
    """True in hedge mode."""


class MultiAssets(Struct, frozen=True, gc=False):
    """``GET /fapi/v1/multiAssetsMargin``."""

    multiAssetsMargin: bool
    """True in multi-assets mode."""


class ServerTime(Struct, frozen=True, gc=False):
    """``GET …/time``."""

    serverTime: Ms
    """The venue's clock, ms."""

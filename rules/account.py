"""Account-level margin figures: equity, aggregate maintenance and initial margin, health.

Units: a linear account counts in its quote currency (USD[T]); an inverse account (Binance COIN-M,
Bybit inverse) counts in the margin coin, and its ``balances`` hold that one coin.

Aggregates cover CROSS positions only. An isolated position has its own equity
(``isolated_margin + upnl``) against its own MM; its figures are reported per position and left
out of the account sums. ``balances`` are therefore the *cross* wallet balances.

Multi-assets mode (Binance): equity in USD = Σ positive balance·price·collateral_ratio +
Σ negative balance·price (losses are not haircut) + Σ cross uPnL. Stablecoins price at 1.0 unless
``asset_prices`` says otherwise; any other asset needs a price.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rules.errors import ModelInputError
from rules.model import MarginModel
from rules.types import ContractKind, MarginMode, Side, notional_of, upnl_of

VENUES = (
    "binance-usdm",
    "binance-coinm",
    "bybit",
    "okx",
    "hyperliquid",
    "dydx",
    "deribit",
)
# Venues whose native ratio is equity / MM (higher is safer); the rest use MM / equity.
EQUITY_OVER_MM_VENUES = frozenset({"okx"})
STABLECOINS = frozenset({"USDT", "USDC", "BUSD", "FDUSD", "USD", "DAI"})


@dataclass(frozen=True, slots=True)
class PositionInput:
    """One position (or one hedge-mode leg). ``qty`` is signed contracts, negative = short."""

    symbol: str
    side: Side
    qty: float
    entry_price: float
    mark_price: float
    kind: ContractKind
    contract_size: float
    model: MarginModel
    margin_mode: MarginMode = MarginMode.CROSS
    leverage: float | None = None
    isolated_margin: float | None = None

    @property
    def size(self) -> float:
        """``|qty|·contract_size``: coin for linear, USD for inverse contracts."""
        return abs(self.qty) * self.contract_size


@dataclass(frozen=True, slots=True)
class PositionFigures:
    notional: float
    upnl: float
    maintenance_margin: float
    initial_margin: float


@dataclass(frozen=True, slots=True)
class AccountInput:
    venue: str
    balances: Mapping[str, float]
    positions: Sequence[PositionInput]
    collateral_ratios: Mapping[str, float] = field(default_factory=dict)
    asset_prices: Mapping[str, float] = field(default_factory=dict)
    multi_asset: bool = False
    # Single-asset mode: the one asset whose balance backs the cross positions (Binance keeps
    # USDT and USDC pools apart; COIN-M one pool per coin). None: every balance counts.
    margin_asset: str | None = None


@dataclass(frozen=True, slots=True)
class AccountFigures:
    equity: float
    maintenance_margin: float
    initial_margin: float
    margin_ratio: float
    health: float
    positions: tuple[PositionFigures, ...]


def _check_price(p: PositionInput) -> None:
    if not (math.isfinite(p.mark_price) and p.mark_price > 0.0):
        raise ModelInputError(f"{p.symbol}: mark_price must be > 0, got {p.mark_price!r}")


def position_figures(p: PositionInput) -> PositionFigures:
    """Notional, uPnL, MM and IM of one position at its mark price."""
    _check_price(p)
    notional = notional_of(p.kind, p.qty, p.contract_size, p.mark_price)
    upnl = upnl_of(p.kind, p.qty, p.contract_size, p.entry_price, p.mark_price)
    size = p.size
    mm = p.model.maintenance(notional, size)
    im = p.model.initial(notional, size, p.leverage)
    return PositionFigures(notional, upnl, mm, im)


def asset_price(a: AccountInput, asset: str) -> float:
    """USD price of a collateral asset: ``asset_prices``, else 1.0 for a stablecoin."""
    price = a.asset_prices.get(asset)
    if price is None:
        if asset in STABLECOINS:
            return 1.0
        raise ModelInputError(f"asset_prices.{asset}: missing (needed to value balances.{asset})")
    return price


def collateral_value(a: AccountInput) -> float:
    """Wallet value that backs the cross positions, before uPnL.

    Single-asset mode: the balance itself (settlement currency; coin for inverse accounts) —
    only ``margin_asset``'s balance when it is set (0.0 if the account holds none of it).
    Multi-assets mode: USD value with haircuts on positive balances only.
    """
    if not a.multi_asset:
        if a.margin_asset is not None:
            return float(a.balances.get(a.margin_asset, 0.0))
        return math.fsum(a.balances.values())
    total: list[float] = []
    for asset, bal in a.balances.items():
        price = asset_price(a, asset)
        ratio = a.collateral_ratios.get(asset, 1.0) if bal > 0.0 else 1.0
        total.append(bal * price * ratio)
    return math.fsum(total)


def venue_ratio(venue: str, equity: float, mm: float) -> float:
    """The venue's own margin ratio: OKX ``equity/MM``; everyone else ``MM/equity``.

    ``inf`` where the quotient is undefined in the unsafe direction (no MM for OKX; equity <= 0
    with MM > 0 elsewhere); 0.0 for MM/equity with no MM.
    """
    if venue in EQUITY_OVER_MM_VENUES:
        return math.inf if mm == 0.0 else equity / mm
    if mm == 0.0:
        return 0.0
    return math.inf if equity <= 0.0 else mm / equity


def health_of(equity: float, mm: float) -> float:
    """``equity / MM``; ``inf`` when there is no maintenance margin."""
    return math.inf if mm == 0.0 else equity / mm


def cross_positions(positions: Iterable[PositionInput]) -> list[PositionInput]:
    return [p for p in positions if p.margin_mode is MarginMode.CROSS]


def account_figures(a: AccountInput) -> AccountFigures:
    """Every account figure, computed from scratch (the store's reference recomputation)."""
    figs = tuple(position_figures(p) for p in a.positions)
    cross = [f for p, f in zip(a.positions, figs, strict=True) if p.margin_mode is MarginMode.CROSS]
    equity = collateral_value(a) + math.fsum(f.upnl for f in cross)
    mm = math.fsum(f.maintenance_margin for f in cross)
    im = math.fsum(f.initial_margin for f in cross)
    return AccountFigures(
        equity=equity,
        maintenance_margin=mm,
        initial_margin=im,
        margin_ratio=venue_ratio(a.venue, equity, mm),
        health=health_of(equity, mm),
        positions=figs,
    )

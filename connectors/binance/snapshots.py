"""Pure parsers for Binance REST snapshot bodies (USDⓈ-M v3 and COIN-M v1 shapes).

The feed fetches ``account``, ``positionRisk``, ``leverageBracket``, ``exchangeInfo`` and the
account-mode endpoints, then hands the bodies here; :func:`account_snapshot` joins them into one
:class:`~connectors.events.AccountSnapshot` carrying the venue's own figures for the drift check,
all of ONE instant (the positionRisk answer's; see :mod:`.instant`).
Each body is read into the typed shapes of :mod:`.rest_wire`: a body given as bytes is decoded
straight into them; one the REST client already decoded is converted (``msgspec.convert``).
Errors raise :class:`~connectors.errors.VenueDataError` (reasons as in :mod:`.parse`, plus
``bad_brackets`` for a bracket table the margin rules reject).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from connectors.binance import instant
from connectors.binance import rest_wire as rw
from connectors.binance.handlers import MARGIN_MODES, SIDES, ms, need, num
from connectors.bounds import amount_ok, leverage_ok, name_ok, price_ok, qty_ok
from connectors.errors import VenueDataError
from connectors.events import (
    AccountSnapshot,
    Instrument,
    MarkPrice,
    PositionSnapshot,
    TierTableUpdate,
)
from rules.errors import TierTableError
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, MarginMode, Side

T = TypeVar("T")
Body = bytes | str | object
"""A raw response body, or one already decoded by the REST client."""


@contextmanager
def _venue_errors(venue: str) -> Iterator[None]:
    try:
        yield
    except VenueDataError:
        raise
    except KeyError as exc:
        raise VenueDataError(venue, "missing_field", str(exc)[:40]) from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise VenueDataError(venue, "bad_value") from exc


def _within(value: float, ok: Callable[[float], bool]) -> float:
    """``value`` when it is inside a bound of :mod:`connectors.bounds`; else ``ValueError``
    (``bad_value``): what reaches the store from a snapshot is held to the websocket's bounds."""
    if not ok(value):
        raise ValueError("out of bounds")
    return value


def _name(value: str) -> str:
    if not name_ok(value):
        raise ValueError("not a name")
    return value


# What msgspec raises on bytes it cannot read (see parse.py).
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_MISSING = "Object missing required field `"
# Where a body's own shape is wrong (not its values): the body, a row of it, the symbols list.
_SHAPE_PATH = re.compile(r"\$(\.symbols)?(\[\d+\])?")


def _rejection(exc: msgspec.ValidationError, venue: str) -> VenueDataError:
    text, _, where = str(exc).partition(" - at `")
    path = where[:-1] or "$"
    if text.startswith(_MISSING):
        return VenueDataError(venue, "missing_field", repr(text[len(_MISSING) : -1])[:40])
    if text.startswith(("Expected `object", "Expected `array")) and _SHAPE_PATH.fullmatch(path):
        return VenueDataError(venue, "bad_shape")
    return VenueDataError(venue, "bad_value")


def _decoded(body: Body, venue: str) -> Any:
    """A body as plain JSON values (for the per-row parsers and the shape checks)."""
    if isinstance(body, bytes | str):
        try:
            return msgspec.json.decode(body)
        except _UNREADABLE as exc:
            raise VenueDataError(venue, "bad_json") from exc
    return body


def _typed(body: object, venue: str, decoder: msgspec.json.Decoder[T]) -> T:
    """A body (bytes, or values the REST client decoded) read into its decoder's typed shape."""
    try:
        if isinstance(body, bytes | str):
            converted: T = decoder.decode(body)
        else:
            converted = msgspec.convert(body, decoder.type)
    except msgspec.ValidationError as exc:
        raise _rejection(exc, venue) from exc
    except _UNREADABLE as exc:
        raise VenueDataError(venue, "bad_json") from exc
    return converted


# One decoder per body shape (rows of the per-row parsers are converted from decoded values).
_ACCOUNT = msgspec.json.Decoder(rw.Account)
_RISK = msgspec.json.Decoder(list[rw.PositionRisk] | rw.PositionRisk)  # array, or one symbol's
_BRACKETS = msgspec.json.Decoder(rw.SymbolBrackets)
_EXCHANGE_INFO = msgspec.json.Decoder(rw.ExchangeInfo)
_PREMIUM_INDEX = msgspec.json.Decoder(rw.PremiumIndex)
_ASSET_INDEX = msgspec.json.Decoder(rw.AssetIndex)
_DUAL_SIDE = msgspec.json.Decoder(rw.DualSide)
_MULTI_ASSETS = msgspec.json.Decoder(rw.MultiAssets)
_SERVER_TIME = msgspec.json.Decoder(rw.ServerTime)


def _rows(doc: Any, venue: str) -> list[dict[str, Any]]:
    """Endpoints answer an array, or one object when a symbol was given."""
    rows = [doc] if type(doc) is dict else doc
    if type(rows) is not list or any(type(r) is not dict for r in rows):
        raise VenueDataError(venue, "bad_shape")
    return rows


# --- account ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """What ``GET /fapi/v3/account`` (or ``/dapi/v1/account``) contributes to a snapshot."""

    balances: Mapping[str, float]
    """Cross wallet balance per asset: the cross pool's collateral before uPnL."""
    total_maintenance_margin: float | None
    total_margin_balance: float | None
    position_maintenance_margin: Mapping[tuple[str, Side], float]
    multi_asset: bool | None
    """Present in the v2 body only; v3 callers ask ``multiAssetsMargin`` separately."""
    position_upnl: Mapping[tuple[str, Side], float] = field(default_factory=dict)
    """``unrealizedProfit`` per open position: tells whether this answer saw the same marks as
    the positionRisk one (uPnL moves with the mark)."""
    total_asset: str | None = None
    """The margin asset ``total_maintenance_margin`` covers outside multi-assets mode (USDⓈ-M:
    USDT only; COIN-M: the one pool in use); ``None`` when unknown."""


def parse_account_v3(body: Body, venue: str) -> AccountFacts:
    doc = _typed(body, venue, _ACCOUNT)
    with _venue_errors(venue):
        balances = {
            _name(a.asset): _within(num(a.crossWalletBalance), amount_ok) for a in doc.assets
        }
        total_asset: str | None
        if doc.totalMaintMargin is not None:
            total_mm: float | None = num(doc.totalMaintMargin)
            total_asset = "USDT"  # Binance: "only for USDT asset" outside multi-assets mode
        else:
            # COIN-M has no account-wide total: each margin coin is its own cross pool, and a
            # sum over different coins means nothing. Report it only for a single pool.
            used = [(a.asset, num(need(a.maintMargin, "maintMargin"))) for a in doc.assets]
            used = [(asset, x) for asset, x in used if x != 0.0]
            total_mm = sum(x for _, x in used) if len(used) <= 1 else None
            total_asset = used[0][0] if len(used) == 1 else None
        mb = doc.totalMarginBalance
        position_mm: dict[tuple[str, Side], float] = {}
        position_upnl: dict[tuple[str, Side], float] = {}
        for p in doc.positions or ():
            if num(p.positionAmt) != 0.0:
                key = (need(p.symbol, "symbol"), SIDES[need(p.positionSide, "positionSide")])
                position_mm[key] = num(need(p.maintMargin, "maintMargin"))
                if p.unrealizedProfit is not None:
                    position_upnl[key] = num(p.unrealizedProfit)
        return AccountFacts(
            balances,
            total_mm,
            None if mb is None else num(mb),
            position_mm,
            doc.multiAssetsMargin,
            position_upnl,
            total_asset,
        )


# --- positions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionFacts:
    positions: tuple[PositionSnapshot, ...]
    marks: Mapping[str, float]
    """The venue's mark per symbol at the snapshot instant (``markPrice`` of each row)."""
    maintenance_margin: Mapping[tuple[str, Side], float] | None = None
    """``maintMargin`` per open position, valued at ``marks`` (same answer); ``None`` when the
    rows do not carry it (COIN-M ``/dapi/v1/positionRisk``)."""
    upnl: Mapping[tuple[str, Side], float] = field(default_factory=dict)
    """``unRealizedProfit`` per open position, at ``marks``."""
    margin_assets: Mapping[tuple[str, Side], str] = field(default_factory=dict)
    """``marginAsset`` per open position, where the row names it."""


def _margin_mode(row: rw.PositionRisk) -> MarginMode:
    if row.marginType is not None:
        return MARGIN_MODES[row.marginType]
    # v3 dropped marginType; an open isolated position always has a non-zero isolated wallet.
    wallet = "0" if isinstance(row.isolatedWallet, msgspec.UnsetType) else row.isolatedWallet
    return MarginMode.ISOLATED if num(wallet) != 0.0 else MarginMode.CROSS


def parse_position_risk_v3(body: Body, venue: str, account: str, *, event_ms: int) -> PositionFacts:
    """Open positions (zero rows dropped) and the marks they were valued at."""
    rows: list[rw.PositionRisk] | rw.PositionRisk = _typed(body, venue, _RISK)
    positions: list[PositionSnapshot] = []
    marks: dict[str, float] = {}
    mm: dict[tuple[str, Side], float] = {}
    every_row_has_mm = True
    upnl: dict[tuple[str, Side], float] = {}
    assets: dict[tuple[str, Side], str] = {}
    with _venue_errors(venue):
        for row in rows if isinstance(rows, list) else [rows]:
            qty = _within(num(row.positionAmt), qty_ok)
            symbol = _name(row.symbol)
            mark = num(row.markPrice)
            if price_ok(mark):  # a symbol not trading says 0: no mark
                marks[symbol] = mark
            if qty == 0.0:
                continue
            side = SIDES[need(row.positionSide, "positionSide")]
            key = (symbol, side)
            if row.maintMargin is None:
                every_row_has_mm = False
            else:
                mm[key] = num(row.maintMargin)
            if not isinstance(row.unRealizedProfit, msgspec.UnsetType):
                upnl[key] = num(row.unRealizedProfit)
            if not isinstance(row.marginAsset, msgspec.UnsetType):
                assets[key] = row.marginAsset
            mode = _margin_mode(row)
            positions.append(
                PositionSnapshot(
                    venue,
                    account,
                    symbol,
                    side,
                    qty,
                    _within(num(need(row.entryPrice, "entryPrice")), price_ok),
                    event_ms,
                    margin_mode=mode,
                    leverage=None
                    if row.leverage is None
                    else _within(num(row.leverage), leverage_ok),
                    isolated_margin=_within(
                        num(need(row.isolatedWallet, "isolatedWallet")), amount_ok
                    )
                    if mode is MarginMode.ISOLATED
                    else None,
                )
            )
    # All or nothing: a partial set would leave some positions compared at another instant.
    return PositionFacts(tuple(positions), marks, mm if every_row_has_mm else None, upnl, assets)


def account_snapshot(
    venue: str,
    account: str,
    facts: AccountFacts,
    positions: PositionFacts,
    *,
    multi_asset: bool,
    event_ms: int,
    collateral_ratios: Mapping[str, float] | None = None,
) -> AccountSnapshot:
    """Join the account and positionRisk answers; the venue's figures ride along for drift."""
    return AccountSnapshot(
        venue,
        account,
        dict(facts.balances),
        positions.positions,
        event_ms,
        collateral_ratios=dict(collateral_ratios or {}),
        multi_asset=multi_asset,
        reported=instant.venue_figures(facts, positions, multi_asset=multi_asset),
    )


# --- brackets, instruments, marks, modes -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class BracketSet:
    """One symbol's leverage brackets as the venue published them for this account."""

    symbol: str
    tiers: tuple[TierSpec, ...]
    notional_coef: float | None
    """The account's scaling of the default brackets (present only when it differs)."""


def _first(*values: T | msgspec.UnsetType, name: str) -> T:
    """The first of a field's spellings the row has."""
    for value in values:
        if not isinstance(value, msgspec.UnsetType):
            return value
    raise KeyError(name)


def decode_leverage_brackets(
    body: Body, venue: str, errors: list[VenueDataError] | None = None
) -> list[BracketSet]:
    """USDⓈ-M brackets size by ``notionalFloor/Cap`` (quote); COIN-M by ``qtyFloor/Cap`` (coin;
    the docs also spell it ``qtylFloor``).

    With ``errors`` given, a malformed symbol row is skipped and its error appended there
    (one symbol's table must not cost the account every other table); without, it raises."""
    doc = _decoded(body, venue)
    out: list[BracketSet] = []
    for row in _rows(doc, venue):
        try:
            out.append(_bracket_set(_typed(row, venue, _BRACKETS), venue))
        except VenueDataError as exc:
            if errors is None:
                raise
            # The detail names the symbol when the row has one (the feed keys on it).
            symbol = row.get("symbol")
            errors.append(
                VenueDataError(venue, exc.reason, symbol[:40] if type(symbol) is str else "")
            )
    return out


def _bracket_set(row: rw.SymbolBrackets, venue: str) -> BracketSet:
    with _venue_errors(venue):
        tiers = tuple(
            TierSpec(
                floor=num(_first(b.notionalFloor, b.qtyFloor, b.qtylFloor, name="notionalFloor")),
                cap=num(_first(b.notionalCap, b.qtyCap, name="notionalCap")),
                mmr=num(b.maintMarginRatio),
                deduction=num(b.cum),
                max_leverage=num(b.initialLeverage),
            )
            for b in sorted(row.brackets, key=lambda b: num(b.bracket))
        )
        coef = row.notionalCoef
        return BracketSet(row.symbol, tiers, None if coef is None else num(coef))


def tier_table_updates(
    sets: list[BracketSet],
    venue: str,
    account: str | None,
    *,
    event_ms: int = 0,
    errors: list[VenueDataError] | None = None,
) -> list[TierTableUpdate]:
    """One validated table per symbol. With ``errors`` given, a table the margin rules reject
    is left out and its ``bad_brackets`` error (detail: the symbol) appended; else it raises."""
    out: list[TierTableUpdate] = []
    for s in sets:
        try:
            table = TierTable.from_tiers(s.symbol, s.tiers)
        except TierTableError as exc:
            err = VenueDataError(venue, "bad_brackets", s.symbol[:40])
            if errors is None:
                raise err from exc
            errors.append(err)
            continue
        out.append(TierTableUpdate(venue, s.symbol, table, account, event_ms))
    return out


def parse_leverage_brackets(
    body: Body, venue: str, account: str | None, *, event_ms: int = 0
) -> list[TierTableUpdate]:
    """``GET /fapi/v1/leverageBracket`` (or ``/dapi/v2/…``) → one validated table per symbol."""
    return tier_table_updates(
        decode_leverage_brackets(body, venue), venue, account, event_ms=event_ms
    )


def parse_exchange_info(body: Body, venue: str, kind: ContractKind) -> list[Instrument]:
    """Contract facts per symbol: COIN-M's ``contractSize`` (USD per contract); 1 for USDⓈ-M."""
    symbols = _typed(body, venue, _EXCHANGE_INFO).symbols
    with _venue_errors(venue):
        return [
            Instrument(
                venue,
                row.symbol,
                kind,
                num(1 if isinstance(row.contractSize, msgspec.UnsetType) else row.contractSize),
                row.marginAsset,
            )
            for row in (symbols if isinstance(symbols, list) else [symbols])
        ]


def parse_premium_index(
    body: Body, venue: str, errors: list[VenueDataError] | None = None
) -> list[MarkPrice]:
    """``GET …/premiumIndex``: the REST mark-price snapshot (object or array).

    Rows without a positive mark (settling, delisted) carry no mark and are dropped. With
    ``errors`` given, a malformed row is skipped and its error appended there; else it raises.
    """
    doc = _decoded(body, venue)
    out: list[MarkPrice] = []
    for row in _rows(doc, venue):
        try:
            r = _typed(row, venue, _PREMIUM_INDEX)
            with _venue_errors(venue):
                mark = num(r.markPrice)
                if mark > 0.0:
                    symbol = need(r.symbol, "symbol")
                    if type(symbol) is not str:
                        raise ValueError("symbol")
                    index = None if r.indexPrice in (None, "") else num(r.indexPrice)
                    out.append(MarkPrice(venue, symbol, mark, ms(need(r.time, "time")), index))
        except VenueDataError as exc:
            if errors is None:
                raise
            errors.append(exc)
    return out


@dataclass(frozen=True, slots=True)
class AssetIndex:
    """One multi-assets collateral asset: ``GET /fapi/v1/assetIndex`` row ``<ASSET>USD``."""

    asset: str
    price: float
    """``index``: USD per unit."""
    collateral_ratio: float
    """``1 − bidBuffer``: Binance values a positive balance at ``bidRate = index·(1 −
    bidBuffer)`` (the docs' example: 1.92957370 · 0.9 = 1.73661633)."""
    event_ms: int


def parse_asset_index(
    body: Body, venue: str, errors: list[VenueDataError] | None = None
) -> dict[str, AssetIndex]:
    """``GET /fapi/v1/assetIndex`` → per asset (``BNBUSD`` → ``BNB``). With ``errors`` given,
    a malformed row is skipped and its error appended there; else it raises."""
    doc = _decoded(body, venue)
    out: dict[str, AssetIndex] = {}
    for row in _rows(doc, venue):
        try:
            r = _typed(row, venue, _ASSET_INDEX)
            with _venue_errors(venue):
                symbol = r.symbol
                if not symbol.endswith("USD") or len(symbol) < 4:
                    raise ValueError("asset index symbol")
                price = num(r.index)
                buffer = num(r.bidBuffer)
                if not (price > 0.0 and 0.0 <= buffer <= 1.0):
                    raise ValueError("asset index out of range")
                asset = symbol.removesuffix("USD")
                out[asset] = AssetIndex(asset, price, 1.0 - buffer, ms(r.time))
        except VenueDataError as exc:
            if errors is None:
                raise
            errors.append(exc)
    return out


def parse_dual_side(body: Body, venue: str) -> bool:
    """``GET …/positionSide/dual`` → True in hedge mode."""
    try:
        return _typed(body, venue, _DUAL_SIDE).dualSidePosition
    except VenueDataError as exc:
        if exc.reason == "bad_json":
            raise
        raise VenueDataError(venue, "bad_value") from exc  # not a flag, whatever is wrong


def parse_multi_assets(body: Body, venue: str) -> bool:
    """``GET /fapi/v1/multiAssetsMargin`` → True in multi-assets mode."""
    try:
        return _typed(body, venue, _MULTI_ASSETS).multiAssetsMargin
    except VenueDataError as exc:
        if exc.reason == "bad_json":
            raise
        raise VenueDataError(venue, "bad_value") from exc  # not a flag, whatever is wrong


def parse_server_time(body: Body, venue: str) -> int:
    doc = _typed(body, venue, _SERVER_TIME)
    with _venue_errors(venue):
        return ms(doc.serverTime)

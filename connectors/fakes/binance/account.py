"""A scriptable Binance futures account: the fake venue's source of truth.

Tests and the demo drive it (``order``, ``funding``, ``liquidate``, ``adl``, ``margin_call``,
``set_leverage``, ``set_multi_assets``, ``deposit``); each action changes the state and pushes
the user-data events Binance would push, shaped exactly like ``ws-samples/binance-usdm``. The
account answers REST with its own figures, ``totalMaintMargin`` included, computed with Binance's
formula: per position ``notional·mmr − cum`` of the bracket holding the notional (lower bound
inclusive), notional ``|qty|·mark`` (USDⓈ-M) or ``|qty|·contractSize/mark`` coin (COIN-M).

All positions are cross-margined; hedge mode keeps a LONG and a SHORT leg per symbol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rules.types import ContractKind

Payload = dict[str, Any]
Push = Callable[[Payload], None]


def fmt(x: float) -> str:
    """A decimal string that round-trips to the same float (Binance sends decimal strings)."""
    return str(np.format_float_positional(x, unique=True, trim="-"))


@dataclass(frozen=True, slots=True)
class Bracket:
    floor: float
    cap: float
    mmr: float
    cum: float
    max_leverage: int


@dataclass(frozen=True, slots=True)
class Contract:
    symbol: str
    margin_asset: str
    contract_size: float
    brackets: tuple[Bracket, ...]


@dataclass(slots=True)
class FakePosition:
    symbol: str
    side: str  # BOTH, LONG or SHORT: Binance's positionSide
    qty: float = 0.0  # signed
    entry: float = 0.0
    update_ms: int = 0


@dataclass(slots=True)
class _Market:
    """What the venue shares with every account: contracts, marks, clock, and the push hook."""

    kind: ContractKind
    contracts: Mapping[str, Contract]
    marks: Mapping[str, float]
    now_ms: Callable[[], int]
    push: Push


class FakeAccount:
    def __init__(
        self,
        name: str,
        *,
        api_key: str,
        secret: str,
        balances: Mapping[str, float],
        hedge: bool = False,
        multi_assets: bool = False,
        fee_rate: float = 0.0004,
        notional_coef: float | None = None,
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.secret = secret
        self.balances = dict(balances)
        self.hedge = hedge
        self.multi_assets = multi_assets
        self.fee_rate = fee_rate
        self.notional_coef = notional_coef
        self.leverage: dict[str, int] = {}
        self.positions: dict[tuple[str, str], FakePosition] = {}
        self._market: _Market | None = None
        self._order_id = 8886774
        self._trade_id = 12345678

    def bind(self, market: _Market) -> None:
        self._market = market

    @property
    def market(self) -> _Market:
        assert self._market is not None, "add the account to a FakeBinance first"
        return self._market

    # --- Binance's own figures -----------------------------------------------------------------

    def brackets(self, symbol: str) -> tuple[Bracket, ...]:
        base = self.market.contracts[symbol].brackets
        c = self.notional_coef
        if c is None:
            return base
        return tuple(
            Bracket(b.floor * c, b.cap * c, b.mmr, b.cum * c, b.max_leverage) for b in base
        )

    def notional(self, p: FakePosition) -> float:
        mark = self.market.marks[p.symbol]
        size = abs(p.qty) * self.market.contracts[p.symbol].contract_size
        return size * mark if self.market.kind is ContractKind.LINEAR else size / mark

    def upnl(self, p: FakePosition) -> float:
        mark = self.market.marks[p.symbol]
        return _pnl(self.market.kind, self._cs(p.symbol), p.qty, p.entry, mark)

    def maint_margin(self, p: FakePosition) -> float:
        notional = self.notional(p)
        chosen = self.brackets(p.symbol)[0]
        for b in self.brackets(p.symbol):
            if notional >= b.floor:
                chosen = b
        return notional * chosen.mmr - chosen.cum

    def open_positions(self) -> list[FakePosition]:
        return [p for p in self.positions.values() if p.qty != 0.0]

    def total_maint_margin(self, asset: str | None = None) -> float:
        return sum(
            self.maint_margin(p)
            for p in self.open_positions()
            if asset is None or self._asset(p.symbol) == asset
        )

    def unrealized(self, asset: str) -> float:
        return sum(self.upnl(p) for p in self.open_positions() if self._asset(p.symbol) == asset)

    # --- scripted actions ----------------------------------------------------------------------

    def order(
        self,
        symbol: str,
        side: str,
        qty: float,
        *,
        price: float | None = None,
        position_side: str | None = None,
        client_id: str = "mw-test",
        execution: str = "TRADE",
    ) -> None:
        """A market order that fills at once (at ``price``, default the mark)."""
        m = self.market
        ps = position_side or ("BOTH" if not self.hedge else ("LONG" if side == "BUY" else "SHORT"))
        if (ps == "BOTH") == self.hedge:
            raise ValueError(f"positionSide {ps} does not match the account's position mode")
        fill_price = m.marks[symbol] if price is None else price
        pos = self.positions.setdefault((symbol, ps), FakePosition(symbol, ps))
        delta = qty if side == "BUY" else -qty
        if ps == "LONG":
            delta = max(delta, -pos.qty)  # a hedge leg never flips through zero
        elif ps == "SHORT":
            delta = min(delta, -pos.qty)
        if delta == 0.0:
            return  # closing an empty hedge leg: Binance rejects it (ReduceOnly), no events
        realized = self._fill(pos, delta, fill_price)
        asset = self._asset(symbol)
        fee = (
            abs(delta)
            * self._cs(symbol)
            * (fill_price if m.kind is ContractKind.LINEAR else 1.0 / fill_price)
            * self.fee_rate
        )
        self.balances[asset] = self.balances.get(asset, 0.0) + realized - fee
        now = m.now_ms()
        pos.update_ms = now
        self._order_id += 1
        self._trade_id += 1
        m.push(self._account_update("ORDER", now, [asset], [pos]))
        m.push(
            {
                "e": "ORDER_TRADE_UPDATE",
                "T": now,
                "E": now,
                "o": {
                    "s": symbol, "c": client_id, "S": side, "o": "MARKET", "f": "GTC",
                    "q": fmt(abs(delta)), "p": "0", "ap": fmt(fill_price), "sp": "0",
                    "x": execution, "X": "FILLED", "i": self._order_id, "l": fmt(abs(delta)),
                    "z": fmt(abs(delta)), "L": fmt(fill_price), "N": asset, "n": fmt(fee),
                    "T": now, "t": self._trade_id, "b": "0", "a": "0", "m": False,
                    "R": False, "wt": "CONTRACT_PRICE", "ot": "MARKET", "ps": ps,
                    "cp": False, "rp": fmt(realized), "pP": False, "si": 0, "ss": 0,
                    "V": "EXPIRE_TAKER",
                },
            }
        )  # fmt: skip

    def funding(self, symbol: str, rate: float) -> None:
        """Pay funding on ``symbol``: longs pay a positive rate. Cross: only B is pushed."""
        m = self.market
        asset = self._asset(symbol)
        paid = 0.0
        for p in self.open_positions():
            if p.symbol == symbol:
                paid -= (1.0 if p.qty > 0 else -1.0) * self.notional(p) * rate
        if paid == 0.0:
            return
        self.balances[asset] = self.balances.get(asset, 0.0) + paid
        update = self._account_update("FUNDING_FEE", m.now_ms(), [asset], [])
        update["a"]["S"] = symbol
        m.push(update)

    def liquidate(self, symbol: str | None = None) -> None:
        """The venue closes positions at the mark: ``autoclose-`` orders, execution CALCULATED."""
        for p in list(self.open_positions()):
            if symbol is None or p.symbol == symbol:
                side = "SELL" if p.qty > 0 else "BUY"
                cid = f"autoclose-{self.market.now_ms()}"
                self.order(p.symbol, side, abs(p.qty), position_side=p.side, client_id=cid,
                           execution="CALCULATED")  # fmt: skip

    def adl(self, symbol: str, qty: float | None = None) -> None:
        """Auto-deleveraging: the venue reduces the position (``adl_autoclose``)."""
        for p in list(self.open_positions()):
            if p.symbol == symbol:
                side = "SELL" if p.qty > 0 else "BUY"
                size = abs(p.qty) if qty is None else min(qty, abs(p.qty))
                self.order(symbol, side, size, position_side=p.side, client_id="adl_autoclose")

    def margin_call(self) -> None:
        m = self.market
        asset = next(iter(self.balances))
        m.push(
            {
                "e": "MARGIN_CALL",
                "E": m.now_ms(),
                "cw": fmt(self.balances[asset]),
                "p": [
                    {
                        "s": p.symbol, "ps": p.side, "pa": fmt(p.qty), "mt": "CROSSED",
                        "iw": "0", "mp": fmt(m.marks[p.symbol]), "up": fmt(self.upnl(p)),
                        "mm": fmt(self.maint_margin(p)),
                    }
                    for p in self.open_positions()
                ],
            }
        )  # fmt: skip

    def set_leverage(self, symbol: str, leverage: int) -> None:
        self.leverage[symbol] = leverage
        now = self.market.now_ms()
        self.market.push(
            {"e": "ACCOUNT_CONFIG_UPDATE", "E": now, "T": now, "ac": {"s": symbol, "l": leverage}}
        )

    def set_multi_assets(self, enabled: bool) -> None:
        self.multi_assets = enabled
        now = self.market.now_ms()
        self.market.push({"e": "ACCOUNT_CONFIG_UPDATE", "E": now, "T": now, "ai": {"j": enabled}})

    def deposit(self, asset: str, amount: float) -> None:
        self.balances[asset] = self.balances.get(asset, 0.0) + amount
        self.market.push(self._account_update("DEPOSIT", self.market.now_ms(), [asset], []))

    # --- internals -----------------------------------------------------------------------------

    def _cs(self, symbol: str) -> float:
        return self.market.contracts[symbol].contract_size

    def _asset(self, symbol: str) -> str:
        return self.market.contracts[symbol].margin_asset

    def _fill(self, pos: FakePosition, delta: float, price: float) -> float:
        """Move the position; returns the realised PnL (entry is the average open price)."""
        kind, cs = self.market.kind, self._cs(pos.symbol)
        q, e = pos.qty, pos.entry
        new = round(q + delta, 8)
        if q == 0.0 or (q > 0) == (delta > 0):
            if kind is ContractKind.LINEAR:
                pos.entry = (abs(q) * e + abs(delta) * price) / abs(new)
            else:  # inverse entry averages in 1/price (contracts are fixed USD amounts)
                pos.entry = abs(new) / (abs(q) / e + abs(delta) / price) if q else price
            pos.qty = new
            return 0.0
        closing = min(abs(delta), abs(q))
        realized = _pnl(kind, cs, closing if q > 0 else -closing, e, price)
        if new == 0.0:
            pos.entry = 0.0
        elif (new > 0) != (q > 0):
            pos.entry = price
        pos.qty = new
        return realized

    def _account_update(
        self, reason: str, now: int, assets: list[str], positions: list[FakePosition]
    ) -> Payload:
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "a": {
                "m": reason,
                "B": [
                    {"a": a, "wb": fmt(self.balances[a]), "cw": fmt(self.balances[a]), "bc": "0"}
                    for a in assets
                ],
                "P": [
                    {
                        "s": p.symbol, "pa": fmt(p.qty), "ep": fmt(p.entry), "bep": fmt(p.entry),
                        "cr": "0", "up": fmt(self.upnl(p) if p.qty else 0.0), "mt": "cross",
                        "iw": "0", "ps": p.side,
                    }
                    for p in positions
                ],
            },
        }  # fmt: skip


def _pnl(kind: ContractKind, cs: float, qty: float, entry: float, price: float) -> float:
    if qty == 0.0:
        return 0.0
    if kind is ContractKind.LINEAR:
        return qty * cs * (price - entry)
    return qty * cs * (1.0 / entry - 1.0 / price)


@dataclass(slots=True)
class Accounts:
    """The venue's accounts by API key (REST auth) and by name (scripts)."""

    by_key: dict[str, FakeAccount] = field(default_factory=dict)
    by_name: dict[str, FakeAccount] = field(default_factory=dict)

    def add(self, account: FakeAccount) -> None:
        self.by_key[account.api_key] = account
        self.by_name[account.name] = account

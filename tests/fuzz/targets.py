"""The venues the harness fuzzes: one row each, naming its samples and its account context.

A venue plugs in here and nowhere else: its key (the harness asks
:func:`connectors.venues.frame_parser` for the parser), the frames mutations start from (its
recorded ``ws-samples``, or frames built by its own encoders), and the events that put a store in
a state worth attacking (instruments, tier tables, marks and an account snapshot holding
positions, so that private frames land on an account that has something to lose).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from connectors.events import (
    AccountSnapshot,
    Event,
    Instrument,
    MarkPrice,
    PositionSnapshot,
    TierTableUpdate,
)
from connectors.sim import protocol as sim
from connectors.venues import DECODE_ACCOUNT
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, MarginMode, Side

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "ws-samples"
T0 = 1_700_000_000_000
"""Event time of the context and generated frames (inside connectors.bounds' window)."""


@dataclass(frozen=True, slots=True)
class Target:
    venue: str
    account: str
    """The account private frames land on (the parser's, for ``frame_parser`` venues)."""
    samples: Callable[[], list[bytes]]
    """The frames mutations start from: valid frames of the venue."""
    context: Callable[[], list[Event]]
    """Applied to each fresh store before the frames."""


def _tiers(symbol: str) -> TierTable:
    return TierTable.from_tiers(
        symbol,
        [
            TierSpec(0, 50_000, 0.004, 0, 125),
            TierSpec(50_000, 600_000, 0.005, 50, 100),
            TierSpec(600_000, 1e12, 0.01, 3_050, 50),
        ],
    )


def _market(venue: str, kind: ContractKind, marks: dict[str, tuple[float, str]]) -> list[Event]:
    """Instrument, tier table and first mark of each symbol (``marks``: mark, settle asset)."""
    size = 1.0 if kind is ContractKind.LINEAR else 100.0
    out: list[Event] = []
    for symbol, (mark, settle) in marks.items():
        out.append(Instrument(venue, symbol, kind, size, settle))
        out.append(TierTableUpdate(venue, symbol, _tiers(symbol)))
        out.append(MarkPrice(venue, symbol, mark, T0))
    return out


def _leg(venue: str, account: str, leg: tuple[str, Side, float, float]) -> PositionSnapshot:
    symbol, side, qty, entry = leg
    return PositionSnapshot(venue, account, symbol, side, qty, entry, T0, MarginMode.CROSS, 20.0)


# --- Binance USDⓈ-M and COIN-M: the recorded samples, and the frames no sample shows ------------


def _binance_samples(symbol: str, asset: str) -> Callable[[], list[bytes]]:
    def samples() -> list[bytes]:
        recorded = [
            orjson.dumps(orjson.loads(p.read_bytes()))  # one line, as the socket sends it
            for p in sorted((SAMPLES / "binance-usdm").glob("ws_*.json"))
            if p.name != "ws_subscribe_request.json"  # ours, not the venue's
        ]
        generated = [
            {"e": "ACCOUNT_CONFIG_UPDATE", "E": T0, "T": T0, "ac": {"s": symbol, "l": 25}},
            {"e": "ACCOUNT_CONFIG_UPDATE", "E": T0, "T": T0, "ai": {"j": True}},
            {"e": "ACCOUNT_UPDATE", "E": T0, "T": T0,
             "a": {"m": "ORDER", "B": [{"a": asset, "wb": "5000", "cw": "5000", "bc": "0"}],
                   "P": [{"s": symbol, "pa": "-0.5", "ep": "60000.5", "bep": "0", "cr": "0",
                          "up": "1.5", "mt": "cross", "iw": "0", "ps": "BOTH"}]}},
            {"e": "ORDER_TRADE_UPDATE", "E": T0, "T": T0,
             "o": {"s": symbol, "c": "autoclose-1", "S": "SELL", "x": "CALCULATED", "X": "FILLED",
                   "i": 7, "l": "0.5", "L": "59000.5", "ps": "BOTH", "rp": "-12.5", "t": 9}},
            {"stream": f"{symbol.lower()}@markPrice@1s",
             "data": {"e": "markPriceUpdate", "E": T0, "s": symbol, "p": "59000.5",
                      "i": "59001.0", "P": "59000", "r": "0.0001", "T": T0}},
            [{"e": "markPriceUpdate", "E": T0, "s": s, "p": p, "i": p, "P": p, "r": "0", "T": T0}
             for s, p in ((symbol, "58000.25"), ("ETHUSDT", "2999.5"), ("XRPUSDT", "0.5"))],
        ]  # fmt: skip
        return recorded + [orjson.dumps(doc) for doc in generated]

    return samples


def _binance_context(venue: str, kind: ContractKind, symbol: str, asset: str) -> list[Event]:
    marks = {symbol: (60_000.0, asset), "ETHUSDT": (3_000.0, asset), "BTCUSDT": (60_000.0, asset)}
    acct = DECODE_ACCOUNT
    legs = (
        _leg(venue, acct, (symbol, Side.BOTH, 0.5, 59_000.0)),
        _leg(venue, acct, ("ETHUSDT", Side.LONG, 2.0, 3_100.0)),
        _leg(venue, acct, ("BTCUSDT", Side.SHORT, -0.1, 61_000.0)),
    )
    balance = {asset: 20_000.0 if kind is ContractKind.LINEAR else 2.0}
    return [*_market(venue, kind, marks), AccountSnapshot(venue, acct, balance, legs, T0)]


# --- sim: frames built by the venue's own encoders ----------------------------------------------


def _sim_samples() -> list[bytes]:
    long = sim.position_wire("BTC-PERP", Side.LONG, 1.5, 60_000.0)
    isolated = sim.position_wire("ETH-PERP", Side.SHORT, -3.0, 3_000.0, MarginMode.ISOLATED)
    return [
        sim.encode_mark("BTC-PERP", 60_100.5, T0),
        sim.encode_mark("ETH-PERP", 2_990.25, T0 + 1),
        sim.encode_marks([("BTC-PERP", 59_900.0), ("ETH-PERP", 3_010.0), ("SOL-PERP", 150.0)], T0),
        b'{"e":"mark","s":"BTC-PERP","p":"60000.5","i":"60001.2","E":%d}' % T0,
        sim.encode_position("alice", long | {"lev": "20"}, T0 + 2),
        sim.encode_position("alice", isolated | {"im": "450.5"}, T0 + 3),
        sim.encode_balance("alice", "USDT", 15_000.0, T0 + 4),
        sim.encode_expired("alice", T0 + 5),
        b'{"e":"subscribed"}',
        b'{"e":"pong","E":%d}' % T0,
    ]


def _sim_context() -> list[Event]:
    venue = sim.VENUE
    marks = {"BTC-PERP": (60_000.0, "USDT"), "ETH-PERP": (3_000.0, "USDT")}
    legs = (
        _leg(venue, "alice", ("BTC-PERP", Side.BOTH, 1.0, 59_000.0)),
        _leg(venue, "alice", ("ETH-PERP", Side.BOTH, -4.0, 3_050.0)),
    )
    snap = AccountSnapshot(venue, "alice", {"USDT": 20_000.0}, legs, T0)
    return [*_market(venue, ContractKind.LINEAR, marks), snap]


TARGETS: dict[str, Target] = {
    "binance-usdm": Target(
        "binance-usdm",
        DECODE_ACCOUNT,
        _binance_samples("BTCUSDT", "USDT"),
        lambda: _binance_context("binance-usdm", ContractKind.LINEAR, "BTCUSDT", "USDT"),
    ),
    "binance-coinm": Target(
        "binance-coinm",
        DECODE_ACCOUNT,
        _binance_samples("BTCUSD_PERP", "BTC"),
        lambda: _binance_context("binance-coinm", ContractKind.INVERSE, "BTCUSD_PERP", "BTC"),
    ),
    "sim": Target("sim", "alice", _sim_samples, _sim_context),
}
"""Venue key → its row. A new venue adds one."""

"""``marginwatch calc SNAPSHOT``: one account snapshot's margin figures, offline.

Prints JSON on stdout: the account's equity, maintenance and initial margin, venue-native margin
ratio, health and liquidation distance, then every position in input order with its liquidation
price. ``--shock TARGET=MOVE`` re-prices a symbol's mark or an asset's price first (a what-if).
Infinite or non-existent figures print as ``null`` (see ``monitor/schemas/snapshot.schema.json``).
"""

from __future__ import annotations

import argparse
import math
import re
import sys

import orjson

from monitor.commands.snapshot import Snapshot, apply_shock, read_snapshot
from monitor.errors import UsageError
from rules.account import account_figures
from rules.errors import MarginError
from rules.liquidation import liquidation_distance, liquidation_prices

_SHOCK = re.compile(r"(?P<target>[^=]+)=(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?P<pct>%?)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("snapshot", help="account snapshot JSON file, or - for stdin")
    parser.add_argument(
        "--shock",
        action="append",
        default=[],
        metavar="SYMBOL_OR_ASSET=MOVE",
        help="re-price before computing: BTCUSDT=-10%%, BTC=-0.1, ETHUSDT=+5%% (repeatable)",
    )
    parser.add_argument("--pretty", action="store_true", help="indent the JSON output")


def parse_shock(text: str) -> tuple[str, float]:
    """``TARGET=-10%`` or ``TARGET=-0.1`` -> ``("TARGET", -0.1)``."""
    m = _SHOCK.fullmatch(text.strip())
    if m is None:
        raise UsageError(f"--shock {text}: expected SYMBOL_OR_ASSET=MOVE, e.g. BTCUSDT=-10%")
    move = float(m["num"]) / (100.0 if m["pct"] else 1.0)
    if not move > -1.0:
        raise UsageError(f"--shock {text}: the move must leave the price > 0")
    return m["target"].strip(), move


def _num(x: float | None) -> float | None:
    """JSON-safe number: inf/None -> null (documented in the schema), -0.0 -> 0.0."""
    return x + 0.0 if x is not None and math.isfinite(x) else None


def compute(snap: Snapshot) -> dict[str, object]:
    """The output document of one snapshot."""
    a = snap.account
    figs = account_figures(a)
    prices = liquidation_prices(a)
    down, up = liquidation_distance(a)
    positions = [
        {
            "symbol": p.symbol,
            "side": p.side.value,
            "margin_mode": p.margin_mode.value,
            "notional": _num(f.notional),
            "unrealized_pnl": _num(f.upnl),
            "maintenance_margin": _num(f.maintenance_margin),
            "initial_margin": _num(f.initial_margin),
            "liquidation_price": _num(lp),
        }
        for p, f, lp in zip(a.positions, figs.positions, prices, strict=True)
    ]
    return {
        "account": {
            "name": snap.name,
            "venue": a.venue,
            "equity": _num(figs.equity),
            "maintenance_margin": _num(figs.maintenance_margin),
            "initial_margin": _num(figs.initial_margin),
            "margin_ratio": _num(figs.margin_ratio),
            "health": _num(figs.health),
            "liquidation_distance": {"down": _num(down), "up": _num(up)},
        },
        "positions": positions,
    }


def run(args: argparse.Namespace) -> int:
    snap = read_snapshot(args.snapshot)
    for text in args.shock:
        target, move = parse_shock(text)
        snap = apply_shock(snap, target, move, f"--shock {text}")
    try:
        doc = compute(snap)
    except MarginError as exc:
        source = "<stdin>" if args.snapshot == "-" else args.snapshot
        raise UsageError(f"{source}: {exc}") from exc
    option = orjson.OPT_INDENT_2 if args.pretty else 0
    sys.stdout.buffer.write(orjson.dumps(doc, option=option) + b"\n")
    sys.stdout.flush()
    return 0

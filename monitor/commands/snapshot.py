"""Venue-neutral account snapshot (JSON) -> :class:`rules.account.AccountInput`.

The format is documented by ``monitor/schemas/snapshot.schema.json``. Validation is done here,
once, with one-line errors that name the file and the field
(``snap.json: positions[2].mark_price: must be > 0``), raised as :class:`UsageError`.

Numbers may be JSON numbers or decimal strings (venues send strings); NaN, infinities and
booleans are rejected. Unknown keys are rejected so a misspelt field never silently defaults.

Units: a linear account's balances are valued in USD (stablecoins at 1.0, other assets at
``asset_prices`` with their ``collateral_ratios`` haircut on positive balances); an inverse
(coin-margined) account holds exactly one balance, in its margin coin, and counts in that coin.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from connectors import venues
from connectors.venues import ModelFamily, VenueDescriptor
from monitor.errors import UsageError
from rules.account import STABLECOINS, VENUES, AccountInput, PositionInput
from rules.errors import MarginError
from rules.imf_mf import ImfMfModel
from rules.model import MarginModel
from rules.size_linear import SizeLinearModel
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, MarginMode, Side

# The blocks that price instruments, one per model family; each venue reads one of them
# (its registry descriptor's ``snapshot_block``).
MODEL_BLOCKS = frozenset(venues.descriptor(v).margin.snapshot_block for v in VENUES)
TOP_KEYS = frozenset(
    {"$schema", "venue", "account", "balances", "collateral_ratios", "asset_prices", "positions"}
    | MODEL_BLOCKS
)
POSITION_KEYS = frozenset(
    {"symbol", "qty", "entry_price", "mark_price", "side", "margin_mode", "isolated_margin"}
    | {"leverage", "contract_size", "kind"}
)
TIER_KEYS = frozenset({"floor", "cap", "mmr", "deduction", "max_leverage"})
SIZE_LINEAR_KEYS = frozenset({"mm_base", "im_base", "k"})
IMF_MF_KEYS = frozenset({"imf", "mf", "oi_lower_cap", "oi_upper_cap", "open_interest"})
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True, slots=True)
class Snapshot:
    name: str
    account: AccountInput


class _Doc:
    """Field readers that raise ``UsageError("<source>: <path>: <what is wrong>")``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, what: str) -> UsageError:
        if not path:
            return UsageError(f"{self.source}: {what}")
        return UsageError(f"{self.source}: {path}: {what}")

    def obj(self, value: object, path: str, allowed: frozenset[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be an object, got {_type_name(value)}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise self.fail(f"{path}.{key}" if path else key, "unknown field")
        return value

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"must be a non-empty string, got {_type_name(value)}")
        return value

    def choice(self, value: object, path: str, choices: Sequence[str]) -> str:
        text = self.string(value, path)
        if text not in choices:
            raise self.fail(path, f"must be one of {', '.join(choices)}; got {text!r}")
        return text

    def number(self, value: object, path: str, *, minimum: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(path, f"must be a number or decimal string, got {_type_name(value)}")
        if isinstance(value, str):
            if not _DECIMAL.fullmatch(value.strip()):
                raise self.fail(path, f"not a decimal number: {value[:40]!r}")
            value = value.strip()
        x = float(value)
        if not math.isfinite(x):
            raise self.fail(path, "must be finite")
        if minimum is not None and x < minimum:
            raise self.fail(path, f"must be >= {minimum:g}, got {x:g}")
        return x

    def positive(self, value: object, path: str) -> float:
        x = self.number(value, path)
        if x <= 0.0:
            raise self.fail(path, f"must be > 0, got {x:g}")
        return x


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def read_snapshot(path: str) -> Snapshot:
    """Load and validate the snapshot at ``path`` (``-`` reads stdin)."""
    source = "<stdin>" if path == "-" else path
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{source}: not valid JSON: {str(exc).splitlines()[0]}") from exc
    return parse_snapshot(doc, source)


def parse_snapshot(doc: object, source: str) -> Snapshot:
    d = _Doc(source)
    top = d.obj(doc, "", TOP_KEYS)
    for key in ("venue", "account", "balances", "positions"):
        if key not in top:
            raise d.fail(key, "missing")
    venue = d.choice(top["venue"], "venue", VENUES)
    name = d.string(top["account"], "account")
    desc = venues.descriptor(venue)
    rules = desc.margin
    block = rules.snapshot_block
    for other in sorted(MODEL_BLOCKS):
        if other != block and other in top:
            raise d.fail(other, f"not used by venue {venue} (it takes {block!r})")
    models = _models(d, desc, top.get(block, {}), block)
    inverse_venue = rules.inverse
    positions = _positions(d, top["positions"], models, block, inverse_venue)
    balances = {
        d.string(k, "balances"): d.number(v, f"balances.{k}")
        for k, v in d.obj(top["balances"], "balances", None).items()
    }
    ratios = {
        k: d.number(v, f"collateral_ratios.{k}")
        for k, v in d.obj(top.get("collateral_ratios", {}), "collateral_ratios", None).items()
    }
    for k, r in ratios.items():
        if not 0.0 <= r <= 1.0:
            raise d.fail(f"collateral_ratios.{k}", f"must be in [0, 1], got {r:g}")
    prices = {
        k: d.positive(v, f"asset_prices.{k}")
        for k, v in d.obj(top.get("asset_prices", {}), "asset_prices", None).items()
    }
    inverse = bool(positions) and positions[0].kind is ContractKind.INVERSE
    if inverse_venue and not positions:
        inverse = True
    if inverse:
        # Coin-margined: one margin coin, counted in coin; haircuts and USD prices do not apply.
        if len(balances) > 1:
            raise d.fail("balances", "an inverse (coin-margined) account holds one margin coin")
        for key in ("collateral_ratios", "asset_prices"):
            if top.get(key):
                raise d.fail(key, "not used by an inverse (coin-margined) account")
    else:
        for asset, bal in balances.items():
            if bal != 0.0 and asset not in STABLECOINS and asset not in prices:
                raise d.fail(f"asset_prices.{asset}", f"missing (needed to value balances.{asset})")
    account = AccountInput(
        venue=venue,
        balances=balances,
        positions=tuple(positions),
        collateral_ratios=ratios,
        asset_prices=prices,
        multi_asset=not inverse,
    )
    return Snapshot(name, account)


def _models(d: _Doc, desc: VenueDescriptor, raw: object, block: str) -> dict[str, MarginModel]:
    rules = desc.margin
    table = d.obj(raw, block, None)
    models: dict[str, MarginModel] = {}
    for symbol, params in table.items():
        path = f"{block}.{symbol}"
        try:
            if rules.family is ModelFamily.TIERS:
                models[symbol] = _tier_table(d, desc, symbol, params, path)
            elif rules.family is ModelFamily.SIZE_LINEAR:
                p = d.obj(params, path, SIZE_LINEAR_KEYS)
                for key in sorted(SIZE_LINEAR_KEYS):
                    if key not in p:
                        raise d.fail(f"{path}.{key}", "missing")
                vals = {k: d.number(v, f"{path}.{k}", minimum=0.0) for k, v in p.items()}
                models[symbol] = SizeLinearModel(**vals)
            else:
                p = d.obj(params, path, IMF_MF_KEYS)
                for key in ("imf", "mf"):
                    if key not in p:
                        raise d.fail(f"{path}.{key}", "missing")
                vals = {k: d.number(v, f"{path}.{k}", minimum=0.0) for k, v in p.items()}
                models[symbol] = ImfMfModel(**vals)
        except MarginError as exc:
            msg = str(exc).removeprefix(f"{symbol}: ")
            raise d.fail(path, msg) from exc
    return models


def _tier_table(d: _Doc, desc: VenueDescriptor, symbol: str, raw: object, path: str) -> TierTable:
    rules = desc.margin
    if not isinstance(raw, list) or not raw:
        raise d.fail(path, "must be a non-empty array of tiers")
    specs: list[TierSpec] = []
    for i, item in enumerate(raw):
        tp = f"{path}[{i}]"
        t = d.obj(item, tp, TIER_KEYS)
        for key in ("floor", "max_leverage"):
            if key not in t:
                raise d.fail(f"{tp}.{key}", "missing")
        floor = d.number(t["floor"], f"{tp}.floor", minimum=0.0)
        max_lev = d.number(t["max_leverage"], f"{tp}.max_leverage", minimum=1.0)
        last = i == len(raw) - 1
        if t.get("cap") is None:
            if not (last or rules.mmr_from_max_leverage):
                raise d.fail(f"{tp}.cap", "missing (only the last tier may omit its cap)")
            nxt = None if last else d.obj(raw[i + 1], f"{path}[{i + 1}]", TIER_KEYS).get("floor")
            cap = math.inf if last else d.number(nxt, f"{path}[{i + 1}].floor")
        else:
            cap = d.positive(t["cap"], f"{tp}.cap")
        if rules.mmr_from_max_leverage:
            mmr = 1.0 / (2.0 * max_lev)
            if "mmr" in t and not math.isclose(d.number(t["mmr"], f"{tp}.mmr"), mmr, rel_tol=1e-9):
                raise d.fail(f"{tp}.mmr", f"must be 1/(2·max_leverage) = {mmr:g} on {desc.label}")
        elif "mmr" not in t:
            raise d.fail(f"{tp}.mmr", "missing")
        else:
            mmr = d.positive(t["mmr"], f"{tp}.mmr")
        ded = None if t.get("deduction") is None else d.number(t["deduction"], f"{tp}.deduction")
        specs.append(TierSpec(floor, cap, mmr, ded, max_lev))
    return TierTable.from_tiers(symbol, specs, deduction=rules.tier_deduction)


def _positions(
    d: _Doc, raw: object, models: Mapping[str, MarginModel], block: str, inverse_venue: bool
) -> list[PositionInput]:
    if not isinstance(raw, list):
        raise d.fail("positions", f"must be an array, got {_type_name(raw)}")
    out: list[PositionInput] = []
    seen: dict[tuple[str, MarginMode, Side], int] = {}
    marks: dict[str, tuple[int, float]] = {}
    for i, item in enumerate(raw):
        pp = f"positions[{i}]"
        p = d.obj(item, pp, POSITION_KEYS)
        for key in ("symbol", "qty", "entry_price", "mark_price"):
            if key not in p:
                raise d.fail(f"{pp}.{key}", "missing")
        symbol = d.string(p["symbol"], f"{pp}.symbol")
        if symbol not in models:
            raise d.fail(f"{pp}.symbol", f"no {block} entry for {symbol!r}")
        qty = d.number(p["qty"], f"{pp}.qty")
        entry = d.number(p["entry_price"], f"{pp}.entry_price", minimum=0.0)
        if qty != 0.0 and entry <= 0.0:
            raise d.fail(f"{pp}.entry_price", "must be > 0 for an open position")
        mark = d.positive(p["mark_price"], f"{pp}.mark_price")
        side = Side(d.choice(p.get("side", "both"), f"{pp}.side", [s.value for s in Side]))
        if (side is Side.LONG and qty < 0.0) or (side is Side.SHORT and qty > 0.0):
            raise d.fail(f"{pp}.qty", f"sign disagrees with side {side.value!r}")
        modes = [m.value for m in MarginMode]
        mode = MarginMode(d.choice(p.get("margin_mode", "cross"), f"{pp}.margin_mode", modes))
        default_kind = "inverse" if inverse_venue else "linear"
        kinds = [k.value for k in ContractKind]
        kind = ContractKind(d.choice(p.get("kind", default_kind), f"{pp}.kind", kinds))
        if out and kind is not out[0].kind:
            raise d.fail(f"{pp}.kind", "an account cannot mix linear and inverse contracts")
        iso: float | None = None
        if mode is MarginMode.ISOLATED:
            if p.get("isolated_margin") is None:
                raise d.fail(f"{pp}.isolated_margin", "missing (required for isolated)")
            iso = d.number(p["isolated_margin"], f"{pp}.isolated_margin", minimum=0.0)
        elif p.get("isolated_margin") is not None:
            raise d.fail(f"{pp}.isolated_margin", "only valid with margin_mode isolated")
        lev = None if p.get("leverage") is None else d.positive(p["leverage"], f"{pp}.leverage")
        cs = d.positive(p.get("contract_size", 1.0), f"{pp}.contract_size")
        legs_of_symbol = {s for (sym, _, s) in seen if sym == symbol}
        if (side is Side.BOTH and legs_of_symbol - {Side.BOTH}) or (
            side is not Side.BOTH and Side.BOTH in legs_of_symbol
        ):
            raise d.fail(f"{pp}.side", f"{symbol} mixes one-way and hedge-mode legs")
        if (symbol, mode, side) in seen:
            j = seen[(symbol, mode, side)]
            raise d.fail(pp, f"duplicates positions[{j}] ({symbol} {side.value} {mode.value})")
        seen[(symbol, mode, side)] = i
        if symbol in marks and marks[symbol][1] != mark:
            raise d.fail(
                f"{pp}.mark_price", f"differs from positions[{marks[symbol][0]}].mark_price"
            )
        marks.setdefault(symbol, (i, mark))
        out.append(
            PositionInput(symbol, side, qty, entry, mark, kind, cs, models[symbol], mode, lev, iso)
        )
    return out


def apply_shock(snap: Snapshot, target: str, move: float, label: str) -> Snapshot:
    """Multiply the mark of symbol ``target`` and/or the price of asset ``target`` by ``1+move``."""
    a = snap.account
    factor = 1.0 + move
    hit = False
    positions = list(a.positions)
    for i, p in enumerate(positions):
        if p.symbol == target:
            positions[i] = dataclasses.replace(p, mark_price=p.mark_price * factor)
            hit = True
    prices = dict(a.asset_prices)
    if target in prices or (target in a.balances and target in STABLECOINS and a.multi_asset):
        prices[target] = prices.get(target, 1.0) * factor
        hit = True
    if not hit:
        raise UsageError(f"{label}: {target!r} is neither a position symbol nor a priced asset")
    account = dataclasses.replace(a, positions=tuple(positions), asset_prices=prices)
    return Snapshot(snap.name, account)

"""Binance markPriceUpdate: decode, and decode + apply into the real Store, per frame.

Frames are combined-stream envelopes (what ``/market/stream`` sends for ``<symbol>@markPrice@1s``
subscriptions), cycling through ``SYMBOLS`` USDⓈ-M perpetuals with a different price each
time. The book they are applied to (:func:`book`): every symbol has its instrument and a
three-tier table; three cross accounts hold ``HELD`` of those symbols between them (eight
legs, one symbol held by two accounts), the rest are unheld — the usual monitor, watching a
few positions while the venue streams every mark.

``binance_mark_decode_us`` is the market feed's decode as the driver calls it: ``parse_many`` on
batches of ``BATCH`` frames (what the driver takes at once from the socket when a 1-second burst
of every symbol's update arrives), which decodes a batch of mark frames in one call to one
``MarkRun``. ``binance_mark_decode_apply_us`` adds ``Engine.handle`` (no sinks): the idle
symbols' marks recorded, the held ones ticked (in python: their books are small) and their
accounts' lazy budgets charged (the held-run route of ``Store.apply``), a screen only when a
budget runs out.
``binance_mark_decode_apply_unbatched_us`` hands every frame to ``parse_many`` and
``Engine.handle`` alone, for honesty. The speedups are against the batched figure; the
``_unbatched`` speedups are reported beside them. ``binance_mark_apply_held_us`` is the part of
decode + apply spent on the held symbols (per frame of the whole stream: the same run against a
book nobody holds, subtracted), so the reader sees where the rest goes.

Each round runs every contender once (interleaved: slow spells on a shared machine last
seconds) and the best of ``REPEATS`` rounds is reported.

Baselines run the same frames through cryptofeed's ``BinanceFutures.message_handler`` and
ccxt.pro's ``binanceusdm.handle_message`` when those packages are installed (bench-only, never
project dependencies: ``pip install cryptofeed ccxt``). They only decode and normalise (no
state store). The issue's reference figures (4.9 µs and 19.2 µs, measured where a minimal
orjson normaliser took 0.78 µs) are reported too, scaled by this machine's own
minimal-normaliser time (``*_reference_scaled``), and used in place of a baseline that cannot
run.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import orjson

from connectors.binance.parse import parse_many
from connectors.events import AccountSnapshot, Event, Instrument, PositionSnapshot, TierTableUpdate
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, Side

N = 20_000
REPEATS = 25
SLOW_US, SLOW_FRAMES = 10.0, 4_000
SYMBOLS = 200
BATCH = 200
REF_MINIMAL_US, REF_CRYPTOFEED_US, REF_CCXT_US = 0.78, 4.9, 19.2
VENUE = "binance-usdm"

CEILINGS: dict[str, tuple[str, float]] = {
    "binance_mark_decode_us": ("max", 1.0),
    "speedup_vs_cryptofeed": ("min", 6.0),
    "speedup_vs_ccxt": ("min", 24.0),
}


def symbol_names(n: int = SYMBOLS) -> list[str]:
    majors = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT"]
    return (majors + [f"C{k:03d}USDT" for k in range(n)])[:n]


# Accounts and their legs: (account, symbol, side, qty, entry). Eight legs on six symbols.
HELD = (
    ("alpha", "BTCUSDT", Side.BOTH, 2.0, 59_000.0),
    ("alpha", "ETHUSDT", Side.BOTH, -30.0, 3_100.0),
    ("alpha", "SOLUSDT", Side.BOTH, 400.0, 140.0),
    ("beta", "BTCUSDT", Side.BOTH, -1.0, 61_000.0),
    ("beta", "BNBUSDT", Side.BOTH, 50.0, 560.0),
    ("gamma", "XRPUSDT", Side.LONG, 20_000.0, 0.52),
    ("gamma", "XRPUSDT", Side.SHORT, -5_000.0, 0.55),
    ("gamma", "DOGEUSDT", Side.BOTH, 100_000.0, 0.12),
)
BASE_PRICE = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0, "BNBUSDT": 580.0,
              "XRPUSDT": 0.53, "DOGEUSDT": 0.125}  # fmt: skip


def frames(n: int = N, symbols: int = SYMBOLS) -> list[bytes]:
    names = symbol_names(symbols)
    out = []
    for k in range(n):
        sym = names[k % len(names)]
        base = BASE_PRICE.get(sym, 10.0 + (k % len(names)))
        mark = f"{base * (1 + ((k // len(names)) % 97 - 48) * 1e-5):.8f}"
        data = {
            "e": "markPriceUpdate", "E": 1562305380000 + k, "s": sym, "p": mark,
            "i": f"{base:.8f}", "P": f"{base:.8f}", "r": "0.00038167", "ap": mark,
            "T": 1562306400000, "st": 1,
        }  # fmt: skip
        out.append(orjson.dumps({"stream": f"{sym.lower()}@markPrice@1s", "data": data}))
    return out


def _best_us(
    runs: dict[str, Callable[[list[bytes]], object]], data: list[bytes]
) -> dict[str, float]:
    """Best time per frame of each run over ``REPEATS`` rounds, the runs interleaved within
    each round: on a shared machine slow spells last seconds, and a contender measured only
    inside one would be misjudged against the others. Runs slower than ``SLOW_US`` per frame
    take the first ``SLOW_FRAMES`` frames (whole 1-second bursts) so that a round stays short."""
    best = dict.fromkeys(runs, float("inf"))
    sample = {name: data for name in runs}
    for _ in range(REPEATS):
        for name, run in runs.items():
            frames = sample[name]
            gc.collect()
            t0 = time.perf_counter()
            run(frames)
            took = time.perf_counter() - t0
            best[name] = min(best[name], took / len(frames))
            if took / len(frames) > SLOW_US * 1e-6:
                sample[name] = data[:SLOW_FRAMES]
    return {name: t * 1e6 for name, t in best.items()}


def _minimal(data: list[bytes]) -> None:
    loads = orjson.loads
    for f in data:
        d = loads(f)["data"]
        (d["s"], float(d["p"]), d["E"])


def _decode(data: list[bytes]) -> None:
    for start in range(0, len(data), BATCH):
        parse_many(data[start : start + BATCH], [], VENUE)


def book(accounts: bool = True) -> list[Event]:
    """Instruments and tier tables for every symbol, then the three accounts' snapshots."""
    table = [TierSpec(0, 50_000, 0.004, 0, 125), TierSpec(50_000, 600_000, 0.005, 50, 100),
             TierSpec(600_000, 3_000_000, 0.0065, 950, 75)]  # fmt: skip
    events: list[Event] = []
    for sym in symbol_names():
        events.append(Instrument(VENUE, sym, ContractKind.LINEAR, 1.0, "USDT"))
        events.append(TierTableUpdate(VENUE, sym, TierTable.from_tiers(sym, table)))
    for account in sorted({leg[0] for leg in HELD} if accounts else ()):
        legs = tuple(
            PositionSnapshot(VENUE, account, sym, side, qty, entry, 1)
            for acct, sym, side, qty, entry in HELD
            if acct == account
        )
        events.append(AccountSnapshot(VENUE, account, {"USDT": 200_000.0}, legs, 1))
    return events


def _engine(accounts: bool = True) -> Any:
    from monitor.engine import Engine  # noqa: PLC0415 - optional layer for this figure
    from monitor.store import Store  # noqa: PLC0415
    from rules.alerts import AlertConfig  # noqa: PLC0415

    engine = Engine(Store(), lambda key: AlertConfig(), [])
    engine.handle(book(accounts), 0)
    return engine


def _decode_apply(engine: Any, batch: int) -> Callable[[list[bytes]], None]:
    """The driver's loop in miniature: parse ``batch`` frames into one list, then handle it."""
    handle = engine.handle

    def run(data: list[bytes]) -> None:
        for start in range(0, len(data), batch):
            events: list[Event] = []
            parse_many(data[start : start + batch], events, VENUE)
            handle(events, 0)

    return run


def _cryptofeed() -> Callable[[list[bytes]], None] | None:
    try:
        from cryptofeed.defines import BINANCE_FUTURES, FUNDING  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415
        from cryptofeed.exchanges.binance_futures import BinanceFutures  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415
        from cryptofeed.symbols import Symbols  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415
    except ImportError:
        return None
    names = {f"{sym.removesuffix('USDT')}-USDT-PERP": sym for sym in symbol_names()}
    Symbols.set(BINANCE_FUTURES, names, {"instrument_type": {}})

    async def sink(obj: object, receipt: float) -> None:
        return None

    feed = BinanceFutures(symbols=list(names), channels=[FUNDING], callbacks={FUNDING: sink})
    handler = feed.message_handler

    def run(data: list[bytes]) -> None:
        async def go() -> None:
            for f in data:
                await handler(f.decode(), None, 0.0)

        asyncio.run(go())

    return run


def _ccxt() -> Callable[[list[bytes]], None] | None:
    try:
        import json  # noqa: PLC0415

        import ccxt.pro  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415
    except ImportError:
        return None
    exchange = ccxt.pro.binanceusdm()
    exchange.set_markets(
        [{"id": sym, "symbol": f"{sym.removesuffix('USDT')}/USDT:USDT",
          "base": sym.removesuffix("USDT"), "quote": "USDT", "settle": "USDT", "type": "swap",
          "spot": False, "swap": True, "linear": True, "contract": True, "active": True,
          "precision": {}, "limits": {}, "info": {}} for sym in symbol_names()]
    )  # fmt: skip

    class Client:  # the few attributes ccxt's handlers read from its websocket client
        url = "wss://fstream.binance.com/market/stream"
        subscriptions: dict[str, Any] = {}  # noqa: RUF012 - read-only stand-in

        def resolve(self, result: object, message_hash: str) -> None:
            return None

    client = Client()
    handle = exchange.handle_message

    def run(data: list[bytes]) -> None:
        for f in data:
            handle(client, json.loads(f))

    return run


def run() -> dict[str, float]:
    data = frames()
    runs: dict[str, Callable[[list[bytes]], object]] = {"minimal": _minimal, "decode": _decode}
    try:
        engine = _engine()
    except ImportError:  # no monitor layer in this build: decode only
        engine = None
    else:
        _decode_apply(engine, BATCH)(data)  # warm: first evaluation of each account
        runs["apply"] = _decode_apply(engine, BATCH)
        runs["apply_unbatched"] = _decode_apply(engine, 1)
        runs["apply_idle"] = _decode_apply(_engine(accounts=False), BATCH)
    # Baselines: measured here when installed; the figures scaled to this machine too.
    baselines = (("cryptofeed", _cryptofeed, REF_CRYPTOFEED_US), ("ccxt", _ccxt, REF_CCXT_US))
    for name, factory, _ref in baselines:
        try:
            handler = factory()
            if handler is not None:
                handler(data[:10])  # smoke: the stand-in set-up must actually work
                runs[name] = handler
        except Exception:  # noqa: BLE001 - a peer that cannot run here: use the reference
            pass
    us = _best_us(runs, data)
    minimal, decode = us["minimal"], us["decode"]
    figures = {"binance_minimal_normaliser_us": minimal, "binance_mark_decode_us": decode}
    totals = {"": decode}
    if engine is None:
        figures["binance_mark_store_available"] = 0.0
    else:
        totals = {"": us["apply"], "_unbatched": us["apply_unbatched"]}
        figures["binance_mark_decode_apply_us"] = totals[""]
        figures["binance_mark_decode_apply_unbatched_us"] = totals["_unbatched"]
        figures["binance_mark_apply_held_us"] = totals[""] - us["apply_idle"]
    scale = minimal / REF_MINIMAL_US
    for name, _factory, ref in baselines:
        scaled = ref * scale
        figures[f"{name}_mark_us_reference_scaled"] = scaled
        base = us.get(name, scaled)
        if name in us:
            figures[f"{name}_mark_us_measured"] = base
        for suffix, total in totals.items():
            figures[f"speedup_vs_{name}{suffix}"] = base / total
            figures[f"speedup_vs_{name}_reference{suffix}"] = scaled / total
    return figures


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:40s} {value:10.3f}")

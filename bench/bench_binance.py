"""Binance markPriceUpdate: decode, and decode + apply into the real Store, per frame.

Frames are combined-stream envelopes (what ``/market/stream`` sends), each with a different
price. Baselines run the same frames through cryptofeed's ``BinanceFutures.message_handler``
and ccxt.pro's ``binanceusdm.handle_message`` when those packages are installed (bench-only,
never project dependencies: ``pip install cryptofeed ccxt``). Without them the issue's reference
figures (4.9 µs and 19.2 µs, measured where a minimal orjson normaliser took 0.78 µs) are used,
scaled by this machine's own minimal-normaliser time, and the figure names say so.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import orjson

from connectors.binance.parse import parse_market
from connectors.events import AccountSnapshot, Event, Instrument, PositionSnapshot, TierTableUpdate
from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, Side

N = 20_000
REPEATS = 5
REF_MINIMAL_US, REF_CRYPTOFEED_US, REF_CCXT_US = 0.78, 4.9, 19.2

CEILINGS: dict[str, tuple[str, float]] = {
    "binance_mark_decode_us": ("max", 1.0),
    "speedup_vs_cryptofeed": ("min", 6.0),
    "speedup_vs_ccxt": ("min", 24.0),
}


def frames(n: int = N) -> list[bytes]:
    out = []
    for k in range(n):
        mark = f"{60000 + (k % 997) * 0.01:.8f}"
        data = {
            "e": "markPriceUpdate", "E": 1562305380000 + k, "s": "BTCUSDT", "p": mark,
            "i": "59990.62659091", "P": "59991.25641265", "r": "0.00038167", "ap": mark,
            "T": 1562306400000, "st": 1,
        }  # fmt: skip
        out.append(orjson.dumps({"stream": "btcusdt@markPrice@1s", "data": data}))
    return out


def _best_us(run: Callable[[list[bytes]], object], data: list[bytes]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        gc.collect()
        t0 = time.perf_counter()
        run(data)
        best = min(best, time.perf_counter() - t0)
    return best / len(data) * 1e6


def _minimal(data: list[bytes]) -> None:
    loads = orjson.loads
    for f in data:
        d = loads(f)["data"]
        (d["s"], float(d["p"]), d["E"])


def _decode(data: list[bytes]) -> None:
    for f in data:
        parse_market(f)


def _store_with_a_position() -> Any:
    from monitor.store import Store  # noqa: PLC0415 - optional layer for this figure

    v = "binance-usdm"
    store = Store()
    table = TierTable.from_tiers(
        "BTCUSDT",
        [TierSpec(0, 50_000, 0.004, 0, 125), TierSpec(50_000, 600_000, 0.005, 50, 100),
         TierSpec(600_000, 3_000_000, 0.0065, 950, 75)],
    )  # fmt: skip
    events: list[Event] = [
        Instrument(v, "BTCUSDT", ContractKind.LINEAR, 1.0, "USDT"),
        TierTableUpdate(v, "BTCUSDT", table),
        AccountSnapshot(
            v, "bench", {"USDT": 100_000.0},
            (PositionSnapshot(v, "bench", "BTCUSDT", Side.BOTH, 2.0, 59_000.0, 1),), 1,
        ),
    ]  # fmt: skip
    for ev in events:
        store.apply(ev, 0)
    return store


def _decode_apply(store: Any) -> Callable[[list[bytes]], None]:
    apply = store.apply

    def run(data: list[bytes]) -> None:
        for f in data:
            for ev in parse_market(f):
                apply(ev, 0)

    return run


def _cryptofeed() -> Callable[[list[bytes]], None] | None:
    try:
        from cryptofeed.defines import BINANCE_FUTURES, FUNDING  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415
        from cryptofeed.exchanges.binance_futures import BinanceFutures  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415
        from cryptofeed.symbols import Symbols  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415
    except ImportError:
        return None
    Symbols.set(BINANCE_FUTURES, {"BTC-USDT-PERP": "BTCUSDT"}, {"instrument_type": {}})

    async def sink(obj: object, receipt: float) -> None:
        return None

    feed = BinanceFutures(symbols=["BTC-USDT-PERP"], channels=[FUNDING], callbacks={FUNDING: sink})
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
        [{"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT",
          "settle": "USDT", "type": "swap", "spot": False, "swap": True, "linear": True,
          "contract": True, "active": True, "precision": {}, "limits": {}, "info": {}}]
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
    minimal = _best_us(_minimal, data)
    decode = _best_us(_decode, data)
    figures = {"binance_minimal_normaliser_us": minimal, "binance_mark_decode_us": decode}
    try:
        store = _store_with_a_position()
    except ImportError:
        total = decode  # no store in this build: decode only
        figures["binance_mark_store_available"] = 0.0
    else:
        total = _best_us(_decode_apply(store), data)
        figures["binance_mark_decode_apply_us"] = total
    # Baselines: measured here when installed; else the figures scaled to this machine.
    scale = minimal / REF_MINIMAL_US
    for name, factory, ref in (("cryptofeed", _cryptofeed, REF_CRYPTOFEED_US),
                               ("ccxt", _ccxt, REF_CCXT_US)):  # fmt: skip
        handler = None
        try:
            handler = factory()
            if handler is not None:
                handler(data[:10])  # smoke: the stand-in set-up must actually work
        except Exception:  # a third-party handler that cannot run here: use the reference
            handler = None
        if handler is not None:
            base = _best_us(handler, data)
            figures[f"{name}_mark_us_measured"] = base
        else:
            base = ref * scale
            figures[f"{name}_mark_us_reference_scaled"] = base
        figures[f"speedup_vs_{name}"] = base / total
    return figures


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:40s} {value:10.3f}")

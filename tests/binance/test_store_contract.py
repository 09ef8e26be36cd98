"""What the store must do with Binance's event pairs (see connectors.events.PositionFill)."""

from __future__ import annotations

import orjson

from connectors.binance.parse import parse_user
from monitor.store import Store

from .samples import sample

V = "binance-usdm"


def test_a_fill_is_not_counted_twice_when_account_update_comes_first() -> None:
    store = Store()
    update = orjson.loads(sample("ws_account_update.json"))
    update["a"]["P"] = [
        {"s": "BTCUSDT", "pa": "0.001", "ep": "7100.5", "bep": "7100.5", "cr": "0", "up": "0",
         "mt": "cross", "iw": "0", "ps": "LONG"}
    ]  # fmt: skip
    for frame in (orjson.dumps(update), sample("ws_order_trade_update_fill.json")):
        for ev in parse_user(frame, V, "alice"):
            store.apply(ev, 0)
    (leg,) = store.state((V, "alice")).legs.values()
    assert leg.qty == 0.001

"""COIN-M (inverse, coin-margined) through the same parsers, feeds and fake (margin.md §1.6)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connectors.binance.feeds import BinanceMarketFeed, BinanceUserFeed
from connectors.binance.parse import parse_market
from connectors.binance.rest import BinanceRest, Credentials
from connectors.binance.spec import COINM
from connectors.events import AccountSnapshot, Instrument, MarkPrice, TierTableUpdate
from connectors.fakes.binance import FakeAccount, FakeBinance, ManualClock
from rules.types import ContractKind, Side, notional_of

V = "binance-coinm"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(COINM, clock=ManualClock()) as venue:
        venue.add_account(FakeAccount("carol", api_key="ck", secret="cs", balances={"BTC": 2.0}))
        yield venue


def _rest(fake: FakeBinance) -> BinanceRest:
    return BinanceRest(
        COINM,
        base_url=fake.rest_url,
        credentials=Credentials("ck", "cs"),
        wall_ms=lambda: float(fake.clock.now_ms()),
    )


def test_inverse_notional_and_bracket_maths() -> None:
    # contracts × 100 USD / mark = coin notional; 300 × 100 / 60 000 = 0.5 BTC
    assert notional_of(ContractKind.INVERSE, 300.0, 100.0, 60_000.0) == 0.5
    # 6 000 contracts at 50 000 = 12 BTC: bracket [10, 20) at 1 %, cum 0.055 → 0.065 BTC
    assert notional_of(ContractKind.INVERSE, 6_000.0, 100.0, 50_000.0) == 12.0


async def test_snapshot_is_inverse_and_in_coin(fake: FakeBinance) -> None:
    carol = fake.account("carol")
    fake.set_mark("BTCUSD_PERP", 50_000.0)
    carol.order("BTCUSD_PERP", "BUY", 6_000.0)
    feed = BinanceUserFeed(COINM, "carol", _rest(fake), ws_base=fake.ws_url)
    events, _ = await feed.snapshot()
    instruments = {e.symbol: e for e in events if isinstance(e, Instrument)}
    assert instruments["BTCUSD_PERP"] == Instrument(
        V, "BTCUSD_PERP", ContractKind.INVERSE, 100.0, "BTC"
    )
    tables = {e.symbol: e for e in events if isinstance(e, TierTableUpdate)}
    model = tables["BTCUSD_PERP"].model
    assert model.maintenance(12.0, 12.0) == pytest.approx(0.065, rel=1e-12)
    (snap,) = [e for e in events if isinstance(e, AccountSnapshot)]
    assert snap.balances == {"BTC": pytest.approx(2.0 - 6_000 * 100 / 50_000 * 0.0004)}
    (pos,) = snap.positions
    assert (pos.symbol, pos.side, pos.qty, pos.entry_price) == (
        "BTCUSD_PERP",
        Side.BOTH,
        6_000.0,
        50_000.0,
    )
    assert snap.reported is not None
    assert snap.reported.total_maintenance_margin == pytest.approx(0.065, rel=1e-12)
    assert snap.reported.position_maintenance_margin == {
        ("BTCUSD_PERP", Side.BOTH): pytest.approx(0.065, rel=1e-12)
    }
    assert carol.total_maint_margin() == pytest.approx(0.065, rel=1e-12)
    assert snap.multi_asset is False
    await feed.close()


async def test_inverse_entry_averages_in_one_over_price(fake: FakeBinance) -> None:
    carol = fake.account("carol")
    carol.order("BTCUSD_PERP", "BUY", 100.0, price=40_000.0)
    carol.order("BTCUSD_PERP", "BUY", 100.0, price=60_000.0)
    # 200 contracts / (100/40 000 + 100/60 000) = 48 000 (harmonic mean)
    assert carol.positions[("BTCUSD_PERP", "BOTH")].entry == pytest.approx(48_000.0)


async def test_coinm_mark_price_snapshot_and_stream(fake: FakeBinance) -> None:
    feed = BinanceMarketFeed(COINM, _rest(fake), symbols=["BTCUSD_PERP"], ws_base=fake.ws_url)
    marks, _ = await feed.snapshot()
    assert marks == [MarkPrice(V, "BTCUSD_PERP", 60_000.0, fake.clock.now_ms(), 60_000.0)]
    assert await feed.connect_url() == f"{fake.ws_url}/stream"  # no route split on COIN-M
    frame = (
        b'{"e":"markPriceUpdate","E":1700000000001,"s":"BTCUSD_PERP","p":"59000.1","i":"59001","P":"0",'
        b'"r":"0.0001","T":2,"st":2}'
    )
    assert parse_market(frame, V) == [
        MarkPrice(V, "BTCUSD_PERP", 59000.1, 1_700_000_000_001, 59001.0)
    ]
    await feed.close()

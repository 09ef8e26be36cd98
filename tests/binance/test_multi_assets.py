"""Multi-assets mode: collateral prices and haircuts from ``/fapi/v1/assetIndex``."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import orjson
import pytest

from connectors.binance.feeds import BinanceUserFeed
from connectors.binance.parse import parse_user
from connectors.binance.rest import BinanceRest, Credentials
from connectors.binance.snapshots import AssetIndex, parse_asset_index
from connectors.errors import VenueDataError
from connectors.events import AccountSnapshot, AssetPrice, CollateralModeUpdate
from connectors.fakes.binance import FakeAccount, FakeBinance, ManualClock
from connectors.protocol import ResyncRequest
from rules.account import AccountInput, collateral_value

V = "binance-usdm"
T0 = 1_700_000_000_000

# The docs' example row (Multi-Assets Mode Asset Index): bidRate = index·(1 − bidBuffer).
DOC_ROW = {
    "symbol": "ADAUSD",
    "time": 1635740268004,
    "index": "1.92957370",
    "bidBuffer": "0.10000000",
    "askBuffer": "0.10000000",
    "bidRate": "1.73661633",
    "askRate": "2.12253107",
    "autoExchangeBidBuffer": "0.05000000",
    "autoExchangeAskBuffer": "0.05000000",
    "autoExchangeBidRate": "1.83309501",
    "autoExchangeAskRate": "2.02605238",
}


def test_asset_index_row_gives_price_and_haircut() -> None:
    (row,) = parse_asset_index(orjson.dumps([DOC_ROW]), V).values()
    assert row == AssetIndex("ADA", 1.9295737, 0.9, 1635740268004)
    assert row.price * row.collateral_ratio == pytest.approx(1.73661633, abs=1e-8)  # bidRate
    single = parse_asset_index(orjson.dumps(DOC_ROW), V)  # one object when a symbol is given
    assert list(single) == ["ADA"]


def test_a_bad_asset_index_row_costs_only_itself() -> None:
    bad = DOC_ROW | {"symbol": "XUSD", "index": "0"}
    errors: list[VenueDataError] = []
    assert list(parse_asset_index(orjson.dumps([bad, DOC_ROW]), V, errors)) == ["ADA"]
    assert [e.reason for e in errors] == ["bad_value"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(clock=ManualClock(T0)) as venue:
        venue.add_account(
            FakeAccount(
                "alice",
                api_key="ak",
                secret="as",
                multi_assets=True,
                balances={"USDT": 1_000.0, "BNB": 10.0, "XYZ": 0.0},
            )
        )
        yield venue


def _feed(fake: FakeBinance) -> BinanceUserFeed:
    rest = BinanceRest(fake.spec, base_url=fake.rest_url, credentials=Credentials("ak", "as"),
                       wall_ms=lambda: float(fake.clock.now_ms()))  # fmt: skip
    return BinanceUserFeed(fake.spec, "alice", rest, ws_base=fake.ws_url)


async def test_snapshot_prices_every_collateral_asset_with_its_haircut(fake: FakeBinance) -> None:
    feed = _feed(fake)
    events, _ = await feed.snapshot()
    await feed.close()
    prices = [e for e in events if isinstance(e, AssetPrice)]
    assert prices == [AssetPrice(V, "USDT", 0.99985, T0), AssetPrice(V, "BNB", 600.25, T0)]
    (snap,) = [e for e in events if isinstance(e, AccountSnapshot)]
    assert snap.multi_asset is True
    # Every balance asset has a ratio; a zero balance the index cannot price is left out.
    assert snap.balances == {"USDT": 1_000.0, "BNB": 10.0}
    assert snap.collateral_ratios == {"USDT": 0.9999, "BNB": 0.95}
    assert [type(e) for e in events].index(AccountSnapshot) == len(events) - 1
    # The account is now priceable: 1000·0.99985·0.9999 + 10·600.25·0.95
    value = collateral_value(
        AccountInput(
            V,
            snap.balances,
            (),
            snap.collateral_ratios,
            {p.asset: p.price for p in prices},
            multi_asset=True,
        )
    )
    assert value == pytest.approx(1_000 * 0.99985 * 0.9999 + 10 * 600.25 * 0.95)
    assert math.isfinite(value)


async def test_single_asset_mode_fetches_no_asset_index(fake: FakeBinance) -> None:
    fake.account("alice").multi_assets = False
    feed = _feed(fake)
    events, _ = await feed.snapshot()
    await feed.close()
    assert not [e for e in events if isinstance(e, AssetPrice)]
    assert ("GET", "/fapi/v1/assetIndex") not in fake.rest.calls


async def test_switching_multi_assets_on_asks_for_a_resync(fake: FakeBinance) -> None:
    feed = _feed(fake)
    await feed.snapshot()
    frame = orjson.dumps({"e": "ACCOUNT_CONFIG_UPDATE", "E": T0, "T": T0, "ai": {"j": True}})
    events = feed.parse(frame)
    assert events == parse_user(frame, V, "alice")
    assert parse_user(frame, V, "alice") == [CollateralModeUpdate(V, "alice", True, T0)]
    assert feed.parse(frame) == events  # parsing is pure: the request comes after the events
    assert feed.after_events(events) == ResyncRequest("collateral_mode")
    assert feed.after_events([]) is None
    # Switching it off needs no collateral prices: the cached brackets are dropped, no resync.
    off = feed.parse(orjson.dumps({"e": "ACCOUNT_CONFIG_UPDATE", "E": T0, "T": T0,
                                   "ai": {"j": False}}))  # fmt: skip
    assert off == [CollateralModeUpdate(V, "alice", False, T0)]
    assert feed.after_events(off) is None
    await feed.close()


async def test_a_held_asset_the_index_lacks_counts_for_nothing(fake: FakeBinance) -> None:
    fake.account("alice").balances["XYZ"] = 5.0
    feed = _feed(fake)
    events, _ = await feed.snapshot()
    await feed.close()
    (snap,) = [e for e in events if isinstance(e, AccountSnapshot)]
    assert snap.balances["XYZ"] == 5.0
    assert snap.collateral_ratios["XYZ"] == 0.0  # never the rules' default of 100 %
    assert "XYZ" not in {e.asset for e in events if isinstance(e, AssetPrice)}

"""The fake Binance demo world: the script takes the venue's own figures where the demo needs
them, the fake reports marks as Binance's all-market stream does, and the demo config reads its
keys from the environment like a deployment."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from connectors.binance.parse import parse_frame
from connectors.events import MarkPrice
from connectors.fakes.binance import FakeBinance
from monitor.demo import binance as demo_binance
from monitor.demo.command import demo_config
from monitor.errors import UsageError

WARNING, DANGER, CRITICAL = 2.0, 1.5, 1.2


def level(health: float) -> int:
    if health <= 1.0:
        return 4
    return 3 if health < CRITICAL else 2 if health < DANGER else 1 if health < WARNING else 0


class Session:
    """The script stepped through market time without sockets; pushes are recorded."""

    def __init__(self, time_scale: float = 1.0) -> None:
        self.fake = FakeBinance(contracts=demo_binance.CONTRACTS)
        demo_binance.populate(self.fake, lambda name: (f"key-{name}", f"secret-{name}"))
        self.pushed: list[tuple[str, dict[str, Any]]] = []
        for name, acct in self.fake.accounts.by_name.items():
            push = acct.market.push
            acct.market.push = self._recorder(name, push)
        self.now = 0.0
        self.script = demo_binance.DemoScript(
            self.fake, time_scale=time_scale, clock=lambda: self.now
        )

    def _recorder(
        self, name: str, push: Callable[[dict[str, Any]], None]
    ) -> Callable[[dict[str, Any]], None]:
        def record(payload: dict[str, Any]) -> None:
            self.pushed.append((name, payload))
            push(payload)

        return record

    def levels(self, until_s: float = 40.0) -> Iterator[tuple[float, dict[str, int]]]:
        tick = self.script.path.tick_s
        for step in range(int(until_s / tick)):
            t = step * tick
            self.now = t / self.script.time_scale
            self.script.advance(t)
            out = {}
            for name, acct in self.fake.accounts.by_name.items():
                equity, mm = demo_binance.equity_and_mm(acct)
                out[name] = level(equity / mm if mm > 0 else math.inf)
            yield t, out

    def events(self, account: str, kind: str) -> list[dict[str, Any]]:
        return [p for n, p in self.pushed if n == account and p["e"] == kind]


def transitions(series: list[tuple[float, dict[str, int]]], name: str) -> list[int]:
    out: list[int] = []
    for _, levels in series:
        if not out or out[-1] != levels[name]:
            out.append(levels[name])
    return out


def test_the_crash_story_on_the_venues_own_figures() -> None:
    session = Session()
    series = list(session.levels())
    # alice goes down one level per path step (the monitor can see each of them), is
    # liquidated by the venue, and is flat (ok) from then on.
    assert transitions(series, "alice") == [0, 1, 2, 3, 4, 0]
    assert session.script.liquidated == ["alice"]
    at_4 = next(t for t, lv in series if lv["alice"] == 4)
    at_liq = next(t for t, lv in series if t > at_4 and lv["alice"] == 0)
    assert 15.0 < at_liq < 18.0  # near the bottom (18 s)
    alice = session.fake.account("alice")
    assert alice.open_positions() == []
    assert alice.balances["USDT"] > 0  # filled at the liquidation price, not the crash's bottom
    # bob dips into danger and is back to ok after the rebound; carol and dave stay ok.
    assert transitions(series, "bob") == [0, 1, 2, 1, 0]
    assert transitions(series, "carol") == [0]
    assert transitions(series, "dave") == [0]


def test_the_venue_pushes_what_binance_pushes_on_the_way() -> None:
    session = Session()
    list(session.levels())
    # one MARGIN_CALL for alice (maintenance margin at 80 % of margin balance), none for bob
    calls = session.events("alice", "MARGIN_CALL")
    assert len(calls) == 1 and not session.events("bob", "MARGIN_CALL")
    fills = [p["o"] for p in session.events("alice", "ORDER_TRADE_UPDATE")]
    assert [(f["x"], f["S"], f["q"]) for f in fills] == [("CALCULATED", "SELL", "5000")]
    assert str(fills[0]["c"]).startswith("autoclose-")
    # fills during the session: carol's hedge-mode long, dave's buy-back
    carol = session.events("carol", "ORDER_TRADE_UPDATE")
    assert [(p["o"]["S"], p["o"]["ps"]) for p in carol] == [("BUY", "LONG")]
    assert session.fake.account("carol").positions[("ETHUSDT", "LONG")].qty == 25.0
    assert session.fake.account("dave").positions[("ETHUSDT", "BOTH")].qty == -40.0
    # funding: balance-only ACCOUNT_UPDATEs
    funding = [
        (n, p["a"]["S"])
        for n, p in session.pushed
        if p["e"] == "ACCOUNT_UPDATE" and p["a"]["m"] == "FUNDING_FEE"
    ]
    assert funding == [("carol", "ETHUSDT"), ("dave", "ETHUSDT"), ("bob", "SOLUSDT")]


def test_a_late_wake_up_catches_up_step_by_step_but_never_liquidates_in_one_go() -> None:
    """A stalled loop pushes every missed path step; the liquidation still waits for wall time,
    so its fill never overtakes the mark that caused it."""
    session = Session(time_scale=4.0)
    session.now = 0.0
    session.script.advance(17.0)  # one wake-up, crash well under way, no wall time passed
    assert session.fake.account("alice").open_positions()  # underwater, but not yet liquidated
    session.now = demo_binance.LIQUIDATION_MIN_WALL_S
    session.script.advance(17.1)
    assert session.script.liquidated == ["alice"]


async def test_set_marks_sends_one_all_market_frame() -> None:
    fake = FakeBinance(contracts=demo_binance.CONTRACTS)
    async with (
        fake,
        connect(f"{fake.ws_url}/market/stream") as arr,
        connect(f"{fake.ws_url}/market/ws/solusdt@markPrice@1s") as single,
    ):
        await arr.send(orjson.dumps({"method": "SUBSCRIBE", "params": ["!markPrice@arr@1s"],
                                     "id": 1}).decode())  # fmt: skip
        assert orjson.loads(await arr.recv()) == {"result": None, "id": 1}
        fake.set_marks({"BTCUSDT": 59_000.5, "SOLUSDT": 120.25})
        events = parse_frame(await arr.recv(), "binance-usdm", None)
        assert [(e.symbol, e.mark) for e in events if isinstance(e, MarkPrice)] == [
            ("BTCUSDT", 59_000.5),
            ("SOLUSDT", 120.25),
        ]
        only = parse_frame(await single.recv(), "binance-usdm", None)
        assert [(e.symbol, e.mark) for e in only if isinstance(e, MarkPrice)] == [
            ("SOLUSDT", 120.25)
        ]
    assert fake.marks["SOLUSDT"] == 120.25


def test_demo_config_reads_the_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("alice", "bob", "carol", "dave"):
        key_env, secret_env = demo_binance.credentials(name)
        monkeypatch.setenv(key_env, f"k-{name}")
        monkeypatch.setenv(secret_env, f"s-{name}")
    cfg = demo_config("ws://127.0.0.1:1", rest_url="http://127.0.0.1:2", venue="binance")
    assert [(a.venue, a.name) for a in cfg.accounts] == [
        ("binance-usdm", n) for n in ("alice", "bob", "carol", "dave")
    ]
    alice = cfg.accounts[0]
    assert alice.api_key is not None and alice.api_key.reveal() == "k-alice"
    assert "k-alice" not in repr(cfg)  # secrets print as ***
    (venue,) = cfg.venues
    assert (venue.rest_url, venue.ws_url) == ("http://127.0.0.1:2", "ws://127.0.0.1:1")
    assert (venue.stale_after_s, venue.resync_interval_s) == (5.0, 30.0)
    monkeypatch.delenv(demo_binance.credentials("bob")[1])
    with pytest.raises(UsageError, match="MARGINWATCH_DEMO_BOB_API_SECRET is not set"):
        demo_config("ws://127.0.0.1:1", rest_url="http://127.0.0.1:2", venue="binance")


async def snapshot_a_tick_apart(
    monkeypatch: pytest.MonkeyPatch, move: float, *, store_rate: float = 1.0
) -> tuple[list[Any], MarkPrice, float]:
    """alice short 50 ETHUSDT; positionRisk answers after the mark moved by ``move`` (the
    account answer before). ``store_rate`` scales the brackets the store is given (1 = the ones
    the fake account uses). Returns the snapshot's events, the market feed's mark, and the
    venue's ETHUSDT MM at positionRisk's mark."""
    from connectors.binance.feeds import BinanceUserFeed
    from connectors.binance.rest import BinanceRest, Credentials
    from connectors.fakes.binance import FakeAccount, views

    async with FakeBinance() as fake:
        acct = fake.add_account(
            FakeAccount("alice", api_key="k", secret="s", balances={"USDT": 10_000.0})
        )
        acct.order("ETHUSDT", "SELL", 50.0)
        risk_body, brackets_body = views.position_risk_body, views.brackets_body

        def risk_a_tick_later(a: FakeAccount, kind: Any) -> Any:
            # Binance recomputes marks between the two answers (every second in reality).
            saved = fake.marks["ETHUSDT"]
            fake.marks["ETHUSDT"] = saved + move
            try:
                return risk_body(a, kind)
            finally:
                fake.marks["ETHUSDT"] = saved

        def other_brackets(a: FakeAccount, kind: Any) -> Any:
            # Rates and deductions scaled alike: still a valid table, just not the venue's.
            rows = brackets_body(a, kind)
            for row in rows:
                for b in row["brackets"]:
                    b["maintMarginRatio"] *= store_rate
                    b["cum"] *= store_rate
            return rows

        monkeypatch.setattr(views, "position_risk_body", risk_a_tick_later)
        monkeypatch.setattr(views, "brackets_body", other_brackets)
        rest = BinanceRest(fake.spec, base_url=fake.rest_url, credentials=Credentials("k", "s"))
        feed = BinanceUserFeed(fake.spec, "alice", rest, ws_base=fake.ws_url)
        try:
            events, _ = await feed.snapshot()
        finally:
            await feed.close()
        mark = MarkPrice(fake.spec.venue, "ETHUSDT", fake.marks["ETHUSDT"], 0)  # market feed's
        fake.marks["ETHUSDT"] += move
        venue_mm = acct.maint_margin(acct.positions[("ETHUSDT", "BOTH")])
    return events, mark, venue_mm


@pytest.mark.parametrize(
    "move",
    [
        0.0,  # the control: both answers at the same mark agree with our model
        # positionRisk answers a tick later: its maintMargin and markPrice are of one instant,
        # the account's totalMaintMargin is not; figures of one instant are compared.
        0.01,
    ],
)
async def test_a_mark_moving_between_the_two_snapshot_requests_is_not_model_drift(
    monkeypatch: pytest.MonkeyPatch, move: float
) -> None:
    from connectors.events import AccountSnapshot
    from monitor.engine import Engine
    from monitor.store import Store
    from rules.alerts import AlertConfig
    from rules.types import Side

    events, mark, venue_mm = await snapshot_a_tick_apart(monkeypatch, move)
    (snap,) = [e for e in events if isinstance(e, AccountSnapshot)]
    assert snap.reported is not None
    assert snap.reported.mark_prices == {"ETHUSDT": 3_000.0 + move}
    # 50 × 3 000.01 = 150 000.5 notional: tier [50 000, 600 000) at 0.5 %, cum 50 → 700.0025
    assert venue_mm == pytest.approx(150_000.0 * 0.005 - 50.0 + 50 * move * 0.005, rel=1e-12)
    assert snap.reported.position_maintenance_margin == {("ETHUSDT", Side.BOTH): venue_mm}
    assert snap.reported.total_maintenance_margin == venue_mm  # same instant as the marks
    engine = Engine(Store(), lambda key: AlertConfig(), [])
    alerts = engine.handle([mark, *events], 0)
    assert [a.kind for a in alerts if a.kind == "model_drift"] == []


@pytest.mark.parametrize("move", [0.0, 0.01])
async def test_a_real_model_disagreement_is_still_drift_and_names_the_position(
    monkeypatch: pytest.MonkeyPatch, move: float
) -> None:
    from monitor.engine import Engine
    from monitor.store import Store
    from rules.alerts import AlertConfig

    # The store got brackets at half the venue's rates: a stale table, not a market move.
    events, mark, venue_mm = await snapshot_a_tick_apart(monkeypatch, move, store_rate=0.5)
    engine = Engine(Store(), lambda key: AlertConfig(), [])
    (drift,) = [a for a in engine.handle([mark, *events], 0) if a.kind == "model_drift"]
    assert drift.detail["state"] == "drift"
    assert drift.detail["positions"] == [
        {"symbol": "ETHUSDT", "our_mm": pytest.approx(venue_mm / 2), "venue_mm": venue_mm}
    ]
    assert drift.detail["venue_maintenance_margin"] == venue_mm

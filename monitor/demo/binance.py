"""The fake Binance USDⓈ-M world ``marginwatch demo --venue binance`` plays, and its script.

Four cross-margin accounts on :class:`connectors.fakes.binance.FakeBinance`, sized like the sim
venue's (connectors/fakes/sim/market.py, same crash path and the same Binance-style tier maths):

* ``alice`` — a large SOLUSDT long: the crash takes her through warning → danger → critical →
  liquidatable; Binance sends her a ``MARGIN_CALL`` on the way down, and shortly after her
  equity falls to her maintenance margin the venue liquidates her (``autoclose-`` fill,
  execution ``CALCULATED``): a ``position_liquidated`` alert. Flat, she is ok again.
* ``bob`` — a modest SOLUSDT long: dips to warning/danger, back to ok after the rebound.
* ``carol`` — hedge mode: BTCUSDT LONG and SHORT legs and an ETHUSDT LONG she adds to at 3 s.
* ``dave`` — short ETHUSDT, gains; buys back part of it near the bottom (a fill).

Funding is paid twice during the session. Everything is a function of market time, which the
demo's ``--time-scale`` speeds up; :meth:`DemoScript.advance` is synchronous and pushes through
the fake's sockets, so tests drive it step by step without a network.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from connectors.fakes.binance import FakeAccount, FakeBinance
from connectors.fakes.binance.account import Contract
from connectors.fakes.binance.contracts import USDM_CONTRACTS, brackets
from connectors.fakes.sim.market import CrashScript, InstrumentSpec, MarketPath

log = logging.getLogger(__name__)

VENUE = "binance-usdm"
USDT = "USDT"
MARGIN_CALL_RATIO = 0.8
"""Binance warns (``MARGIN_CALL``) when maintenance margin reaches 80 % of margin balance."""
LIQUIDATION_DELAY_S = 1.0
"""Market seconds between equity reaching maintenance margin and the venue's liquidation: the
liquidation engine is not instantaneous, and the monitor's point is to see it coming first."""
LIQUIDATION_MIN_WALL_S = 0.25
"""...and at least this long in wall time, so a sped-up or catching-up script never puts the
liquidation fill on the private stream before the mark that triggered it on the market stream."""
CRASH = CrashScript()  # the sim venue's: starts at 8 s, bottom 18 s, rebound by 28 s
MAX_CATCH_UP_STEPS = 400
"""Path steps pushed at most per :meth:`DemoScript.advance` (a stalled loop jumps past more)."""


# SOLUSDT with the sim venue's SOL-PERP tiers, so the crash story is the one the sim proves.
SOL_ROWS = (
    (0.0, 10_000.0, 0.01, 50),
    (10_000.0, 100_000.0, 0.015, 25),
    (100_000.0, 500_000.0, 0.025, 20),
    (500_000.0, 2_000_000.0, 0.05, 10),
    (2_000_000.0, 50_000_000.0, 0.1, 5),
)
CONTRACTS: dict[str, Contract] = {
    **USDM_CONTRACTS,
    "SOLUSDT": Contract("SOLUSDT", USDT, 1.0, brackets(SOL_ROWS)),
}


def _instrument(symbol: str, start: float, tick: float, beta: float) -> InstrumentSpec:
    rows = tuple((b.floor, b.cap, b.mmr, float(b.max_leverage)) for b in CONTRACTS[symbol].brackets)
    return InstrumentSpec(symbol, start, tick, beta, rows)


INSTRUMENTS = (
    _instrument("BTCUSDT", 60_000.0, 0.1, 1.0),
    _instrument("ETHUSDT", 3_000.0, 0.01, 1.2),
    _instrument("SOLUSDT", 150.0, 0.001, 1.5),
)


@dataclass(frozen=True, slots=True)
class Leg:
    symbol: str
    side: str  # BUY opens a long, SELL a short
    qty: float
    entry: float
    position_side: str | None = None  # LONG/SHORT in hedge mode


@dataclass(frozen=True, slots=True)
class DemoAccount:
    name: str
    balance: float
    legs: tuple[Leg, ...]
    hedge: bool = False


ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("alice", 180_700.0, (Leg("SOLUSDT", "BUY", 5_000.0, 150.0),)),
    DemoAccount("bob", 23_600.0, (Leg("SOLUSDT", "BUY", 500.0, 150.0),)),
    DemoAccount(
        "carol",
        60_000.0,
        (
            Leg("BTCUSDT", "BUY", 3.0, 60_000.0, "LONG"),
            Leg("BTCUSDT", "SELL", 2.0, 61_000.0, "SHORT"),
            Leg("ETHUSDT", "BUY", 20.0, 3_000.0, "LONG"),
        ),
        hedge=True,
    ),
    DemoAccount("dave", 30_000.0, (Leg("ETHUSDT", "SELL", 50.0, 3_050.0),)),
)


@dataclass(frozen=True, slots=True)
class Scripted:
    """Something an account does at market time ``t_s``."""

    t_s: float
    account: str
    act: Callable[[FakeAccount], None]
    what: str


SCRIPT: tuple[Scripted, ...] = (
    Scripted(3.0, "carol", lambda a: a.order("ETHUSDT", "BUY", 5.0, position_side="LONG"),
             "carol adds 5 ETHUSDT to her long leg"),
    Scripted(10.0, "carol", lambda a: a.funding("ETHUSDT", 0.0001), "ETHUSDT funding"),
    Scripted(10.0, "dave", lambda a: a.funding("ETHUSDT", 0.0001), "ETHUSDT funding"),
    Scripted(17.0, "dave", lambda a: a.order("ETHUSDT", "BUY", 10.0),
             "dave buys back 10 ETHUSDT of his short"),
    Scripted(20.0, "bob", lambda a: a.funding("SOLUSDT", -0.0003), "SOLUSDT funding"),
)  # fmt: skip


def credentials(name: str) -> tuple[str, str]:
    """Environment variable names holding the account's API key and secret in the demo."""
    upper = name.upper()
    return f"MARGINWATCH_DEMO_{upper}_API_KEY", f"MARGINWATCH_DEMO_{upper}_API_SECRET"


def populate(fake: FakeBinance, keys: Callable[[str], tuple[str, str]]) -> None:
    """Open the accounts' positions at their entries; wallets as specified (fees of the setup
    fills refunded). Call before any client connects: nothing is pushed to anyone yet."""
    for spec in ACCOUNTS:
        key, secret = keys(spec.name)
        acct = fake.add_account(
            FakeAccount(spec.name, api_key=key, secret=secret, balances={USDT: spec.balance},
                        hedge=spec.hedge)
        )  # fmt: skip
        saved = dict(fake.marks)
        for leg in spec.legs:
            fake.marks[leg.symbol] = leg.entry  # the fill price: the mark by default
            acct.order(leg.symbol, leg.side, leg.qty, position_side=leg.position_side)
        fake.marks.clear()
        fake.marks.update(saved)
        acct.balances[USDT] = spec.balance


def equity_and_mm(acct: FakeAccount) -> tuple[float, float]:
    """The venue's own view of a cross account: margin balance and maintenance margin."""
    return acct.balances.get(USDT, 0.0) + acct.unrealized(USDT), acct.total_maint_margin(USDT)


class DemoScript:
    """Moves the fake's marks along the crash path and plays the accounts' script."""

    def __init__(
        self,
        fake: FakeBinance,
        *,
        seed: int = 7,
        time_scale: float = 1.0,
        crash: CrashScript = CRASH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fake = fake
        self.path = MarketPath(INSTRUMENTS, seed=seed, crash=crash)
        self.time_scale = time_scale
        self._clock = clock
        self._started = clock()
        self._step = -1
        self._script = sorted(SCRIPT, key=lambda s: s.t_s)
        self._next = 0
        self._margin_called: set[str] = set()
        self._underwater: dict[str, _Underwater] = {}
        self.liquidated: list[str] = []
        fake.marks.update(self.path.prices(0.0))

    @property
    def crash_at_s(self) -> float:
        """When the crash starts, in wall seconds from the start."""
        return self.path.crash.start_s / self.time_scale

    def market_time(self) -> float:
        return (self._clock() - self._started) * self.time_scale

    def advance(self, t_s: float) -> None:
        """Push every path step up to market time ``t_s`` (one mark frame each) and what the
        script and the venue's own rules do on the way."""
        last = self.path.step_of(t_s)
        first = max(self._step + 1, last - MAX_CATCH_UP_STEPS + 1)
        for step in range(first, last + 1):
            t = step * self.path.tick_s
            moved = {s: p for s, p in self.path.prices(t).items() if self.fake.marks.get(s) != p}
            self.fake.set_marks(moved)
            self._play(t)
            self._venue_rules(t)
        self._step = max(self._step, last)

    async def run(self) -> None:
        """Follow market time, one path step per wake-up (late wake-ups catch up)."""
        interval = self.path.tick_s / self.time_scale
        while True:
            self.advance(self.market_time())
            await asyncio.sleep(interval)

    def _play(self, t: float) -> None:
        while self._next < len(self._script) and self._script[self._next].t_s <= t:
            item = self._script[self._next]
            self._next += 1
            log.debug("demo script at %.1f s: %s", t, item.what)
            item.act(self.fake.account(item.account))

    def _venue_rules(self, t: float) -> None:
        """Binance's margin call at 80 % and its liquidation engine, on the venue's figures."""
        for name, acct in self.fake.accounts.by_name.items():
            if not acct.open_positions():
                continue
            equity, mm = equity_and_mm(acct)
            ratio = mm / equity if equity > 0 else math.inf
            if ratio >= MARGIN_CALL_RATIO and name not in self._margin_called:
                self._margin_called.add(name)
                acct.margin_call()
            if ratio < 1.0:
                self._underwater.pop(name, None)
                continue
            since = self._underwater.get(name)
            if since is None:
                marks = {p.symbol: self.fake.marks[p.symbol] for p in acct.open_positions()}
                since = self._underwater[name] = _Underwater(t, self._clock(), marks)
            if t - since.t_s >= LIQUIDATION_DELAY_S and (
                self._clock() - since.wall_s >= LIQUIDATION_MIN_WALL_S
            ):
                self._liquidate(acct, since.marks)

    def _liquidate(self, acct: FakeAccount, at: dict[str, float]) -> None:
        """Close every position as Binance's liquidation engine does (``autoclose-`` orders,
        execution ``CALCULATED``), filled at the marks that triggered it: the engine's orders
        go out at the liquidation price, not at wherever the crash has gone since."""
        log.debug("demo script: the venue liquidates %s", acct.name)
        for p in acct.open_positions():
            side = "SELL" if p.qty > 0 else "BUY"
            client_id = f"autoclose-{self.fake.clock.now_ms()}"
            acct.order(p.symbol, side, abs(p.qty), price=at[p.symbol], position_side=p.side,
                       client_id=client_id, execution="CALCULATED")  # fmt: skip
        self._underwater.pop(acct.name, None)
        self.liquidated.append(acct.name)


@dataclass(frozen=True, slots=True)
class _Underwater:
    """When (market and wall time) and at which marks an account's equity reached its MM."""

    t_s: float
    wall_s: float
    marks: dict[str, float]

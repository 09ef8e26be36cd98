"""The simulated venue's world: instruments, accounts and a deterministic, seeded market path.

Pure (no I/O, no clock): everything is a function of market time ``t`` in seconds since the
venue started, so a test can ask for the state at any instant and get what the server serves.

The path is a mean-reverting random walk (small, so the script dominates) times a scripted move:
flat until ``crash.start_s``, a linear slide to ``-depth·beta`` by ``crash.bottom_s``, held until
``crash.hold_until_s``, then a rebound to ``-rebound_to·beta`` by ``crash.rebound_s``.

The accounts are sized against these numbers (see tests/test_sim_market.py for the proof):
``alice`` (large SOL long) slides warning → danger → critical → liquidatable during the crash;
``bob`` (modest SOL long) dips into warning/danger and is back to ok after the rebound; ``carol``
is a hedge-mode account (BTC long and short legs); ``dave`` is short ETH and gains.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from rules.tiers import TierSpec, TierTable
from rules.types import ContractKind, MarginMode, Side

SETTLE = "USDT"


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    symbol: str
    start_price: float
    tick: float
    beta: float
    # (floor, cap, mmr, max_leverage) per tier; deductions follow from the recurrence.
    tiers: tuple[tuple[float, float, float, float], ...]
    contract_size: float = 1.0
    kind: ContractKind = ContractKind.LINEAR
    settle: str = SETTLE

    def table(self) -> TierTable:
        specs = [TierSpec(f, c, m, None, lev) for f, c, m, lev in self.tiers]
        return TierTable.from_tiers(self.symbol, specs)


@dataclass(frozen=True, slots=True)
class PositionSpec:
    symbol: str
    side: Side
    qty: float  # signed: negative = short
    entry: float
    mode: MarginMode = MarginMode.CROSS


@dataclass(frozen=True, slots=True)
class AccountSpec:
    name: str
    balances: Mapping[str, float]
    positions: tuple[PositionSpec, ...]


@dataclass(frozen=True, slots=True)
class Action:
    """A scripted private-stream event: a new absolute position leg or wallet balance."""

    t_s: float
    account: str
    position: PositionSpec | None = None
    balance: tuple[str, float] | None = None


@dataclass(frozen=True, slots=True)
class CrashScript:
    start_s: float = 8.0
    bottom_s: float = 18.0
    hold_until_s: float = 22.0
    rebound_s: float = 28.0
    depth: float = 0.20
    rebound_to: float = 0.03

    def move(self, t_s: float) -> float:
        """Scripted relative move at ``t_s`` for beta 1 (0 = start price, -0.2 = −20%)."""
        if t_s <= self.start_s:
            return 0.0
        if t_s < self.bottom_s:
            return -self.depth * (t_s - self.start_s) / (self.bottom_s - self.start_s)
        if t_s <= self.hold_until_s:
            return -self.depth
        if t_s < self.rebound_s:
            frac = (t_s - self.hold_until_s) / (self.rebound_s - self.hold_until_s)
            return -self.depth + (self.depth - self.rebound_to) * frac
        return -self.rebound_to


INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec(
        "BTC-PERP",
        60_000.0,
        0.1,
        1.0,
        (
            (0.0, 50_000.0, 0.004, 125.0),
            (50_000.0, 600_000.0, 0.005, 100.0),
            (600_000.0, 3_000_000.0, 0.0065, 75.0),
            (3_000_000.0, 12_000_000.0, 0.01, 50.0),
            (12_000_000.0, 70_000_000.0, 0.02, 25.0),
            (70_000_000.0, 1e12, 0.05, 10.0),
        ),
    ),
    InstrumentSpec(
        "ETH-PERP",
        3_000.0,
        0.01,
        1.2,
        (
            (0.0, 50_000.0, 0.005, 100.0),
            (50_000.0, 600_000.0, 0.0065, 75.0),
            (600_000.0, 3_000_000.0, 0.01, 50.0),
            (3_000_000.0, 12_000_000.0, 0.02, 25.0),
            (12_000_000.0, 1e12, 0.05, 10.0),
        ),
    ),
    InstrumentSpec(
        "SOL-PERP",
        150.0,
        0.001,
        1.5,
        (
            (0.0, 10_000.0, 0.01, 50.0),
            (10_000.0, 100_000.0, 0.015, 25.0),
            (100_000.0, 500_000.0, 0.025, 20.0),
            (500_000.0, 2_000_000.0, 0.05, 10.0),
            (2_000_000.0, 1e12, 0.1, 5.0),
        ),
    ),
)

ACCOUNTS: tuple[AccountSpec, ...] = (
    AccountSpec(
        "alice",
        {SETTLE: 180_700.0},
        (PositionSpec("SOL-PERP", Side.BOTH, 5_000.0, 150.0),),
    ),
    AccountSpec(
        "bob",
        {SETTLE: 23_600.0},
        (PositionSpec("SOL-PERP", Side.BOTH, 500.0, 150.0),),
    ),
    AccountSpec(
        "carol",
        {SETTLE: 60_000.0},
        (
            PositionSpec("BTC-PERP", Side.LONG, 3.0, 60_000.0),
            PositionSpec("BTC-PERP", Side.SHORT, -2.0, 61_000.0),
            PositionSpec("ETH-PERP", Side.LONG, 20.0, 3_000.0),
        ),
    ),
    AccountSpec(
        "dave",
        {SETTLE: 30_000.0},
        (PositionSpec("ETH-PERP", Side.BOTH, -50.0, 3_050.0),),
    ),
)

ACTIONS: tuple[Action, ...] = (
    # carol adds to her ETH leg before the crash: a private position push.
    Action(3.0, "carol", position=PositionSpec("ETH-PERP", Side.LONG, 25.0, 3_000.0)),
    # dave takes profit into his wallet at the bottom: a private balance push.
    Action(17.0, "dave", balance=(SETTLE, 32_000.0)),
)


class MarketPath:
    """Deterministic prices per symbol at market time ``t`` (seconds), rounded to the tick.

    The walk is stepped forward on demand (O(1) memory for long demos); asking for an earlier
    time than the last one replays it from the seed.
    """

    def __init__(
        self,
        instruments: Sequence[InstrumentSpec] = INSTRUMENTS,
        *,
        seed: int = 7,
        crash: CrashScript = CrashScript(),
        tick_s: float = 0.025,
        walk_sigma: float = 0.0002,
        walk_revert: float = 0.02,
    ) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self.seed = seed
        self.crash = crash
        self.tick_s = tick_s
        self._sigma = walk_sigma
        self._revert = walk_revert
        self._walk: dict[str, tuple[int, float, random.Random]] = {}

    def _walk_at(self, symbol: str, step: int) -> float:
        state = self._walk.get(symbol)
        if state is None or state[0] > step:
            state = (0, 0.0, random.Random(f"{self.seed}:{symbol}"))
        k, x, rng = state
        while k < step:
            x = x * (1.0 - self._revert) + rng.gauss(0.0, self._sigma)
            k += 1
        self._walk[symbol] = (k, x, rng)
        return x

    def step_of(self, t_s: float) -> int:
        return max(0, int(t_s / self.tick_s))

    def price(self, symbol: str, t_s: float) -> float:
        spec = self.instruments[symbol]
        step = self.step_of(t_s)
        scripted = 1.0 + spec.beta * self.crash.move(step * self.tick_s)
        raw = spec.start_price * scripted * math.exp(self._walk_at(symbol, step))
        return round(round(raw / spec.tick) * spec.tick, 10)

    def prices(self, t_s: float) -> dict[str, float]:
        return {s: self.price(s, t_s) for s in self.instruments}


@dataclass(slots=True)
class World:
    """Account state at market time: the initial accounts with the scripted actions applied."""

    accounts: Sequence[AccountSpec] = ACCOUNTS
    actions: Sequence[Action] = ACTIONS
    extra: list[Action] = field(default_factory=list)

    def accounts_at(self, t_s: float) -> dict[str, AccountSpec]:
        state = {a.name: a for a in self.accounts}
        for act in sorted([*self.actions, *self.extra], key=lambda a: a.t_s):
            if act.t_s > t_s or act.account not in state:
                continue
            state[act.account] = apply_action(state[act.account], act)
        return state


def apply_action(acct: AccountSpec, act: Action) -> AccountSpec:
    if act.balance is not None:
        asset, value = act.balance
        acct = replace(acct, balances={**acct.balances, asset: value})
    if act.position is not None:
        new = act.position
        legs = [p for p in acct.positions if (p.symbol, p.side) != (new.symbol, new.side)]
        if new.qty != 0.0:
            legs.append(new)
        acct = replace(acct, positions=tuple(legs))
    return acct

"""The sim market path is deterministic and its crash takes the accounts where the demo needs them.

Health comes from rules.account (the same maths the store uses): some account must pass warning
(< 2.0), critical (< 1.2) and liquidatable (<= 1.0) on consecutive path ticks, and some account
must be back above the ok hysteresis (2.0 · 1.05) for good after the rebound.
"""

from __future__ import annotations

import pytest

from connectors.fakes.sim.market import (
    ACCOUNTS,
    INSTRUMENTS,
    Action,
    CrashScript,
    MarketPath,
    PositionSpec,
    World,
    apply_action,
)
from rules.account import AccountInput, PositionInput, account_figures
from rules.types import ContractKind, Side

WARNING, DANGER, CRITICAL, LIQUIDATABLE = 2.0, 1.5, 1.2, 1.0
OK_AGAIN = WARNING * 1.05
TABLES = {i.symbol: i.table() for i in INSTRUMENTS}


def level(health: float) -> int:
    if health <= LIQUIDATABLE:
        return 4
    if health < CRITICAL:
        return 3
    if health < DANGER:
        return 2
    if health < WARNING:
        return 1
    return 0


def healths(path: MarketPath, world: World, t: float) -> dict[str, float]:
    prices = path.prices(t)
    out = {}
    for name, acct in world.accounts_at(t).items():
        positions = [
            PositionInput(
                p.symbol,
                p.side,
                p.qty,
                p.entry,
                prices[p.symbol],
                ContractKind.LINEAR,
                1.0,
                TABLES[p.symbol],
                p.mode,
            )
            for p in acct.positions
        ]
        out[name] = account_figures(AccountInput("sim", acct.balances, positions)).health
    return out


def timeline(seed: int, until_s: float = 40.0) -> dict[str, list[float]]:
    path, world = MarketPath(seed=seed), World()
    series: dict[str, list[float]] = {a.name: [] for a in ACCOUNTS}
    for step in range(int(until_s / path.tick_s)):
        for name, h in healths(path, world, step * path.tick_s).items():
            series[name].append(h)
    return series


def test_path_is_deterministic_per_seed() -> None:
    a, b, c = MarketPath(seed=7), MarketPath(seed=7), MarketPath(seed=8)
    times = [0.0, 1.0, 9.5, 16.0, 30.0]
    assert [a.prices(t) for t in times] == [b.prices(t) for t in times]
    assert [a.prices(t) for t in times] != [c.prices(t) for t in times]


def test_asking_backwards_replays_the_same_walk() -> None:
    path = MarketPath(seed=3)
    later = path.price("BTC-PERP", 12.0)
    earlier = path.price("BTC-PERP", 2.0)
    assert path.price("BTC-PERP", 12.0) == later
    assert MarketPath(seed=3).price("BTC-PERP", 2.0) == earlier


def test_start_prices_and_tick_rounding() -> None:
    path = MarketPath(walk_sigma=0.0)
    assert path.prices(0.0) == {"BTC-PERP": 60_000.0, "ETH-PERP": 3_000.0, "SOL-PERP": 150.0}
    # Bottom of the crash: −20 % · beta (BTC 1.0, ETH 1.2, SOL 1.5), exact without the walk.
    assert path.prices(20.0) == {"BTC-PERP": 48_000.0, "ETH-PERP": 2_280.0, "SOL-PERP": 105.0}
    # After the rebound: −3 % · beta.
    assert path.prices(40.0) == {"BTC-PERP": 58_200.0, "ETH-PERP": 2_892.0, "SOL-PERP": 143.25}


def test_crash_script_shape() -> None:
    crash = CrashScript()
    assert crash.move(0.0) == 0.0
    assert crash.move(crash.start_s) == 0.0
    assert crash.move((crash.start_s + crash.bottom_s) / 2) == pytest.approx(-0.10)
    assert crash.move(crash.bottom_s) == -0.20
    assert crash.move(crash.hold_until_s) == -0.20
    assert crash.move(crash.rebound_s + 1) == pytest.approx(-0.03)


@pytest.mark.parametrize("seed", [7, 1, 2, 3, 42])
def test_crash_takes_alice_through_every_level_and_bob_back_to_ok(seed: int) -> None:
    series = timeline(seed)
    alice = [level(h) for h in series["alice"]]
    # Each of warning, critical and liquidatable is visited on some tick, in that order.
    first = {lv: alice.index(lv) for lv in (1, 3, 4)}
    assert first[1] < first[3] < first[4]
    assert min(series["alice"]) < 0.0  # deep under water at the bottom

    bob = series["bob"]
    worst = bob.index(min(bob))
    assert level(bob[worst]) >= 1  # bob dips into warning or worse
    # ... and then stays above the de-escalation band for the rest of the run (≥ 10 s).
    recovered_at = next(i for i in range(worst, len(bob)) if bob[i] >= OK_AGAIN)
    assert all(h >= OK_AGAIN for h in bob[recovered_at:])
    assert (len(bob) - recovered_at) * MarketPath().tick_s >= 10.0


def test_alice_has_several_ticks_in_the_critical_band() -> None:
    alice = [level(h) for h in timeline(7, until_s=25.0)["alice"]]
    assert alice.count(3) >= 3  # not skipped over in one tick


def test_hedge_account_holds_both_legs() -> None:
    carol = World().accounts_at(0.0)["carol"]
    sides = {(p.symbol, p.side) for p in carol.positions}
    assert {("BTC-PERP", Side.LONG), ("BTC-PERP", Side.SHORT)} <= sides


def test_scripted_actions_apply_in_time() -> None:
    world = World()
    before, after = world.accounts_at(2.9)["carol"], world.accounts_at(3.0)["carol"]
    eth = {p.symbol: p.qty for p in before.positions if p.side is Side.LONG}
    assert eth["ETH-PERP"] == 20.0
    assert {p.symbol: p.qty for p in after.positions if p.side is Side.LONG}["ETH-PERP"] == 25.0


def test_action_with_zero_qty_closes_the_leg() -> None:
    carol = World().accounts_at(0.0)["carol"]
    closed = apply_action(
        carol, Action(1.0, "carol", position=PositionSpec("BTC-PERP", Side.SHORT, 0.0, 0.0))
    )
    assert ("BTC-PERP", Side.SHORT) not in {(p.symbol, p.side) for p in closed.positions}

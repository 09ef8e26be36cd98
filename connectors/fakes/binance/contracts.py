"""The fake venue's contracts and default brackets (spec/margin.md §1.1.1; COIN-M illustrative).

Fixtures only: the live monitor always fetches brackets from the venue.
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors.fakes.binance.account import Bracket, Contract


def brackets(rows: Sequence[tuple[float, float, float, int]]) -> tuple[Bracket, ...]:
    """Rows of (floor, cap, mmr, max leverage); ``cum`` from Binance's recurrence."""
    out: list[Bracket] = []
    prev_mmr, cum = 0.0, 0.0
    for n, (floor, cap, mmr, lev) in enumerate(rows):
        cum = 0.0 if n == 0 else floor * (mmr - prev_mmr) + cum
        out.append(Bracket(floor, cap, mmr, round(cum, 10), lev))
        prev_mmr = mmr
    return tuple(out)


# BTCUSDT and ETHUSDT default brackets, Oct 2024 snapshot (spec/margin.md §1.1.1).
BTCUSDT = brackets(
    [
        (0, 50_000, 0.004, 125),
        (50_000, 600_000, 0.005, 100),
        (600_000, 3_000_000, 0.0065, 75),
        (3_000_000, 12_000_000, 0.01, 50),
        (12_000_000, 70_000_000, 0.02, 25),
        (70_000_000, 100_000_000, 0.025, 20),
        (100_000_000, 230_000_000, 0.05, 10),
        (230_000_000, 480_000_000, 0.10, 5),
        (480_000_000, 600_000_000, 0.125, 4),
        (600_000_000, 800_000_000, 0.15, 3),
        (800_000_000, 1_200_000_000, 0.25, 2),
        (1_200_000_000, 1_800_000_000, 0.50, 1),
    ]
)
ETHUSDT = brackets(
    [
        (0, 50_000, 0.004, 125),
        (50_000, 600_000, 0.005, 100),
        (600_000, 3_000_000, 0.0065, 75),
        (3_000_000, 12_000_000, 0.01, 50),
        (12_000_000, 50_000_000, 0.02, 25),
        (50_000_000, 65_000_000, 0.025, 20),
        (65_000_000, 150_000_000, 0.05, 10),
        (150_000_000, 320_000_000, 0.10, 5),
        (320_000_000, 400_000_000, 0.125, 4),
        (400_000_000, 530_000_000, 0.15, 3),
        (530_000_000, 800_000_000, 0.25, 2),
        (800_000_000, 1_200_000_000, 0.50, 1),
    ]
)
# COIN-M brackets are in coin. The upper levels follow the COIN-M FAQ's worked example (levels
# from 50 BTC at 5 %, 100 BTC at 10 %, 200 BTC at 12.5 %); the lower ones are illustrative.
BTCUSD_PERP = brackets(
    [
        (0, 5, 0.004, 125),
        (5, 10, 0.005, 100),
        (10, 20, 0.01, 50),
        (20, 50, 0.025, 20),
        (50, 100, 0.05, 10),
        (100, 200, 0.10, 5),
        (200, 400, 0.125, 4),
        (400, 1000, 0.15, 2),
        (1000, 5000, 0.25, 1),
    ]
)
ETHUSD_PERP = brackets(
    [
        (0, 100, 0.005, 75),
        (100, 500, 0.01, 50),
        (500, 2000, 0.025, 20),
        (2000, 10_000, 0.05, 10),
        (10_000, 100_000, 0.125, 4),
    ]
)

USDM_CONTRACTS = {
    "BTCUSDT": Contract("BTCUSDT", "USDT", 1.0, BTCUSDT),
    "ETHUSDT": Contract("ETHUSDT", "USDT", 1.0, ETHUSDT),
}
COINM_CONTRACTS = {
    "BTCUSD_PERP": Contract("BTCUSD_PERP", "BTC", 100.0, BTCUSD_PERP),
    "ETHUSD_PERP": Contract("ETHUSD_PERP", "ETH", 10.0, ETHUSD_PERP),
}

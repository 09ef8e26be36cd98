"""Tier tables: spec/margin.md §1.1 (Binance), §1.6 (COIN-M), §2.2 (Bybit), §3.2 OKX, §5.1 HL."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.errors import TierTableError
from rules.model import MarginModel
from rules.tiers import TierSpec, TierTable, hyperliquid_table
from rules.types import Piece

DATA = Path(__file__).parent / "data"


def binance_table(symbol: str) -> TierTable:
    doc: dict[str, Any] = json.loads((DATA / "calc_binance_tiers.json").read_text())
    rows = doc[symbol]["tiers"] if isinstance(doc[symbol], dict) else doc[symbol]
    specs = [
        TierSpec(r["floor"], r["cap"], r["mmr"], r["deduction"], r["max_leverage"]) for r in rows
    ]
    return TierTable.from_tiers(symbol, specs)


def test_tier_table_is_a_margin_model() -> None:
    model: MarginModel = binance_table("BTCUSDT")
    assert model.rounding_quantum == 0.0


@pytest.mark.parametrize(
    ("notional", "bracket", "mmr", "cum", "mm"),
    [
        (10_000, 1, 0.004, 0, 40),
        (264_000, 2, 0.005, 50, 1_270),
        (500_000, 2, 0.005, 50, 2_450),
        (1_000_000, 3, 0.0065, 950, 5_550),
        (5_000_000, 4, 0.01, 11_450, 38_550),
        (75_000_000, 6, 0.025, 481_450, 1_393_550),
    ],
)
def test_binance_btcusdt_bracket_vectors(
    notional: float, bracket: int, mmr: float, cum: float, mm: float
) -> None:
    # spec §1.1.1 "Bracket-lookup vectors".
    table = binance_table("BTCUSDT")
    piece = table.piece(notional, 0.0)
    assert piece == table.pieces[bracket - 1]
    assert piece.mm_rate == mmr
    assert piece.mm_deduction == pytest.approx(cum, abs=1e-9)
    assert table.maintenance(notional, 0.0) == pytest.approx(mm, abs=1e-9)


def test_binance_published_cum_matches_recurrence_for_both_tables() -> None:
    # The published cum column is accepted (validated) and equals a derived table.
    for symbol in ("BTCUSDT", "ETHUSDT"):
        given_table = binance_table(symbol)
        derived = TierTable.from_tiers(
            symbol,
            [
                TierSpec(p.lo, p.hi if math.isfinite(p.hi) else 1.8e9, p.mm_rate, None, 1.0)
                for p in given_table.pieces
            ],
        )
        for a, b in zip(given_table.pieces, derived.pieces, strict=True):
            assert a.mm_deduction == pytest.approx(b.mm_deduction, rel=1e-12, abs=1e-9)
    assert binance_table("ETHUSDT").pieces[-1].mm_deduction == 280_506_450


def test_faq_2020_table_examples() -> None:
    # spec §1.1.2: "264,000 USDT → MMR 1%" and "500,000 USDT → maintenance amount 1,300".
    table = binance_table("BTCUSDT_2020")
    assert table.piece(264_000, 0.0).mm_rate == 0.01
    assert table.piece(500_000, 0.0).mm_deduction == 1_300


def test_lower_bound_inclusive_and_last_tier_open_ended() -> None:
    table = binance_table("BTCUSDT")
    assert table.piece(50_000, 0.0).mm_rate == 0.005
    assert table.piece(49_999.999, 0.0).mm_rate == 0.004
    beyond = table.piece(5e9, 0.0)  # above the last published cap: the last tier keeps applying
    assert beyond.mm_rate == 0.5
    assert beyond.hi == math.inf
    assert beyond.im_rate == 1.0


def test_piece_fields_follow_the_contract() -> None:
    table = binance_table("BTCUSDT")
    assert table.piece(1e6, 0.0) == Piece(600_000, 3_000_000, 0.0065, 950, 1 / 75)


def test_initial_margin_from_leverage_or_tier() -> None:
    table = binance_table("BTCUSDT")
    assert table.initial(100_000, 0.0, 20.0) == 5_000
    assert table.initial(100_000, 0.0, None) == pytest.approx(1_000)  # tier 2: 100x


def test_coinm_cum_step_in_coin() -> None:
    # spec §1.6: "Level 5 cum = 50 BTC × (5% − 2.5%) + 0.56 BTC = 1.81 BTC" (previous cum 0.56).
    table = TierTable.from_tiers(
        "BTCUSD",
        [
            TierSpec(0, 28, 0.005, 0, 125),
            TierSpec(28, 50, 0.025, 0.56, 50),
            TierSpec(50, 300, 0.05, 1.81, 20),
        ],
    )
    assert table.piece(60, 0.0).mm_deduction == 1.81


def test_bybit_xyz_illustration() -> None:
    # spec §2.2: tiers 2%..4% per 1,000, deductions [0, 5, 15, 30, 50]; 3,500 value -> 92.5.
    rates = [0.02, 0.025, 0.03, 0.035, 0.04]
    deds = [0, 5, 15, 30, 50]
    specs = [TierSpec(1000 * i, 1000 * (i + 1), rates[i], deds[i], 50) for i in range(5)]
    table = TierTable.from_tiers("XYZUSDT", specs)
    assert table.maintenance(3_500, 0.0) == pytest.approx(92.5, abs=1e-12)
    slices = 1000 * 0.02 + 1000 * 0.025 + 1000 * 0.03 + 500 * 0.035
    assert table.maintenance(3_500, 0.0) == pytest.approx(slices, abs=1e-12)


@pytest.mark.parametrize(
    ("notional", "mmr"), [(2000, 0.01), (2001, 0.015), (4001, 0.02), (8000, 0.02)]
)
def test_okx_no_deduction_vectors(notional: float, mmr: float) -> None:
    # spec §3.2 freqtrade test: [0, 2000] 1%, [2001, 4000] 1.5%, [4001, 8000] 2%, selected by
    # minNotional (lower-inclusive), i.e. contiguous tiers with floors 0 / 2001 / 4001.
    table = TierTable.from_tiers(
        "ETH-USDT",
        [
            TierSpec(0, 2001, 0.01, None, 100),
            TierSpec(2001, 4001, 0.015, 0, 50),
            TierSpec(4001, 8001, 0.02, None, 20),
        ],
        deduction=False,
    )
    assert table.piece(notional, 0.0).mm_rate == mmr
    assert table.maintenance(notional, 0.0) == pytest.approx(notional * mmr)


def test_okx_rejects_a_deduction() -> None:
    with pytest.raises(TierTableError, match=r"^ETH-USDT: tier 2: deduction must be absent or 0"):
        TierTable.from_tiers(
            "ETH-USDT",
            [TierSpec(0, 2000, 0.01, 0, 100), TierSpec(2000, 4000, 0.015, 10, 50)],
            deduction=False,
        )


def test_hyperliquid_btc_tiers() -> None:
    # spec §5.1: mmr1 = 1.25%, mmr2 = 2.5%, deduction2 = 1.875M; MM(200M) = 3.125M.
    table = hyperliquid_table("BTC", [(0, 40), (150e6, 20)])
    assert table.pieces[0].mm_rate == 0.0125
    assert table.pieces[1].mm_rate == 0.025
    assert table.pieces[1].mm_deduction == 1.875e6
    assert table.maintenance(150e6, 0.0) == pytest.approx(1.875e6)
    assert table.maintenance(150e6 * (1 - 1e-15), 0.0) == pytest.approx(1.875e6)
    assert table.maintenance(200e6, 0.0) == 3.125e6


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([], r"^S: tier table is empty$"),
        ([TierSpec(10, 20, 0.01, 0, 10)], r"^S: tier 1: floor must be 0"),
        (
            [TierSpec(0, 50, 0.01, 0, 10), TierSpec(60, 90, 0.02, 0.6, 10)],
            r"^S: tier 2: floor 60 != previous cap 50 \(gap\)",
        ),
        (
            [TierSpec(0, 50, 0.01, 0, 10), TierSpec(40, 90, 0.02, 0.4, 10)],
            r"^S: tier 2: floor 40 != previous cap 50 \(overlap\)",
        ),
        (
            [TierSpec(0, 50, 0.01, 0, 10), TierSpec(50, 50, 0.02, 0.5, 10)],
            r"^S: tier 2: cap 50 must be > floor 50",
        ),
        (
            [TierSpec(0, 50, 0.01, 0, 10), TierSpec(50, 90, 0.02, 0.6, 10)],
            r"^S: tier 2: deduction 0.6 inconsistent with the recurrence \(expected 0.5\)",
        ),
        ([TierSpec(0, 50, 0.01, 3, 10)], r"^S: tier 1: deduction 3 inconsistent"),
        ([TierSpec(0, 50, 0.0, 0, 10)], r"^S: tier 1: mmr 0 must be in \(0, 1\]"),
        ([TierSpec(0, 50, 0.01, 0, None)], r"^S: tier 1: max_leverage is missing"),
        ([TierSpec(0, 50, 0.01, 0, 0.5)], r"^S: tier 1: max_leverage 0.5 must be >= 1"),
        (
            [TierSpec(0, math.inf, 0.01, 0, 10), TierSpec(math.inf, math.inf, 0.02, 0, 5)],
            r"^S: tier 1: cap must be finite",
        ),
    ],
)
def test_validation_names_the_tier(specs: list[TierSpec], message: str) -> None:
    with pytest.raises(TierTableError, match=message):
        TierTable.from_tiers("S", specs)


@st.composite
def deduction_tables(draw: st.DrawFn) -> TierTable:
    n = draw(st.integers(1, 10))
    widths = draw(st.lists(st.floats(1.0, 1e8), min_size=n, max_size=n))
    rates = sorted(draw(st.lists(st.floats(1e-4, 0.5), min_size=n, max_size=n)))
    floors = [0.0]
    for w in widths[:-1]:
        floors.append(floors[-1] + w)
    caps = [*floors[1:], floors[-1] + widths[-1]]
    specs = [TierSpec(f, c, r, None, 10) for f, c, r in zip(floors, caps, rates, strict=True)]
    return TierTable.from_tiers("P", specs)


@given(deduction_tables())
def test_mm_is_continuous_at_every_floor(table: TierTable) -> None:
    for below, above in zip(table.pieces, table.pieces[1:], strict=False):
        floor = above.lo
        assert below.mm(floor) == pytest.approx(above.mm(floor), rel=1e-12, abs=1e-9)
        # and the lookup switches exactly at the floor (lower bound inclusive)
        assert table.piece(floor, 0.0) == above
        assert table.piece(math.nextafter(floor, 0.0), 0.0) == below


@given(deduction_tables(), st.floats(0.0, 1e9), st.floats(0.0, 1e9))
def test_mm_is_monotone_and_nonnegative(table: TierTable, x: float, y: float) -> None:
    lo, hi = sorted((x, y))
    mm_lo = table.maintenance(lo, 0.0)
    assert mm_lo >= -1e-9 * max(1.0, lo)
    assert table.maintenance(hi, 0.0) >= mm_lo - 1e-9 * max(1.0, hi)

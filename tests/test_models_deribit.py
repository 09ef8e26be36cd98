"""Deribit linear perpetuals (spec/margin.md §4.2): rate = base + size·k, size in coin."""

from __future__ import annotations

import pytest

from rules.account import PositionInput, position_figures
from rules.errors import ModelInputError
from rules.model import MarginModel
from rules.size_linear import SizeLinearModel
from rules.types import ContractKind, Side

BTC_USDC = SizeLinearModel(mm_base=0.01, im_base=0.02, k=0.00005)
SOL_USDC = SizeLinearModel(mm_base=0.02, im_base=0.04, k=0.000005)


@pytest.mark.parametrize(
    ("model", "symbol", "size", "price", "im_rate", "im", "mm_rate", "mm"),
    [
        (BTC_USDC, "BTC_USDC", 350, 100_000, 0.0375, 1_312_500, 0.0275, 962_500),
        (SOL_USDC, "SOL_USDC", 6_000, 200, 0.07, 84_000, 0.05, 60_000),
    ],
)
def test_worked_examples(
    *,
    model: SizeLinearModel,
    symbol: str,
    size: float,
    price: float,
    im_rate: float,
    im: float,
    mm_rate: float,
    mm: float,
) -> None:
    assert model.im_rate(size) == pytest.approx(im_rate, rel=1e-12)
    assert model.mm_rate(size) == pytest.approx(mm_rate, rel=1e-12)
    p = PositionInput(symbol, Side.BOTH, -size, price, price, ContractKind.LINEAR, 1.0, model)
    f = position_figures(p)
    assert f.notional == size * price
    assert f.initial_margin == pytest.approx(im, rel=1e-12)
    assert f.maintenance_margin == pytest.approx(mm, rel=1e-12)
    # 13.125 BTC and 9.625 BTC at 100,000 (the BTC_USDC row in coin)
    if symbol == "BTC_USDC":
        assert f.initial_margin / price == pytest.approx(13.125, rel=1e-12)
        assert f.maintenance_margin / price == pytest.approx(9.625, rel=1e-12)


def test_one_piece_over_the_whole_line_depends_on_size() -> None:
    model: MarginModel = BTC_USDC
    piece = model.piece(1e9, 10.0)
    assert (piece.lo, piece.hi, piece.mm_deduction) == (0.0, float("inf"), 0.0)
    assert piece.mm_rate == pytest.approx(0.0105)
    assert model.initial(1000.0, 10.0, 4.0) == 250.0
    assert model.rounding_quantum == 0.0


def test_contract_size_scales_size() -> None:
    p = PositionInput(
        "BTC_USDC", Side.BOTH, 35_000, 1, 100_000, ContractKind.LINEAR, 0.01, BTC_USDC
    )
    assert position_figures(p).maintenance_margin == pytest.approx(962_500, rel=1e-12)


def test_rejects_negative_parameters() -> None:
    with pytest.raises(ModelInputError, match=r"^k: must be"):
        SizeLinearModel(0.01, 0.02, -1.0)

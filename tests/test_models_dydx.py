"""dYdX v4 (spec/margin.md §6): MMF = IMF × MF, OI-scaled IMF, rounding up to 1e-6 USD."""

from __future__ import annotations

import pytest

from rules.errors import ModelInputError
from rules.imf_mf import QUANTUM, ImfMfModel, adjusted_imf_ppm
from rules.model import MarginModel


@pytest.mark.parametrize(
    ("imf", "mf", "mmf_ppm"),
    [(0.15, 0.80, 120_000), (0.45, 0.77, 346_500), (0.637239, 0.289284, 184_343)],
)
def test_mmf_vectors(imf: float, mf: float, mmf_ppm: int) -> None:
    assert ImfMfModel(imf, mf).mmf_ppm == mmf_ppm


@pytest.mark.parametrize(
    ("oi", "ppm"),
    [
        (0, 200_000),
        (1_000_000, 200_000),
        (1_234_567, 387_653),
        (1_500_000, 600_000),
        (2_000_000, 1_000_000),
        (2_500_000, 1_000_000),
    ],
)
def test_adjusted_imf_vectors(oi: float, ppm: int) -> None:
    assert adjusted_imf_ppm(200_000, 1_000_000, 2_000_000, oi) == ppm
    assert ImfMfModel(0.2, 0.5, 1_000_000, 2_000_000, oi).effective_imf_ppm == ppm


def test_no_scaling_without_upper_cap() -> None:
    assert adjusted_imf_ppm(200_000, 0, 0, 1e12) == 200_000


def quantums(usd: float) -> int:
    n = usd / QUANTUM
    assert n == pytest.approx(round(n), abs=1e-6)
    return round(n)


def test_initial_margin_with_open_interest() -> None:
    # base 20%, caps 25e12–60e12, OI 28,123,456,789,123, 500,000 quote quantums -> 135,697.
    model = ImfMfModel(0.2, 0.5, 25e12, 60e12, 28_123_456_789_123)
    assert quantums(model.initial(500_000 * QUANTUM, 0.0, None)) == 135_697
    half = ImfMfModel(0.2, 0.5, 25e12, 60e12, 42.5e12)  # scaling 0.5 -> IMF 60%
    assert quantums(half.initial(500_000 * QUANTUM, 0.0, None)) == 300_000


@pytest.mark.parametrize(("imf", "size_q", "im_q"), [(0.1, 1, 1), (0.567243, 123_456, 70_030)])
def test_initial_margin_rounds_up(imf: float, size_q: int, im_q: int) -> None:
    assert quantums(ImfMfModel(imf, 0.5).initial(size_q * QUANTUM, 0.0, None)) == im_q


def test_maintenance_uses_base_imf_and_rounds_twice() -> None:
    # Large-cap tier: IMF 2%, MF 60% -> MMF 1.2%; OI scaling must not touch MM.
    scaled = ImfMfModel(0.02, 0.6, 1e6, 2e6, 1.5e6)
    base = ImfMfModel(0.02, 0.6)
    assert scaled.effective_imf_ppm > base.effective_imf_ppm
    assert scaled.maintenance(100_000.0, 0.0) == base.maintenance(100_000.0, 0.0)
    assert quantums(base.maintenance(100_000.0, 0.0)) == 1_200_000_000
    # 51 quantums: ceil(ceil(51·0.02)·0.6) = ceil(2·0.6) = 2, where one ceil(51·0.012) gives 1.
    assert quantums(base.maintenance(51 * QUANTUM, 0.0)) == 2
    assert quantums(base.maintenance(QUANTUM, 0.0)) == 1
    assert quantums(base.maintenance(0.0, 0.0)) == 0


def test_piece_is_the_unrounded_line() -> None:
    model: MarginModel = ImfMfModel(0.02, 0.6)
    piece = model.piece(5_000.0, 0.0)
    assert piece.mm_rate == pytest.approx(0.012)
    assert piece.im_rate == pytest.approx(0.02)
    assert model.rounding_quantum == QUANTUM
    assert -1e-12 <= model.maintenance(5_000.37, 0.0) - piece.mm(5_000.37) <= 2 * QUANTUM


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"imf": 0.0, "mf": 0.5}, "^imf: must be in"),
        ({"imf": 0.1, "mf": 1.5}, "^mf: must be in"),
        ({"imf": 0.1, "mf": 0.5, "oi_lower_cap": 5.0, "oi_upper_cap": 2.0}, "^oi_upper_cap"),
    ],
)
def test_rejects_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ModelInputError, match=message):
        ImfMfModel(**kwargs)

"""The Binance ws-samples the tests decode: a copy of ``shared/ws-samples/binance-usdm`` kept in
the repository, so a clean clone tests on its own (``test_samples`` checks the copy against
``shared/`` whenever that sits beside the clone)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "tests" / "data" / "ws-samples" / "binance-usdm"
SHARED_SAMPLES = REPO_ROOT.parent / "shared" / "ws-samples" / "binance-usdm"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()

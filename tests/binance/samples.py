"""Locate the shared ws-samples: ``shared/`` is a sibling of the repository clone."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT.parent / "shared" / "ws-samples" / "binance-usdm"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()

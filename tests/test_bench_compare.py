"""``python -m bench.compare``'s judgement: which way is better, and the 10 % rule."""

from __future__ import annotations

from bench.compare import compare, direction


def test_direction_of_figures() -> None:
    assert direction("tick_10k_us") == "lower"
    assert direction("bytes_per_position") == "lower"
    assert direction("ingest_frames_per_s") == "higher"
    assert direction("speedup_vs_cryptofeed") == "higher"
    assert direction("cryptofeed_mark_us_measured") is None  # the peer's speed, not ours
    assert direction("positions") is None


def test_ten_percent_rule_each_way() -> None:
    base = {"tick_10k_us": 100.0, "ingest_frames_per_s": 200_000.0, "positions": 5.0}
    head = {"tick_10k_us": 111.0, "ingest_frames_per_s": 181_000.0, "positions": 6.0}
    rows = {r["figure"]: r["verdict"] for r in compare(base, head, 0.10)}
    assert rows == {"tick_10k_us": "WORSE", "ingest_frames_per_s": "ok", "positions": ""}
    head["ingest_frames_per_s"] = 179_000.0
    head["tick_10k_us"] = 109.0
    rows = {r["figure"]: r["verdict"] for r in compare(base, head, 0.10)}
    assert rows["ingest_frames_per_s"] == "WORSE" and rows["tick_10k_us"] == "ok"

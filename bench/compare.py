"""``python -m bench.compare BASE_TREE [BENCH ...]``: this tree's ``make bench`` beside another's.

A refactor must not cost speed, and figures taken at different times on a shared machine differ
by more than the changes being judged. So both trees are benched in one run, interleaved
(base, head, base, head, … for ``--rounds`` rounds), each with its own virtualenv
(``TREE/.venv``), and each figure keeps its best round. The result, both sides and their ratio, is
written to ``bench/results/compare-<base>-<head>.json`` and printed; a figure of ours that is more
than ``--tolerance`` worse than the base is marked ``WORSE``.

Typical use, against the commit before a change::

    git worktree add --detach /tmp/base d14cd18 && make -C /tmp/base .venv/.installed
    python -m bench.compare /tmp/base
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

# Figures that describe the workload or the peers' own speed, not ours: shown, never judged.
_INFORMATIONAL = (
    "positions",
    "alerts_in_replay",
    "scrape_account_series",
    "tick_650_positions",
    "ingest_mean_batch_frames",
    "scrape_bytes",
    "_measured",
    "_reference_scaled",
    "_min",
    "_max",
)


def direction(figure: str) -> str | None:
    """``"lower"`` or ``"higher"`` is better, ``None`` when the figure is not ours to judge."""
    if any(figure == tag or figure.endswith(tag) for tag in _INFORMATIONAL):
        return None
    if any(tag in figure for tag in ("per_s", "speedup", "ratio")):
        return "higher"
    if figure.endswith(("_us", "_ms", "bytes_per_position")):
        return "lower"
    return None


def _commit(tree: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _bench_once(tree: Path, only: list[str]) -> dict[str, float]:
    python = tree / ".venv" / "bin" / "python"
    latest = tree / "bench" / "results" / "latest.json"
    # A partial run keeps the previous figures of the benches it skips: start from none.
    latest.unlink(missing_ok=True)
    subprocess.run([str(python), "-m", "bench", *only], cwd=tree, check=True)
    doc: dict[str, Any] = orjson.loads(latest.read_bytes())
    figures: dict[str, float] = doc["figures"]
    return figures


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    best: dict[str, float] = {}
    for run in runs:
        for key, value in run.items():
            way = direction(key)
            if key not in best:
                best[key] = value
            elif way == "lower":
                best[key] = min(best[key], value)
            elif way == "higher":
                best[key] = max(best[key], value)
    return best


def compare(
    base: dict[str, float], head: dict[str, float], tolerance: float
) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(set(base) | set(head)):
        b, h, way = base.get(key), head.get(key), direction(key)
        verdict = ""
        ratio = None
        if b is not None and h is not None and b != 0:
            ratio = h / b
            if way == "lower":
                verdict = "WORSE" if ratio > 1 + tolerance else "ok"
            elif way == "higher":
                verdict = "WORSE" if ratio < 1 - tolerance else "ok"
        rows.append({"figure": key, "base": b, "head": h, "ratio": ratio, "verdict": verdict})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare")
    parser.add_argument("base", type=Path, help="a work tree of the commit to compare against")
    parser.add_argument("only", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.10)
    args = parser.parse_args(argv)
    base_tree: Path = args.base.resolve()
    runs: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
    for _ in range(args.rounds):
        runs["base"].append(_bench_once(base_tree, args.only))
        runs["head"].append(_bench_once(HERE, args.only))
    base, head = _best(runs["base"]), _best(runs["head"])
    rows = compare(base, head, args.tolerance)
    names = {"base": _commit(base_tree), "head": _commit(HERE)}
    out = RESULTS / f"compare-{names['base']}-{names['head']}.json"
    doc = {"commits": names, "rounds": args.rounds, "tolerance": args.tolerance, "rows": rows}
    out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    width = max(len(r["figure"]) for r in rows)
    print(f"{'figure':<{width}}  {names['base']:>14}  {names['head']:>14}  ratio")
    for r in rows:
        b = "" if r["base"] is None else f"{r['base']:.4f}"
        h = "" if r["head"] is None else f"{r['head']:.4f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3f}"
        print(f"{r['figure']:<{width}}  {b:>14}  {h:>14}  {ratio:>6} {r['verdict']}")
    print(f"wrote {out}")
    return 1 if any(r["verdict"] == "WORSE" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

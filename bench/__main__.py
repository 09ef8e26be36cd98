"""Run every benchmark module and write ``bench/results/latest.json``.

Each ``bench/bench_<name>.py`` exposes ``run() -> dict[str, float]`` (figures) and ``CEILINGS:
dict[str, tuple[str, float]]`` mapping a figure to ("max" | "min", the issue's bound on this
machine). The report prints each figure beside its ceiling; nothing here asserts, because speed
lives in the benchmark, not in timed tests.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import platform
import sys
import time
from pathlib import Path
from typing import Any

import orjson

import bench

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def _modules(only: set[str]) -> list[str]:
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    return [n for n in names if not only or n.removeprefix("bench_") in only]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("only", nargs="*", help="run only these benchmarks (e.g. store ingest)")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {}
    rows: list[tuple[str, float, str, float | None, bool | None]] = []
    for name in _modules(set(args.only)):
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        result: dict[str, float] = module.run()
        ceilings: dict[str, tuple[str, float]] = getattr(module, "CEILINGS", {})
        for key, value in result.items():
            figures[key] = value
            bound = ceilings.get(key)
            ok = None
            if bound is not None:
                ok = value <= bound[1] if bound[0] == "max" else value >= bound[1]
            rows.append((key, value, bound[0] if bound else "", bound[1] if bound else None, ok))
        print(f"# {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    verdicts: dict[str, Any] = {
        r[0]: {"bound": r[2], "value": r[3], "met": r[4]} for r in rows if r[2]
    }
    if args.only and RESULTS.exists():
        # A partial run (`python -m bench store`) updates its own figures and keeps the rest.
        previous = orjson.loads(RESULTS.read_bytes())
        figures = {**previous.get("figures", {}), **figures}
        verdicts = {**previous.get("ceilings", {}), **verdicts}
    doc = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "figures": figures,
        "ceilings": verdicts,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    width = max((len(r[0]) for r in rows), default=10)
    for key, value, kind, limit_value, ok in rows:
        limit = (
            f"{'≤' if kind == 'max' else '≥'} {limit_value:g}" if limit_value is not None else ""
        )
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        print(f"{key:<{width}}  {value:>14.4f}  {limit:<14} {verdict}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

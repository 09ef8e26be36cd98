"""``marginwatch calc`` end to end: output values, --shock, and every bad-input path."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.commands.snapshot import read_snapshot
from rules.account import account_figures
from rules.liquidation import liquidation_distance, liquidation_prices

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "monitor" / "data" / "example_snapshot.json"
SCHEMA = ROOT / "monitor" / "schemas" / "snapshot.schema.json"
DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("snap_*.json"))

Doc = dict[str, Any]


def run_calc(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Doc | None, str]:
    code = main(["calc", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def example() -> Doc:
    doc: Doc = json.loads(EXAMPLE.read_text())
    return doc


def test_example_output_matches_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_calc(capsys, str(EXAMPLE))
    assert (code, err) == (0, "")
    assert out is not None
    a = read_snapshot(str(EXAMPLE)).account
    figs = account_figures(a)
    acct = out["account"]
    assert acct["name"] == "desk-a-usdm"
    assert acct["equity"] == figs.equity
    assert acct["maintenance_margin"] == figs.maintenance_margin
    assert acct["margin_ratio"] == pytest.approx(figs.maintenance_margin / figs.equity)
    assert acct["health"] == pytest.approx(figs.equity / figs.maintenance_margin)
    down, up = liquidation_distance(a)
    assert acct["liquidation_distance"] == {"down": down, "up": up}
    assert [p["symbol"] for p in out["positions"]] == ["BTCUSDT", "ETHUSDT", "ETHUSDT", "BTCUSDT"]
    assert [p["side"] for p in out["positions"]] == ["long", "long", "short", "short"]
    assert [p["liquidation_price"] for p in out["positions"]] == liquidation_prices(a)
    # BTCUSDT long 1.25 at 62,480.10: 78,100.125 notional, tier 2 (0.5%, cum 50)
    btc = out["positions"][0]
    assert btc["notional"] == pytest.approx(78_100.125)
    assert btc["maintenance_margin"] == pytest.approx(78_100.125 * 0.005 - 50)
    assert btc["initial_margin"] == pytest.approx(78_100.125 / 20)
    assert btc["unrealized_pnl"] == pytest.approx(1.25 * (62_480.10 - 61_250.40))
    # hedge legs share the symbol's cross liquidation price
    assert out["positions"][1]["liquidation_price"] == out["positions"][2]["liquidation_price"]


def test_schema_accepts_the_example_and_fixtures() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in [EXAMPLE, *FIXTURES]:
        validator.validate(json.loads(path.read_text()))
    bad = example()
    bad["positions"][0]["mark_prce"] = 1
    assert not validator.is_valid(bad)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_every_venue_fixture_computes(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, out, err = run_calc(capsys, str(path))
    assert (code, err) == (0, "")
    assert out is not None
    assert out["account"]["health"] > 1.0
    assert len(out["positions"]) == len(json.loads(path.read_text())["positions"])


def test_venue_fixture_values(capsys: pytest.CaptureFixture[str]) -> None:
    # Deribit §4.2 worked examples through the CLI.
    _, out, _ = run_calc(capsys, str(DATA / "snap_deribit.json"))
    assert out is not None
    btc, sol = out["positions"]
    assert btc["initial_margin"] == pytest.approx(1_312_500, rel=1e-12)
    assert btc["maintenance_margin"] == pytest.approx(962_500, rel=1e-12)
    assert sol["initial_margin"] == pytest.approx(84_000, rel=1e-12)
    assert sol["maintenance_margin"] == pytest.approx(60_000, rel=1e-12)
    # OKX: equity/MM ratio; BTC collateral at 95%; isolated leg outside the cross sums.
    _, out, _ = run_calc(capsys, str(DATA / "snap_okx_multi.json"))
    assert out is not None
    assert out["account"]["equity"] == pytest.approx(3_000 + 0.05 * 60_000 * 0.95 + 1_000)
    assert out["account"]["maintenance_margin"] == pytest.approx(60_000 * 0.004)
    assert out["account"]["margin_ratio"] == pytest.approx(6_850 / 240)
    # Hyperliquid: mmr derived from max leverage (40x -> 1.25%).
    _, out, _ = run_calc(capsys, str(DATA / "snap_hyperliquid.json"))
    assert out is not None
    assert out["positions"][0]["maintenance_margin"] == pytest.approx(32_500 * 0.0125)
    # dYdX: MM = ceil(ceil(n·IMF)·MF) in 1e-6 USD; SOL's IMF scaled by OI to 60%.
    _, out, _ = run_calc(capsys, str(DATA / "snap_dydx.json"))
    assert out is not None
    assert out["positions"][0]["maintenance_margin"] == pytest.approx(15_250 * 0.012)
    assert out["positions"][1]["initial_margin"] == pytest.approx(5_940 * 0.55)


def test_stdin_and_subprocess(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "marginwatch"
    proc = subprocess.run(
        [str(exe), "calc", "-", "--shock", "BTCUSDT=-10%"],
        input=EXAMPLE.read_bytes(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["positions"][0]["notional"] == pytest.approx(1.25 * 62_480.10 * 0.9)
    bad = tmp_path / "bad.json"
    bad.write_text('{"venue": "kraken", "account": "a", "balances": {}, "positions": []}')
    proc = subprocess.run(
        [str(exe), "calc", str(bad)], capture_output=True, check=False, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1
    assert "Traceback" not in lines[0]
    assert lines[0].startswith(f"marginwatch: {bad}: venue: must be one of")


@pytest.mark.parametrize(
    ("shock", "factor"), [("BTCUSDT=-10%", 0.9), ("BTCUSDT=-0.1", 0.9), ("BTCUSDT=+5%", 1.05)]
)
def test_shock_reprices_a_symbol(
    capsys: pytest.CaptureFixture[str], shock: str, factor: float
) -> None:
    _, out, _ = run_calc(capsys, str(EXAMPLE), "--shock", shock)
    assert out is not None
    assert out["positions"][0]["notional"] == pytest.approx(1.25 * 62_480.10 * factor)
    assert out["positions"][3]["notional"] == pytest.approx(0.4 * 62_480.10 * factor)
    assert out["positions"][1]["notional"] == pytest.approx(18.5 * 2_455.32)


def test_shock_reprices_an_asset(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(DATA / "snap_okx_multi.json")
    _, base, _ = run_calc(capsys, path)
    _, shocked, _ = run_calc(capsys, path, "--shock", "BTC=-20%")
    assert base is not None
    assert shocked is not None
    lost = 0.05 * 60_000 * 0.95 * 0.2
    assert shocked["account"]["equity"] == pytest.approx(base["account"]["equity"] - lost)


def test_shocks_compose(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_calc(capsys, str(EXAMPLE), "--shock", "BTCUSDT=-10%", "--shock", "ETHUSDT=-10%")
    assert out is not None
    down = out["account"]["liquidation_distance"]["down"]
    _, base, _ = run_calc(capsys, str(EXAMPLE))
    assert base is not None
    # a uniform -10% leaves the rest of the uniform distance: (1 - d0) = 0.9·(1 - d1)
    d0 = base["account"]["liquidation_distance"]["down"]
    assert 1 - d0 == pytest.approx(0.9 * (1 - down), rel=1e-9)


def _set(path: list[str | int], value: object) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: list[str | int]) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _rename(path: list[str | int], new: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[new] = target.pop(path[-1])

    return mutate


BAD_DOCS: list[tuple[str, Callable[[Doc], None], str]] = [
    ("missing venue", _delete(["venue"]), "venue: missing"),
    ("unknown venue", _set(["venue"], "kraken"), "venue: must be one of binance-usdm"),
    (
        "misspelt field",
        _rename(["positions", 0, "mark_price"], "mark_prce"),
        "positions[0].mark_prce: unknown field",
    ),
    ("missing mark", _delete(["positions", 1, "mark_price"]), "positions[1].mark_price: missing"),
    (
        "negative price",
        _set(["positions", 2, "mark_price"], -5),
        "positions[2].mark_price: must be > 0",
    ),
    (
        "zero entry",
        _set(["positions", 0, "entry_price"], "0"),
        "positions[0].entry_price: must be > 0",
    ),
    ("NaN string", _set(["positions", 0, "qty"], "NaN"), "positions[0].qty: not a decimal number"),
    ("boolean", _set(["positions", 0, "qty"], True), "positions[0].qty: must be a number"),
    ("bad side", _set(["positions", 0, "side"], "buy"), "positions[0].side: must be one of"),
    ("hedge sign", _set(["positions", 0, "qty"], -1), "positions[0].qty: sign disagrees with side"),
    (
        "tier gap",
        _set(["tiers", "BTCUSDT", 3, "floor"], 3_500_000),
        "tiers.BTCUSDT: tier 4: floor 3.5e+06 != previous cap 3e+06 (gap)",
    ),
    (
        "bad deduction",
        _set(["tiers", "ETHUSDT", 2, "deduction"], 900),
        "tiers.ETHUSDT: tier 3: deduction 900 inconsistent with the recurrence",
    ),
    ("tier missing mmr", _delete(["tiers", "ETHUSDT", 0, "mmr"]), "tiers.ETHUSDT[0].mmr: missing"),
    (
        "no model",
        _delete(["tiers", "ETHUSDT"]),
        "positions[1].symbol: no tiers entry for 'ETHUSDT'",
    ),
    ("wrong block", _set(["size_linear"], {}), "size_linear: not used by venue binance-usdm"),
    ("unpriced collateral", _set(["balances", "BTC"], 1), "asset_prices.BTC: missing"),
    (
        "bad ratio",
        _set(["collateral_ratios"], {"BTC": 1.5}),
        "collateral_ratios.BTC: must be in [0, 1]",
    ),
    (
        "isolated w/o margin",
        _set(["positions", 0, "margin_mode"], "isolated"),
        "isolated_margin: missing",
    ),
    (
        "mark mismatch",
        _set(["positions", 2, "mark_price"], 2455),
        "positions[2].mark_price: differs",
    ),
    ("positions not array", _set(["positions"], {}), "positions: must be an array, got object"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [b[1:] for b in BAD_DOCS], ids=[b[0] for b in BAD_DOCS]
)
def test_bad_input_is_one_line_naming_the_field(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    mutate: Callable[[Doc], None],
    expected: str,
) -> None:
    doc = copy.deepcopy(example())
    mutate(doc)
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(doc))
    code, _, err = run_calc(capsys, str(path))
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"marginwatch: {path}: ")
    assert expected in lines[0]


@pytest.mark.parametrize(
    ("content", "argv", "expected"),
    [
        (b"{not json", [], "not valid JSON"),
        (b"[1, 2]", [], ": must be an object, got array"),
        (b"", [], "not valid JSON"),
        (None, [], "cannot read: No such file or directory"),
        (None, ["--shock", "DOGEUSDT=-10%"], "--shock DOGEUSDT=-10%: 'DOGEUSDT' is neither"),
        (None, ["--shock", "BTCUSDT=ten"], "--shock BTCUSDT=ten: expected SYMBOL_OR_ASSET=MOVE"),
        (None, ["--shock", "BTCUSDT=-100%"], "--shock BTCUSDT=-100%: the move must leave"),
    ],
)
def test_bad_files_and_shocks(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: bytes | None,
    argv: list[str],
    expected: str,
) -> None:
    if content is not None:
        path = tmp_path / "snap.json"
        path.write_bytes(content)
    elif argv:
        path = EXAMPLE
    else:
        path = tmp_path / "absent.json"
    code, _, err = run_calc(capsys, str(path), *argv)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert expected in err

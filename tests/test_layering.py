"""The house's structural rules, checked on the source tree (README "How it is built").

* Layers call only downward: ``connectors/`` and ``rules/`` never import ``monitor/``; ``rules/``
  imports no connector.
* Real connectors import no fake venue (``connectors/fakes/``).
* ``monitor/`` names no venue outside ``monitor/demo/``: it asks the registry
  (``connectors/venues.py``). Comments and docstrings may give examples.
* ``monitor/`` keeps at most eight modules at its top; module-level imports form no cycle.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("monitor", "connectors", "rules")
VENUE_NAME = re.compile(r"binance|bybit|okx|deribit|hyperliquid|dydx", re.IGNORECASE)


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, module: str, *, top_level_only: bool) -> Iterator[str]:
    """Absolute names of the project modules ``module`` imports (``from a import b`` gives
    ``a.b`` when that is a module, else ``a``)."""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> Iterator[ast.stmt]:
        for node in nodes:
            yield node
            if isinstance(node, ast.If) and not _is_type_checking(node):
                yield from visit(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                yield from visit(node.body + node.orelse + node.finalbody)

    nodes: list[ast.AST] = list(visit(tree.body)) if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in MODULES else base


def _tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(encoding="utf-8"))


@pytest.mark.parametrize("layer", ["connectors", "rules"])
def test_lower_layers_never_import_monitor(layer: str) -> None:
    offenders = [
        f"{module} imports {name}"
        for module in MODULES
        if module.split(".")[0] == layer
        for name in _imports(_tree(module), module, top_level_only=False)
        if name.split(".")[0] == "monitor" or (layer == "rules" and name.startswith("connectors"))
    ]
    assert offenders == []


def test_real_connectors_import_no_fake() -> None:
    offenders = [
        f"{module} imports {name}"
        for module in MODULES
        if module.startswith("connectors.") and not module.startswith("connectors.fakes")
        for name in _imports(_tree(module), module, top_level_only=False)
        if name.startswith("connectors.fakes")
    ]
    assert offenders == []


def _code_mentions(path: Path, root: Path = ROOT) -> list[str]:
    """Venue names in code: names and string literals, not comments or docstrings."""
    source = path.read_text(encoding="utf-8")
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(body[0].lineno)
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NAME, tokenize.STRING) and VENUE_NAME.search(tok.string):
            if tok.type == tokenize.STRING and tok.start[0] in docstrings:
                continue
            found.append(f"{path.relative_to(root)}:{tok.start[0]}: {tok.string[:60]}")
    return found


def test_monitor_names_no_venue_outside_the_demo() -> None:
    offenders = [
        line
        for path in sorted((ROOT / "monitor").rglob("*.py"))
        if "demo" not in path.relative_to(ROOT / "monitor").parts
        for line in _code_mentions(path)
    ]
    assert offenders == []


def test_the_venue_name_check_sees_code_not_comments(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Docstrings may say Binance."""\n'
        "# so may comments: OKX\n"
        'VENUE = "bybit"\n'
        "def deribit() -> None:\n"
        '    """Nor here: dYdX."""\n',
        encoding="utf-8",
    )
    mentions = [m.split(": ", 1)[1] for m in _code_mentions(sample, tmp_path)]
    assert mentions == ['"bybit"', "deribit"]


def test_monitor_top_level_stays_small() -> None:
    top = sorted(p.name for p in (ROOT / "monitor").glob("*.py"))
    assert len(top) <= 8, top


def test_no_import_cycle() -> None:
    graph = {
        m: {n for n in _imports(_tree(m), m, top_level_only=True) if n in MODULES and n != m}
        for m in MODULES
    }
    # A package's __init__ that re-exports its submodules is imported by them only through
    # their own dotted names, which Python resolves without a cycle; an edge submodule ->
    # its own package would be one.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            strongconnect(v)
    assert cycles == []

"""Dependencies point one way, and packages use each other through their public names.

protos ← graphstore ← streaming;  graphstore ← gnn ← serving;  only graphrec (the composition
root) and benchmarks import everything, and no product package imports either of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ["protos", "graphstore", "streaming", "gnn", "serving", "graphrec", "benchmarks"]
MAY_IMPORT = {
    "protos": set(),
    "graphstore": {"protos"},
    "streaming": {"protos", "graphstore"},
    "gnn": {"graphstore"},
    "serving": {"protos", "graphstore", "gnn"},
    # graphrec mounts the benchmarks as `graphrec bench`, importing them lazily from bench_cli.py
    # only (tests/test_cli.py pins that).
    "graphrec": {"protos", "graphstore", "streaming", "gnn", "serving", "benchmarks"},
    "benchmarks": {"protos", "graphstore", "streaming", "gnn", "serving", "graphrec"},
}
# graphstore's public names live in its __init__; these modules are what it is built from.
GRAPHSTORE_INTERNALS = (
    "graphstore.base",
    "graphstore.types",
    "graphstore.snapshot",
    "graphstore._",
)


def imported_modules(path: Path) -> list[str]:
    """Absolute module names a file imports (``from x import y`` gives ``x``)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def _sources(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "_pb2" not in p.name)


@pytest.mark.parametrize("package", PRODUCT)
def test_dependencies_point_one_way(package: str) -> None:
    others = set(PRODUCT) - {package}
    wrong = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in _sources(package)
        for module in imported_modules(path)
        if (top := module.split(".")[0]) in others and top not in MAY_IMPORT[package]
    }
    assert not wrong


@pytest.mark.parametrize("package", [p for p in PRODUCT if p != "graphstore"])
def test_only_graphstore_uses_its_own_modules(package: str) -> None:
    wrong = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in _sources(package)
        for module in imported_modules(path)
        if module.startswith(GRAPHSTORE_INTERNALS)
    }
    assert not wrong


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import gnn.data\nfrom graphstore.base import X\nfrom . import y\n")
    assert imported_modules(source) == ["gnn.data", "graphstore.base"]

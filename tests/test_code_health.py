"""Size limits of the code: modules of at most 400 lines, functions of at most 60.

A module or function may pass a limit only with a reason written in ``EXCEPTIONS``; the test
fails both for an unexplained excess and for an exception that no longer needs to be there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["graphrec", "graphstore", "streaming", "gnn", "serving", "benchmarks"]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# "package/module.py" or "package/module.py::Qualified.name" → why it stays over its limit.
EXCEPTIONS: dict[str, str] = {}


def _sources(package: str) -> list[Path]:
    folder = ROOT / package
    return (
        sorted(p for p in folder.rglob("*.py") if "_pb2" not in p.name) if folder.is_dir() else []
    )


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            found.append((name, (node.end_lineno or node.lineno) - start + 1))
            found += _functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            found += _functions(node, f"{prefix}{node.name}.")
    return found


def _oversized(package: str) -> dict[str, int]:
    over: dict[str, int] = {}
    for path in _sources(package):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            over[rel] = lines
        for name, length in _functions(ast.parse(text)):
            if length > MAX_FUNCTION_LINES:
                over[f"{rel}::{name}"] = length
    return over


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_and_functions_fit_their_limits(package: str) -> None:
    over = _oversized(package)
    unexplained = {k: v for k, v in over.items() if k not in EXCEPTIONS}
    assert not unexplained, (
        f"over {MAX_MODULE_LINES} lines a module / {MAX_FUNCTION_LINES} a function: {unexplained}"
    )
    stale = [k for k in EXCEPTIONS if k.startswith(f"{package}/") and k not in over]
    assert not stale, f"exceptions no longer needed: {stale}"


def test_the_checker_sees_an_oversized_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"class A:\n  def f(self):\n{body}\n")
    assert _functions(tree) == [("A.f", MAX_FUNCTION_LINES + 1)]

"""Serving uses the graph store's public names only (``from graphstore import ...``)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVING = Path(__file__).resolve().parents[2] / "serving"


def test_serving_imports_only_the_graphstore_package() -> None:
    private = []
    for path in sorted(SERVING.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            private += [f"{path.name}: {n}" for n in names if n.startswith("graphstore.")]
    assert not private

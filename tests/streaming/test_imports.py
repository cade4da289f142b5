"""streaming uses graphstore through its public names only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def graphstore_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("graphstore")
    ]


def test_streaming_imports_only_graphstore_public_names() -> None:
    offenders = {
        str(path.relative_to(ROOT)): modules
        for path in sorted((ROOT / "streaming").glob("*.py"))
        if (modules := [m for m in graphstore_imports(path) if m != "graphstore"])
    }
    assert offenders == {}


def test_graphstore_backends_import_the_package_names() -> None:
    for name in ("embedded.py", "neo4j.py"):
        internal = {"graphstore.base", "graphstore.types", "graphstore.snapshot"}
        assert not internal & set(graphstore_imports(ROOT / "graphstore" / name)), name

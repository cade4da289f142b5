"""The public surface of each package with an ``__all__`` is exactly that list (as httpx pins
its exports): every listed name is importable and is the object its home module defines, and
nothing public of the package's own is left out of the list. Changing the surface means
changing ``__all__``."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import graphstore

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("graphstore", "streaming", "gnn", "serving", "graphrec", "benchmarks")


def _init(name: str) -> Path:
    return ROOT / name.replace(".", "/") / "__init__.py"


def _packages_with_all() -> list[str]:
    inits = sorted(p for top in PRODUCT for p in (ROOT / top).rglob("__init__.py"))
    return [
        p.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for p in inits
        if "__all__" in p.read_text()
    ]


def _own_public_names(name: str) -> set[str]:
    """Public names the package's ``__init__`` binds from its own modules or defines itself
    (not ``Path`` or ``urlsplit`` that it merely uses)."""
    bound: set[str] = set()
    for node in ast.parse(_init(name).read_text()).body:
        if isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").startswith(f"{name}.")
        ):
            bound.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound.update(t.id for t in targets if isinstance(t, ast.Name))
    return {n for n in bound if not n.startswith("_")}


PACKAGES = _packages_with_all()


def test_graphstore_is_among_the_pinned_packages() -> None:
    assert "graphstore" in PACKAGES


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    package = importlib.import_module(name)
    listed = list(package.__all__)
    assert len(listed) == len(set(listed)), "a name is listed twice"
    assert set(listed) == _own_public_names(name)


@pytest.mark.parametrize("name", PACKAGES)
def test_each_listed_name_is_its_home_modules_documented_object(name: str) -> None:
    package = importlib.import_module(name)
    for exported in package.__all__:
        obj = getattr(package, exported)  # AttributeError: listed but not there
        home = getattr(obj, "__module__", None)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert getattr(importlib.import_module(home), exported) is obj, exported
            assert inspect.getdoc(obj), f"{name}.{exported} has no docstring"


def test_unknown_store_url_is_a_clear_error() -> None:
    with pytest.raises(graphstore.InvalidInput, match="memory://"):
        graphstore.open_store("foo:///x")

"""Cypher only with parameters, checked in the source: every statement sent to Neo4j is a
module constant (those of the product in ``graphstore/_cypher.py``; a benchmark's baseline
beside it), and none is built by formatting values."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("graphstore", "streaming", "gnn", "serving", "graphrec", "benchmarks")
CYPHER = ROOT / "graphstore" / "_cypher.py"


def _sources() -> dict[Path, ast.Module]:
    files = sorted(p for top in PRODUCT for p in (ROOT / top).rglob("*.py"))
    return {p: ast.parse(p.read_text(), str(p)) for p in files}


def _root_name(node: ast.expr) -> str | None:
    """``cy`` for ``cy.A``, ``cy.A[k]``, ``cy.A.items()``; else ``None``."""
    while True:
        if isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def _string_constants(tree: ast.Module) -> set[str]:
    """Module-level UPPER_CASE names bound to a plain string literal."""
    out = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign) and isinstance(stmt.value, ast.Constant):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id.isupper() and isinstance(stmt.value.value, str):
                    out.add(t.id)
    return out


def test_cypher_module_builds_no_statement_from_values() -> None:
    tree = ast.parse(CYPHER.read_text())
    for node in ast.walk(tree):
        assert not isinstance(node, ast.JoinedStr), f"f-string at line {node.lineno}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr != "format", f".format() at line {node.lineno}"
        if isinstance(node, ast.BinOp):
            assert not isinstance(node.op, ast.Mod), f"% formatting at line {node.lineno}"
    # Labels and types are spliced in only from the closed sets of graphstore.types.
    spliced = {
        n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    }
    assert spliced <= {"replace", "join", "value"}, spliced
    closed = {"INTERACTION_RELATIONSHIPS", "NodeKind", "RELATION_TYPES"}
    for comp in ast.walk(tree):
        if isinstance(comp, ast.DictComp | ast.GeneratorExp | ast.ListComp):
            for gen in comp.generators:
                it = gen.iter
                names = {n.id for n in ast.walk(it) if isinstance(n, ast.Name)}
                assert names <= closed, f"line {comp.lineno} iterates over {names - closed}"
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                assert isinstance(t, ast.Name) and t.id.lstrip("_").isupper(), ast.dump(t)


def _talks_to_neo4j(tree: ast.Module) -> bool:
    """Whether a module can send Cypher: it imports the driver or graphstore's statements, or
    borrows a store's driver (a benchmark's raw baseline)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.startswith("neo4j") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            ("neo4j", "graphstore._cypher")
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "graphstore"
            and any(a.name == "_cypher" for a in node.names)
        ):
            return True
        if isinstance(node, ast.Attribute) and node.attr == "_driver":
            return True
    return False


def test_every_statement_sent_is_a_cypher_module_constant() -> None:
    sent = 0
    for path, tree in _sources().items():
        if not _talks_to_neo4j(tree):
            continue  # `.run(...)` there is something else's (a trainer, a subprocess)
        from_cy: set[str] = set()  # loop variables over the constants, e.g. `for q in cy.X`
        constants = _string_constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.For | ast.comprehension) and _root_name(node.iter) == "cy":
                from_cy |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in ("run", "execute_query") or _root_name(node.func) in (
                "subprocess",
                "asyncio",
            ):
                continue
            if not node.args:
                continue
            first = node.args[0]
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            ok = _root_name(first) == "cy" or (
                isinstance(first, ast.Name) and first.id in from_cy | constants
            )
            assert ok, f"{where} sends Cypher that is not a module constant"
            sent += 1
    assert sent >= 10  # the check saw graphstore/neo4j.py's statements


def test_only_the_neo4j_backend_talks_to_neo4j() -> None:
    importers = set()
    for path, tree in _sources().items():
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            if any(m == "neo4j" or m.startswith("neo4j.") for m in modules):
                importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"graphstore/neo4j.py"}

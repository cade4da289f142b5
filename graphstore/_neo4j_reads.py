"""The k-hop read on Neo4j: one ``cy.HOP_EDGES`` statement per hop and frontier label, in a
managed read transaction or, on a request's bounded path, as auto-commit statements."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import neo4j
from neo4j import ManagedTransaction

from graphstore import _cypher as cy
from graphstore._neighbourhood import FetchedNode, walk
from graphstore.snapshot import Neighbourhood
from graphstore.types import ALL_RELATIONSHIPS, NodeKind, NodeRef


class AutoCommitReads:
    """Statements run as auto-commit transactions of a read session, each within
    ``timeout_s``: a managed transaction's BEGIN and COMMIT would add a round trip and the
    driver's bookkeeping to every request, and a bounded read does not retry anyway. The
    session's access mode still sends them to a reader in a cluster."""

    def __init__(self, session: neo4j.Session, timeout_s: float) -> None:
        self._session, self._timeout_s = session, timeout_s

    def run(self, statement: str, parameters: dict[str, Any]) -> neo4j.Result:
        query = neo4j.Query(statement, timeout=self._timeout_s)
        return self._session.run(query, parameters)


def read_hops(
    tx: ManagedTransaction | AutoCommitReads,
    seeds: tuple[NodeRef, ...],
    fanouts: Sequence[int],
    relationships: Sequence[str],
    before: float | None,
    profile: Callable[[neo4j.ResultSummary, float], None] | None = None,
) -> Neighbourhood:
    """The k-hop neighbourhood read in ``tx``: one ``cy.HOP_EDGES`` statement per hop and kind
    of node in its frontier. With ``profile``, each runs under PROFILE and ``profile`` gets its
    summary and wall time (benchmarks/neo4j_profile.py)."""

    def fetch(kind: NodeKind, keys: list[str], fanout: int) -> list[FetchedNode]:
        params = hop_params(keys, fanout, relationships, before)
        if profile is None:
            return [(r["key"], r["found"], r["edges"]) for r in tx.run(cy.HOP_EDGES[kind], params)]
        started = time.perf_counter()
        result = tx.run(cy.PROFILED_HOP_EDGES[kind], params)
        fetched: list[FetchedNode] = [(r["key"], r["found"], r["edges"]) for r in result]
        profile(result.consume(), time.perf_counter() - started)
        return fetched

    return walk(seeds, fanouts, fetch)


def hop_params(
    keys: Sequence[str], fanout: int, relationships: Sequence[str], before: float | None
) -> dict[str, Any]:
    """The parameters of ``cy.HOP_EDGES[kind]``: one hop from the nodes of one kind named by
    ``keys``, each keeping its ``fanout`` most recent edges of the ``relationships``."""
    since = {
        f"since_{rel}": -math.inf if rel in relationships else math.inf for rel in ALL_RELATIONSHIPS
    }
    return {"keys": list(keys), "fanout": fanout, "before": before, **since}

"""Assemble a Neighbourhood from backend rows (shared by every backend)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphstore.snapshot import Neighbourhood
from graphstore.types import NodeRef

# An edge found by a k-hop fetch: (src, rel, dst, count, first_ts, last_ts, hop).
HopEdgeRow = tuple[NodeRef, str, NodeRef, int, float, float, int]


def assemble(
    seeds: tuple[NodeRef, ...], found: Sequence[bool], rows: Sequence[HopEdgeRow]
) -> Neighbourhood:
    """Seeds first, then other nodes in order of first appearance; an edge seen twice keeps
    its earliest hop."""
    best: dict[tuple[NodeRef, str, NodeRef], HopEdgeRow] = {}
    for row in rows:
        key = (row[0], row[1], row[2])
        if key not in best or row[6] < best[key][6]:
            best[key] = row
    edges = sorted(best.values(), key=lambda r: r[6])
    order: dict[NodeRef, int] = {}
    nodes: list[NodeRef] = list(seeds)
    for i, seed in enumerate(seeds):
        order.setdefault(seed, i)
    for s, _, d, *_ in edges:
        for node in (s, d):
            if node not in order:
                order[node] = len(nodes)
                nodes.append(node)
    return Neighbourhood(
        seeds=seeds,
        found=tuple(found),
        nodes=tuple(nodes),
        src=np.array([order[r[0]] for r in edges], np.int64),
        dst=np.array([order[r[2]] for r in edges], np.int64),
        rel=tuple(r[1] for r in edges),
        count=np.array([r[3] for r in edges], np.int64),
        first_ts=np.array([r[4] for r in edges], np.float64),
        last_ts=np.array([r[5] for r in edges], np.float64),
        hop=np.array([r[6] for r in edges], np.int64),
    )

"""Assemble a Neighbourhood from backend rows (shared by every backend), and the k-hop walk
of a backend that fetches one hop at a time for the nodes of one kind."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from graphstore.snapshot import Neighbourhood
from graphstore.types import NodeKind, NodeRef

# An edge found by a k-hop fetch: (src, rel, dst, count, first_ts, last_ts, hop); src and dst
# are NodeRefs (``assemble``) or (label, key) ids (``walk``).
HopEdgeRow = tuple[Any, str, Any, int, float, float, int]
NodeId = tuple[str, str]  # (label, key)

# An edge of a fetched node: (rel, outgoing, other node's kind, its key, count, first_ts,
# last_ts); a fetched node: (its key, whether it exists, its edges).
NodeEdge = tuple[str, bool, str, str, int, float, float]
FetchedNode = tuple[str, bool, Sequence[NodeEdge]]
# (kind, keys of the frontier nodes of that kind, fan-out) → one FetchedNode per key.
FetchHop = Callable[[NodeKind, list[str], int], Sequence[FetchedNode]]


def walk(seeds: tuple[NodeRef, ...], fanouts: Sequence[int], fetch: FetchHop) -> Neighbourhood:
    """The k-hop neighbourhood of ``seeds`` through ``fetch``, one call per hop and node kind
    in the frontier; nodes already visited do not expand again."""
    # Nodes are (label, key) tuples until the end: tuples hash and compare in C, where
    # NodeRef (a frozen dataclass over an enum) costs a Python call per hash.
    seed_ids = [(s.kind.value, s.key) for s in seeds]
    visited = set(seed_ids)
    frontier = list(dict.fromkeys(seed_ids))
    found: set[NodeId] = set()
    rows: list[HopEdgeRow] = []
    for hop, fanout in enumerate(fanouts, start=1):
        reached: dict[NodeId, None] = {}
        for kind in NodeKind:
            keys = [key for label, key in frontier if label == kind.value]
            if not keys:
                continue
            for key, exists, edges in fetch(kind, keys, fanout):
                node = (kind.value, key)
                if exists:
                    found.add(node)
                for rel, outgoing, other_kind, other_key, count, first_ts, last_ts in edges:
                    other = (other_kind, other_key)
                    src, dst = (node, other) if outgoing else (other, node)
                    rows.append((src, rel, dst, int(count), float(first_ts), float(last_ts), hop))
                    if other not in visited:
                        reached[other] = None
        visited.update(reached)
        frontier = list(reached)
        if not frontier:
            break
    return _assemble(seeds, seed_ids, [s in found for s in seed_ids], rows, _node_ref)


def assemble(
    seeds: tuple[NodeRef, ...], found: Sequence[bool], rows: Sequence[HopEdgeRow]
) -> Neighbourhood:
    """Seeds first, then other nodes in order of first appearance; an edge seen twice keeps
    its earliest hop."""
    return _assemble(seeds, seeds, found, rows, _same)


def _assemble(
    seeds: tuple[NodeRef, ...],
    seed_ids: Sequence[Hashable],
    found: Sequence[bool],
    rows: Sequence[HopEdgeRow],
    node_ref: Callable[[Any], NodeRef],
) -> Neighbourhood:
    """``assemble`` over rows whose nodes are ``seed_ids``' kind of id; ``node_ref`` names
    each other node."""
    best: dict[tuple[Hashable, str, Hashable], HopEdgeRow] = {}
    for row in rows:
        key = (row[0], row[1], row[2])
        if key not in best or row[6] < best[key][6]:
            best[key] = row
    edges = sorted(best.values(), key=lambda r: r[6])
    order: dict[Hashable, int] = {}
    nodes: list[NodeRef] = list(seeds)
    for i, seed in enumerate(seed_ids):
        order.setdefault(seed, i)
    for s, _, d, *_ in edges:
        for node in (s, d):
            if node not in order:
                order[node] = len(nodes)
                nodes.append(node_ref(node))
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


_KINDS = {kind.value: kind for kind in NodeKind}


def _node_ref(node: NodeId) -> NodeRef:
    return NodeRef(_KINDS[node[0]], node[1])


def _same(node: NodeRef) -> NodeRef:
    return node

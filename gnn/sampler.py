"""Our own sampler over CSR snapshots (pyg-lib is not on PyPI, so PyG's loaders are out).

``sample_neighbours``: typed multi-hop fan-out sampling (without replacement) over the
actor–item bipartite graph, with a time cut-off and a set of excluded (supervision) edges that
may never carry messages; dataclass input and output in the spirit of PyG's
``SamplerOutput``. The CSR it reads is ``gnn.csr.SamplerGraph``; PinSage's random-walk
neighbourhoods over the same CSR are in ``gnn.walks``.

It is loops compiled by numba (``gnn.draws`` says why), one pass over the frontier per
hop. A call costs O(sample), not O(graph): nodes are relabelled and repeated edges dropped
through per-thread scratch maps reused across calls, and an unfiltered draw reads only the
drawn positions of a row (a filtered one scans the row's edges once).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import numpy.typing as npt
import torch
from torch_geometric.data import HeteroData

from gnn.csr import BEHAVIOUR_BITS, CsrArrays, SamplerGraph, checked_ids
from gnn.data import BEHAVIOURS, IntArray
from gnn.draws import scratch, seed_from, stream, subset

ACTOR, ITEM = "actor", "item"
Relation = tuple[str, str, str]
_NO_IDS = np.zeros(0, np.int64)  # shared: an empty array has nothing to change


@dataclass(frozen=True)
class NeighbourInput:
    actor_seeds: IntArray = field(default_factory=lambda: _NO_IDS)
    item_seeds: IntArray = field(default_factory=lambda: _NO_IDS)
    fanouts: tuple[int, ...] = (10, 10)  # per hop
    cutoff: float | None = None  # only edges with ts < cutoff
    exclude: IntArray | None = None  # global edge ids that must not be sampled
    behaviours: tuple[int, ...] | None = None  # behaviour indices allowed (None: all)


@dataclass(frozen=True)
class SamplerOutput:
    """Sampled subgraph: ``node[type]`` global ids (seeds first); per relation, local
    ``row``/``col`` into those lists, the global ``edge`` id and the ``hop`` it came from.
    Relations are ``(actor, <BEHAVIOUR>, item)``; edges keep the actor → item direction."""

    node: dict[str, IntArray]
    row: dict[Relation, IntArray]
    col: dict[Relation, IntArray]
    edge: dict[Relation, IntArray]
    hop: dict[Relation, IntArray]

    @property
    def num_sampled_edges(self) -> int:
        return sum(len(v) for v in self.edge.values())

    def to_hetero_data(self) -> HeteroData:
        data = HeteroData()
        for kind, ids in self.node.items():
            data[kind].n_id = torch.as_tensor(ids)
            data[kind].num_nodes = len(ids)
        for rel in self.row:
            data[rel].edge_index = torch.as_tensor(np.stack([self.row[rel], self.col[rel]]))
            data[rel].e_id = torch.as_tensor(self.edge[rel])
        return data


def sample_neighbours(
    graph: SamplerGraph, spec: NeighbourInput, rng: np.random.Generator
) -> SamplerOutput:
    """Typed multi-hop fan-out sample around the seeds (hops alternate actor ↔ item).

    Each hop draws up to ``fanout`` allowed edges per frontier node, uniformly without
    replacement. An edge reached from both ends is kept once, with its earliest hop. Nodes
    are listed seeds first (in the order given, repeats dropped), then each hop's new nodes
    in the order found; edges by hop."""
    actor_seeds = np.asarray(spec.actor_seeds, np.int64)
    item_seeds = np.asarray(spec.item_seeds, np.int64)
    if spec.fanouts and min(spec.fanouts) < 0:
        raise ValueError(f"fanouts must be >= 0, got {spec.fanouts}")
    blocked, blocked_mark = _NOTHING_BLOCKED, 0
    if spec.exclude is not None and len(spec.exclude):
        blocked, blocked_mark = scratch.claim("blocked", graph.num_edges, 1, np.int32)
        exclude = np.asarray(spec.exclude, np.int64)
        blocked[exclude[(exclude >= 0) & (exclude < graph.num_edges)]] = blocked_mark
    allowed = _EVERY_BEHAVIOUR
    if spec.behaviours is not None:
        allowed = np.zeros(len(BEHAVIOURS), bool)
        allowed[[b for b in spec.behaviours if 0 <= b < len(BEHAVIOURS)]] = True
    cutoff = np.inf if spec.cutoff is None else float(spec.cutoff)
    filtered = spec.cutoff is not None or blocked_mark != 0 or allowed is not _EVERY_BEHAVIOUR
    actor_local, actor_base = scratch.claim(ACTOR, graph.num_actors, graph.num_actors)
    item_local, item_base = scratch.claim(ITEM, graph.num_items, graph.num_items)
    actors, items, edges, per_behaviour, bad = _sample(
        (graph.actor_to_item.arrays, graph.item_to_actor.arrays),
        (actor_seeds, item_seeds),
        np.asarray(spec.fanouts, np.int64),
        (cutoff, blocked, blocked_mark, allowed, filtered),
        (actor_local, item_local),
        (actor_base, item_base),
        scratch.claim("edge", graph.num_edges, 1, np.int32),
        seed_from(rng),
    )
    if bad >= 0:  # nothing was sampled
        checked_ids(actor_seeds, graph.num_actors, "actor_seeds")
        checked_ids(item_seeds, graph.num_items, "item_seeds")
    out: tuple[dict[Relation, IntArray], ...] = ({}, {}, {}, {})
    for b, relation in enumerate(_RELATIONS):
        n = per_behaviour[b]
        if n:
            for row, part in enumerate(out):
                part[relation] = edges[b, row, :n]
    return SamplerOutput({ACTOR: actors, ITEM: items}, *out)


_RELATIONS = tuple((ACTOR, b.relationship, ITEM) for b in BEHAVIOURS)
_NOTHING_BLOCKED = np.zeros(0, np.int32)
_EVERY_BEHAVIOUR = np.ones(len(BEHAVIOURS), bool)
_EVERY_BEHAVIOUR.flags.writeable = False


_ACTOR_ROW, _ITEM_ROW, _EDGE_ROW, _HOP_ROW = range(4)  # per edge, in ``edges[behaviour]``


@numba.njit(nogil=True, cache=True)
def _sample(
    csrs: tuple[CsrArrays, CsrArrays],
    seeds: tuple[IntArray, IntArray],
    fanouts: IntArray,
    filter_: tuple[float, npt.NDArray[np.int32], int, npt.NDArray[np.bool_], bool],
    local: tuple[IntArray, IntArray],
    base: tuple[int, int],
    taken_map: tuple[npt.NDArray[np.int32], int],
    seed: int,
) -> tuple[IntArray, IntArray, IntArray, IntArray, int]:
    """The compiled body of ``sample_neighbours``; kind 0 is actors, 1 items. Returns both
    node lists, then every edge's (actor, item, edge, hop) as ``edges[behaviour, :, i]``
    for ``i`` below that behaviour's count, and the kind of a seed outside its range (-1 if
    none; then nothing is sampled)."""
    state = stream(seed)
    nodes = [np.empty(len(seeds[0]), np.int64), np.empty(len(seeds[1]), np.int64)]
    count = np.zeros(2, np.int64)
    per_behaviour = np.zeros(len(filter_[3]), np.int64)
    edges = np.empty((len(per_behaviour), 4, 0), np.int64)  # room for a pass in any one
    for kind in range(2):
        # indptr has one entry per node, + 1
        count[kind] = _add_seeds(
            seeds[kind], len(csrs[kind][0]) - 1, local[kind], base[kind], nodes[kind]
        )
        if count[kind] < 0:
            return nodes[0][:0], nodes[1][:0], edges, per_behaviour, kind
    lo, hi = np.zeros(2, np.int64), count.copy()  # each kind's frontier: nodes[kind][lo:hi]
    for h in range(len(fanouts)):
        found = count.copy()  # nodes found from here on are the next frontier
        for kind in range(2):
            other = 1 - kind
            frontier = nodes[kind][lo[kind] : hi[kind]]
            bound, most = _bounds(csrs[kind][0], frontier, fanouts[h])
            edges = _edges_with_room(edges, per_behaviour.max(), bound)
            nodes[other] = _nodes_with_room(nodes[other], count[other], bound)
            # An edge met again from its other end keeps its first pass: check the edges
            # taken so far, and mark these if another pass follows.
            later = h + 1 < len(fanouts) or (kind == 0 and hi[1] > lo[1])
            count[other] = _draw(
                csrs[kind],
                frontier,
                lo[kind],
                fanouts[h],
                filter_,
                (local[other], base[other], nodes[other], count[other]),
                (taken_map[0], taken_map[1], per_behaviour.sum() > 0, later),
                (edges, per_behaviour),
                kind,
                h + 1,
                most,
                state,
            )
        lo, hi = found, count.copy()
    return nodes[0][: count[0]].copy(), nodes[1][: count[1]].copy(), edges, per_behaviour, -1


@numba.njit(nogil=True, cache=True)
def _add_seeds(seeds: IntArray, n: int, local: IntArray, base: int, nodes: IntArray) -> int:
    """List the seeds (repeats dropped) in ``nodes`` and map them in ``local`` from ``base``;
    returns how many, or -1 for a seed outside ``[0, n)``."""
    count = 0
    for v in seeds:
        if v < 0 or v >= n:
            return -1
        if local[v] < base:
            local[v] = base + count
            nodes[count] = v
            count += 1
    return count


@numba.njit(nogil=True, cache=True)
def _bounds(indptr: IntArray, frontier: IntArray, k: int) -> tuple[int, int]:
    """``(draws at most, largest degree)`` of a pass drawing ``k`` edges per frontier node."""
    bound, most = 0, 0
    for v in frontier:
        degree = indptr[v + 1] - indptr[v]
        bound += min(degree, k)
        most = max(most, degree)
    return bound, most


@numba.njit(nogil=True, cache=True)
def _edges_with_room(edges: IntArray, filled: int, more: int) -> IntArray:
    """``edges`` ``[behaviours, 4, n]``, or a copy of its first ``filled`` columns with room
    for ``more`` (at least doubled) when it has not."""
    if filled + more <= edges.shape[2]:
        return edges
    grown = np.empty((edges.shape[0], 4, max(filled + more, 2 * edges.shape[2])), np.int64)
    grown[:, :, :filled] = edges[:, :, :filled]
    return grown


@numba.njit(nogil=True, cache=True)
def _nodes_with_room(nodes: IntArray, count: int, more: int) -> IntArray:
    """``nodes``, or a copy of its first ``count`` with room for ``more`` (at least doubled)."""
    if count + more <= len(nodes):
        return nodes
    grown = np.empty(max(count + more, 2 * len(nodes)), np.int64)
    grown[:count] = nodes[:count]
    return grown


@numba.njit(nogil=True, cache=True, inline="always")  # in _draw's loop: no call per node
def _eligible(
    csr: CsrArrays,
    start: int,
    end: int,
    filter_: tuple[float, npt.NDArray[np.int32], int, npt.NDArray[np.bool_], bool],
    out: IntArray,
) -> int:
    """Write the positions ``start .. end - 1`` whose edges pass ``filter_`` to ``out``;
    returns how many."""
    _, record, shift, ts = csr
    edge_mask, behaviour_mask = (1 << (shift - BEHAVIOUR_BITS)) - 1, (1 << BEHAVIOUR_BITS) - 1
    cutoff, blocked, blocked_mark, allowed, _ = filter_
    size = 0
    for p in range(start, end):
        if (
            ts[p] < cutoff
            and allowed[record[p] & behaviour_mask]
            and (
                blocked_mark == 0
                or blocked[(record[p] >> BEHAVIOUR_BITS) & edge_mask] != blocked_mark
            )
        ):
            out[size] = p
            size += 1
    return size


@numba.njit(nogil=True, cache=True)
def _draw(
    csr: CsrArrays,
    frontier: IntArray,
    first: int,
    k: int,
    filter_: tuple[float, npt.NDArray[np.int32], int, npt.NDArray[np.bool_], bool],
    reached: tuple[IntArray, int, IntArray, int],
    taken: tuple[npt.NDArray[np.int32], int, bool, bool],
    out: tuple[IntArray, IntArray],
    kind: int,
    hop: int,
    most: int,
    state: npt.NDArray[np.uint64],
) -> int:
    """One pass: up to ``k`` allowed edges of each ``frontier`` node (local ids from
    ``first``), drawn without replacement, appended to ``out`` = (edges, count per
    behaviour), which has room for every draw in any behaviour. ``reached`` is the other
    kind's (map, base, node list, count); ``taken`` the map of edges taken in this call, its
    mark, whether to skip edges marked and whether to mark these. Returns the new count of
    the other kind's nodes."""
    indptr, record, shift, _ = csr
    edge_mask, behaviour_mask = (1 << (shift - BEHAVIOUR_BITS)) - 1, (1 << BEHAVIOUR_BITS) - 1
    filtered = filter_[4]
    into, into_base, into_nodes, into_count = reached
    taken_map, taken_mark, check, mark = taken
    edges, per_behaviour = out
    drawn = np.empty(k, np.int64)  # offsets drawn for one node
    eligible = np.empty(most if filtered else 0, np.int64)  # positions it may draw from
    for q in range(len(frontier)):
        start, end = indptr[frontier[q]], indptr[frontier[q] + 1]
        size = _eligible(csr, start, end, filter_, eligible) if filtered else end - start
        for j in range(subset(state, size, k, drawn, 0)):
            p = eligible[drawn[j]] if filtered else start + drawn[j]
            r = np.int64(record[p])
            t, e, b = r >> shift, (r >> BEHAVIOUR_BITS) & edge_mask, r & behaviour_mask
            if check and taken_map[e] == taken_mark:
                continue
            if mark:
                taken_map[e] = taken_mark
            if into[t] < into_base:
                into[t] = into_base + into_count
                into_nodes[into_count] = t
                into_count += 1
            i = per_behaviour[b]
            edges[b, _ACTOR_ROW + kind, i] = first + q
            edges[b, _ITEM_ROW - kind, i] = into[t] - into_base
            edges[b, _EDGE_ROW, i] = e
            edges[b, _HOP_ROW, i] = hop
            per_behaviour[b] = i + 1
    return into_count

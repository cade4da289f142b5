"""Our own sampler: vectorised numpy over CSR (pyg-lib is not on PyPI, so PyG's loaders are out).

Two samplers over the actor–item bipartite graph, with dataclass inputs and outputs in the
spirit of PyG's ``SamplerOutput``:

* ``sample_neighbours`` — typed multi-hop fan-out sampling (without replacement), with a time
  cut-off and a set of excluded (supervision) edges that may never carry messages;
* ``random_walk_neighbours`` — PinSage's importance neighbourhood: short item→actor→item
  random walks, keeping the top-T most visited items with visit counts as weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch_geometric.data import HeteroData

from gnn.data import BEHAVIOURS, GraphData, IntArray

ACTOR, ITEM = "actor", "item"


@dataclass(frozen=True)
class Csr:
    """Adjacency of one direction: neighbours of node ``v`` are ``indices[indptr[v]:indptr[v+1]]``;
    ``edge``/``behaviour``/``ts`` give the global edge id, behaviour index and first-seen time."""

    indptr: IntArray
    indices: IntArray
    edge: IntArray
    behaviour: IntArray
    ts: npt.NDArray[np.float64]

    @classmethod
    def build(
        cls,
        src: IntArray,
        dst: IntArray,
        n_src: int,
        behaviour: IntArray,
        ts: npt.NDArray[np.float64],
    ) -> Csr:
        order = np.lexsort((dst, src))
        indptr = np.zeros(n_src + 1, np.int64)
        np.cumsum(np.bincount(src, minlength=n_src), out=indptr[1:])
        return cls(indptr, dst[order], order.astype(np.int64), behaviour[order], ts[order])


@dataclass(frozen=True)
class SamplerGraph:
    """Both directions of the bipartite graph, built once per snapshot."""

    actor_to_item: Csr
    item_to_actor: Csr
    num_actors: int
    num_items: int
    position_of_edge: IntArray  # global edge id -> position in actor_to_item

    @classmethod
    def from_data(cls, data: GraphData) -> SamplerGraph:
        e = data.edges
        a2i = Csr.build(e.actor, e.item, data.num_actors, e.behaviour, e.last_ts)
        position = np.empty(len(a2i.edge), np.int64)
        position[a2i.edge] = np.arange(len(a2i.edge))
        return cls(
            a2i,
            Csr.build(e.item, e.actor, data.num_items, e.behaviour, e.last_ts),
            data.num_actors,
            data.num_items,
            position,
        )


@dataclass(frozen=True)
class NeighbourInput:
    actor_seeds: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    item_seeds: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
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
    row: dict[tuple[str, str, str], IntArray]
    col: dict[tuple[str, str, str], IntArray]
    edge: dict[tuple[str, str, str], IntArray]
    hop: dict[tuple[str, str, str], IntArray]

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


def _candidate_edges(csr: Csr, frontier: IntArray) -> tuple[IntArray, IntArray]:
    """Every CSR position adjacent to ``frontier`` and the frontier index it belongs to."""
    starts, ends = csr.indptr[frontier], csr.indptr[frontier + 1]
    sizes = ends - starts
    owner = np.repeat(np.arange(len(frontier)), sizes)
    position = (
        np.arange(sizes.sum())
        - np.repeat(np.cumsum(sizes) - sizes, sizes)
        + np.repeat(starts, sizes)
    )
    return position, owner


def _pick(
    csr: Csr, frontier: IntArray, fanout: int, spec: NeighbourInput, rng: np.random.Generator
) -> IntArray:
    """CSR positions: at most ``fanout`` allowed edges per frontier node, uniformly at random."""
    if spec.cutoff is None and spec.exclude is None and spec.behaviours is None:
        return _pick_unfiltered(csr, frontier, fanout, rng)
    position, owner = _candidate_edges(csr, frontier)
    allowed = np.ones(len(position), bool)
    if spec.cutoff is not None:
        allowed &= csr.ts[position] < spec.cutoff
    if spec.exclude is not None and len(spec.exclude):
        allowed &= ~np.isin(csr.edge[position], spec.exclude)
    if spec.behaviours is not None:
        allowed &= np.isin(csr.behaviour[position], spec.behaviours)
    position, owner = position[allowed], owner[allowed]
    counts = np.bincount(owner, minlength=len(frontier))
    if counts.max(initial=0) <= fanout:
        return position  # every node keeps all its edges: no randomness needed
    order = np.lexsort((rng.random(len(position)), owner))
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(len(order)) - first
    return position[order[rank < fanout]]


def _pick_unfiltered(
    csr: Csr, frontier: IntArray, fanout: int, rng: np.random.Generator
) -> IntArray:
    """Fast path with no filters, O(fanout) per node: a node with at most ``fanout`` edges keeps
    them all; a larger one draws ``fanout`` positions and drops repeats (so it may keep a few
    fewer than ``fanout``, never a duplicate)."""
    start = csr.indptr[frontier]
    degree = csr.indptr[frontier + 1] - start
    small = degree <= fanout
    take = degree[small]
    offsets = np.arange(take.sum()) - np.repeat(np.cumsum(take) - take, take)
    whole = np.repeat(start[small], take) + offsets
    big_start, big_degree = start[~small], degree[~small]
    draws = (rng.random((len(big_start), fanout)) * big_degree[:, None]).astype(np.int64)
    sampled = np.unique((big_start[:, None] + draws).ravel())
    return np.concatenate([whole, sampled])


def sample_neighbours(
    graph: SamplerGraph, spec: NeighbourInput, rng: np.random.Generator
) -> SamplerOutput:
    """Typed multi-hop fan-out sample around the seeds (hops alternate actor ↔ item)."""
    counts = {ACTOR: graph.num_actors, ITEM: graph.num_items}
    seeds = {ACTOR: spec.actor_seeds.astype(np.int64), ITEM: spec.item_seeds.astype(np.int64)}
    visited = {k: np.zeros(n, bool) for k, n in counts.items()}
    found: dict[str, list[IntArray]] = {
        k: [np.unique(v)[np.argsort(np.unique(v, return_index=True)[1])]] for k, v in seeds.items()
    }
    for k, v in seeds.items():
        visited[k][v] = True
    frontier = {k: found[k][0] for k in seeds}
    edge_parts, hop_parts = [], []
    for hop, fanout in enumerate(spec.fanouts, start=1):
        new: dict[str, IntArray] = {}
        for kind, csr, other in (
            (ACTOR, graph.actor_to_item, ITEM),
            (ITEM, graph.item_to_actor, ACTOR),
        ):
            picked = (
                _pick(csr, frontier[kind], fanout, spec, rng)
                if len(frontier[kind])
                else np.zeros(0, np.int64)
            )
            edge_parts.append(csr.edge[picked])
            hop_parts.append(np.full(len(picked), hop))
            reached = csr.indices[picked]
            first = np.unique(reached, return_index=True)[1]
            fresh = reached[np.sort(first)]
            fresh = fresh[~visited[other][fresh]]
            visited[other][fresh] = True
            new[other] = fresh
        for k in (ACTOR, ITEM):
            found[k].append(new.get(k, np.zeros(0, np.int64)))
        frontier = {k: new.get(k, np.zeros(0, np.int64)) for k in (ACTOR, ITEM)}
    nodes = {k: np.concatenate(v) for k, v in found.items()}
    edges = np.concatenate(edge_parts) if edge_parts else np.zeros(0, np.int64)
    hops = np.concatenate(hop_parts) if hop_parts else np.zeros(0, np.int64)
    edges, first = np.unique(edges, return_index=True)  # an edge keeps its earliest hop
    return _output(graph, nodes, edges, hops[first])


def _output(
    graph: SamplerGraph, nodes: dict[str, IntArray], ids: IntArray, hops: IntArray
) -> SamplerOutput:
    a2i = graph.actor_to_item
    pos = graph.position_of_edge[ids]
    src = np.searchsorted(a2i.indptr, pos, side="right") - 1
    dst, beh = a2i.indices[pos], a2i.behaviour[pos]
    local = {}
    for kind, n in ((ACTOR, graph.num_actors), (ITEM, graph.num_items)):
        local[kind] = np.full(n, -1, np.int64)
        local[kind][nodes[kind]] = np.arange(len(nodes[kind]))
    out: dict[str, dict[tuple[str, str, str], IntArray]] = {
        "row": {},
        "col": {},
        "edge": {},
        "hop": {},
    }
    for b, behaviour in enumerate(BEHAVIOURS):
        m = beh == b
        if not m.any():
            continue
        rel = (ACTOR, behaviour.relationship, ITEM)
        out["row"][rel], out["col"][rel] = local[ACTOR][src[m]], local[ITEM][dst[m]]
        out["edge"][rel], out["hop"][rel] = ids[m], hops[m]
    return SamplerOutput(nodes, out["row"], out["col"], out["edge"], out["hop"])


@dataclass(frozen=True)
class RandomWalkInput:
    item_seeds: IntArray
    walks: int = 50  # walks started per seed
    length: int = 2  # item→actor→item steps per walk
    top: int = 10  # T: neighbours kept per seed


@dataclass(frozen=True)
class ImportanceNeighbours:
    """``neighbours[s]`` are the top-T items visited from seed ``s`` (−1 padded), ``weights[s]``
    their visit counts normalised to sum to 1 (PinSage's importance pooling weights)."""

    seeds: IntArray
    neighbours: IntArray  # [S, T]
    weights: npt.NDArray[np.float64]  # [S, T]


def random_walk_neighbours(
    graph: SamplerGraph, spec: RandomWalkInput, rng: np.random.Generator
) -> ImportanceNeighbours:
    """PinSage (Ying et al., 2018) importance neighbourhoods by item–actor–item walks."""
    seeds = spec.item_seeds.astype(np.int64)
    walker_seed = np.repeat(np.arange(len(seeds)), spec.walks)
    at = seeds[walker_seed]
    visits: list[tuple[IntArray, IntArray]] = []
    alive = np.ones(len(at), bool)
    for _ in range(spec.length):
        actor, ok = _step(graph.item_to_actor, at, rng)
        item, ok2 = _step(graph.actor_to_item, actor, rng)
        alive &= ok & ok2
        at = np.where(alive, item, at)
        keep = alive & (at != seeds[walker_seed])
        visits.append((walker_seed[keep], at[keep]))
    who = np.concatenate([v[0] for v in visits]) if visits else np.zeros(0, np.int64)
    what = np.concatenate([v[1] for v in visits]) if visits else np.zeros(0, np.int64)
    out = np.full((len(seeds), spec.top), -1, np.int64)
    weights = np.zeros((len(seeds), spec.top))
    key = who * graph.num_items + what
    uniq, counts = np.unique(key, return_counts=True)
    for s in range(len(seeds)):
        mine = (uniq // graph.num_items) == s
        items, c = uniq[mine] % graph.num_items, counts[mine]
        best = np.lexsort((items, -c))[: spec.top]
        out[s, : len(best)] = items[best]
        weights[s, : len(best)] = c[best] / max(1, c[best].sum())
    return ImportanceNeighbours(seeds, out, weights)


def _step(
    csr: Csr, at: IntArray, rng: np.random.Generator
) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    degree = csr.indptr[at + 1] - csr.indptr[at]
    ok = degree > 0
    offset = (rng.random(len(at)) * np.maximum(degree, 1)).astype(np.int64)
    nxt = csr.indices[np.minimum(csr.indptr[at] + offset, len(csr.indices) - 1)]
    return np.where(ok, nxt, at), ok

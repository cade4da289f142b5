"""Our own sampler: vectorised numpy over CSR (pyg-lib is not on PyPI, so PyG's loaders are out).

Two samplers over the actor–item bipartite graph, with dataclass inputs and outputs in the
spirit of PyG's ``SamplerOutput``:

* ``sample_neighbours`` — typed multi-hop fan-out sampling (without replacement), with a time
  cut-off and a set of excluded (supervision) edges that may never carry messages;
* ``random_walk_neighbours`` — PinSage's importance neighbourhood: short item→actor→item
  random walks, keeping the top-T most visited items with visit counts as weights.

A call costs O(sample), not O(graph): each hop draws for all frontier nodes at once
(``gnn.draws``), reads a drawn edge's endpoint, id and behaviour in one packed gather, and
relabels nodes and drops repeated edges through per-thread scratch maps reused across calls
(no sort, no ``np.unique``). At a few thousand edges a call the cost is numpy's per-call
overhead and cache misses, so the hot path counts its numpy calls and keeps its random-access
maps small (int32 records). Filters still scan the frontier's edges once per hop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch_geometric.data import HeteroData

from gnn.data import BEHAVIOURS, GraphData, IntArray
from gnn.draws import choose, ranges, scratch

ACTOR, ITEM = "actor", "item"
_EMPTY: IntArray = np.zeros(0, np.int64)


_BEHAVIOUR_BITS = max(1, (len(BEHAVIOURS) - 1).bit_length())


@dataclass(frozen=True)
class Csr:
    """Adjacency of one direction: neighbours of node ``v`` are ``indices[indptr[v]:indptr[v+1]]``;
    ``edge``/``behaviour``/``ts`` give the global edge id, behaviour index and first-seen time.

    ``record`` packs ``indices``, ``edge`` and ``behaviour`` of a position into one int32 or
    int64 (``indices << record_shift | edge << _BEHAVIOUR_BITS | behaviour``; ``None`` when the
    ids do not fit), so reading a drawn edge costs one random memory access, as a bare gather
    of ``indices`` does, instead of three (and, in int32, half the cache lines)."""

    indptr: IntArray
    indices: IntArray
    edge: IntArray
    behaviour: IntArray
    ts: npt.NDArray[np.float64]
    record: npt.NDArray[np.signedinteger[Any]] | None = field(
        default=None, repr=False, compare=False
    )
    record_shift: int = 0

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
        indices, edge, beh = dst[order], order.astype(np.int64), behaviour[order]
        shift = _BEHAVIOUR_BITS + max(1, len(edge).bit_length())
        record: npt.NDArray[np.signedinteger[Any]] | None = None
        bits = shift + int(indices.max(initial=0)).bit_length()
        if bits <= 63:
            record = (indices << shift) | (edge << _BEHAVIOUR_BITS) | beh
            if bits <= 31:
                record = record.astype(np.int32)
        return cls(indptr, indices, edge, beh, ts[order], record, shift)

    @cached_property
    def degree(self) -> IntArray:
        """Neighbours per node."""
        return np.diff(self.indptr)

    @cached_property
    def behaviours(self) -> tuple[int, ...]:
        """Behaviour indices that label at least one edge."""
        return tuple(np.flatnonzero(np.bincount(self.behaviour, minlength=1)).tolist())

    def gather(self, position: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        """``indices``, ``edge`` and ``behaviour`` at ``position``."""
        if self.record is None:
            return self.indices[position], self.edge[position], self.behaviour[position]
        packed = self.record.take(position).astype(np.int64, copy=False)
        edge = (packed >> _BEHAVIOUR_BITS) & ((1 << (self.record_shift - _BEHAVIOUR_BITS)) - 1)
        return packed >> self.record_shift, edge, packed & ((1 << _BEHAVIOUR_BITS) - 1)


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


@dataclass(frozen=True)
class _Filter:
    """Which CSR positions may carry messages: ``ts < cutoff``, edge not blocked (global edge
    ids marked ``mark`` in the scratch map ``blocked``), behaviour allowed (by index)."""

    cutoff: float | None
    blocked: npt.NDArray[np.signedinteger[Any]] | None
    mark: int
    behaviours: npt.NDArray[np.bool_] | None

    @classmethod
    def of(cls, graph: SamplerGraph, spec: NeighbourInput) -> _Filter | None:
        blocked, mark, behaviours = None, 0, None
        if spec.exclude is not None and len(spec.exclude):
            n = len(graph.position_of_edge)
            blocked, mark = scratch.claim("blocked", n, 1, np.int32)
            exclude = np.asarray(spec.exclude, np.int64)
            blocked[exclude[(exclude >= 0) & (exclude < n)]] = mark  # others match no edge
        if spec.behaviours is not None:
            behaviours = np.zeros(len(BEHAVIOURS), bool)
            behaviours[[b for b in spec.behaviours if 0 <= b < len(BEHAVIOURS)]] = True
        if spec.cutoff is None and blocked is None and behaviours is None:
            return None
        return cls(spec.cutoff, blocked, mark, behaviours)

    def allowed(self, csr: Csr, position: IntArray) -> npt.NDArray[np.bool_]:
        ok = np.ones(len(position), bool)
        if self.cutoff is not None:
            ok &= csr.ts[position] < self.cutoff
        if self.blocked is not None:
            ok &= self.blocked[csr.edge[position]] != self.mark
        if self.behaviours is not None:
            ok &= self.behaviours[csr.behaviour[position]]
        return ok


def _pick(
    csr: Csr, frontier: IntArray, fanout: int, allow: _Filter | None, rng: np.random.Generator
) -> tuple[IntArray, IntArray | None]:
    """CSR positions: at most ``fanout`` allowed edges per frontier node, uniformly at random
    without replacement; and the frontier index each came from (``None``: position ``i`` came
    from ``frontier[i % len(frontier)]``)."""
    start = csr.indptr.take(frontier)
    size = csr.degree.take(frontier)
    if allow is None:
        return choose(start, size, fanout, len(csr.indices), rng)
    # Filtered: every allowed position of the frontier, packed per node, then the same draw.
    position, owner = ranges(start, size)
    ok = allow.allowed(csr, position)
    position, owner = position[ok], owner[ok]
    count = np.bincount(owner, minlength=len(frontier))
    index, row = choose(np.cumsum(count) - count, count, fanout, len(position), rng)
    return position[index], row


_DENSE = 4  # a hop reaching >= 1/_DENSE as many nodes as its type has: mark them in a mask


class _Nodes:
    """One node type of a sample: global ids in order of discovery, and a scratch map from
    global id to ``base + local id``."""

    def __init__(self, num_nodes: int, name: str) -> None:
        self.num_nodes = num_nodes
        self.local, self.base = scratch.claim(name, num_nodes, 1 << 32)  # ids, tags < 2**32
        self.parts: list[IntArray] = []
        self.count = 0

    def add_seeds(self, seeds: IntArray) -> IntArray:
        """Adds ``seeds`` (the first nodes) in order of first occurrence; returns them."""
        n, local, start = len(seeds), self.local, self.base
        if not n:
            return seeds
        local[seeds] = np.arange(start, start + n)  # some occurrence of each wins
        if not (local.take(seeds) == np.arange(start, start + n)).all():  # repeats
            tag = np.arange(start + 2 * n - 1, start + n - 1, -1)  # above the first pass
            np.maximum.at(local, seeds, tag)  # a node keeps the tag of its first occurrence
            seeds = seeds[local.take(seeds) == tag]
            local[seeds] = np.arange(start, start + len(seeds))
        self.parts.append(seeds)
        self.count = len(seeds)
        return seeds

    def add(self, candidates: IntArray) -> tuple[IntArray, IntArray]:
        """Adds the nodes of ``candidates`` not seen yet; returns them (in no particular
        order) and the local id of every candidate."""
        base, local, start = self.base, self.local, self.base + self.count
        if len(candidates) * _DENSE >= self.num_nodes:
            hit = np.zeros(self.num_nodes, bool)
            hit[candidates] = True
            if self.count:
                hit &= local[: self.num_nodes] < base
            new = hit.nonzero()[0]  # ascending ids
        else:
            new = candidates[local.take(candidates) < base] if self.count else candidates
            tag = np.arange(start + len(new) - 1, start - 1, -1)  # earlier: larger
            np.maximum.at(local, new, tag)  # a node keeps the tag of its first occurrence
            new = new[local.take(new) == tag]
        if len(new):
            local[new] = np.arange(start, start + len(new))
            self.parts.append(new)
            self.count += len(new)
        ids = local.take(candidates)
        ids -= base
        return new, ids


@dataclass
class _Part:
    """The edges one hop drew from the frontier of one side: the frontier-local id of their
    source (``None``: edge ``i`` comes from frontier node ``i % width``), plus ``offset``; their
    target (global id, local once added to its ``_Nodes``); their global id and behaviour."""

    source: IntArray | None
    width: int
    offset: int
    target: IntArray
    edge: IntArray
    behaviour: IntArray
    hop: int | IntArray  # of every edge, or one per edge
    from_actor: bool

    def sources(self, which: IntArray | None = None) -> IntArray:
        """Local source ids of the edges ``which`` (all if ``None``)."""
        if self.source is None:
            rows = scratch.cycle(self.width, len(self.edge))
            local = rows.copy() if which is None else rows.take(which)
        else:
            local = self.source if which is None else self.source.take(which)
        return local + self.offset if self.offset else local

    def keep(self, keep: npt.NDArray[np.bool_]) -> _Part:
        """Only the edges where ``keep``."""
        source = self.source
        if source is None:
            source = scratch.cycle(self.width, len(self.edge))
        return _Part(
            source[keep],
            self.width,
            self.offset,
            self.target[keep],
            self.edge[keep],
            self.behaviour[keep],
            self.hop,
            self.from_actor,
        )


def sample_neighbours(
    graph: SamplerGraph, spec: NeighbourInput, rng: np.random.Generator
) -> SamplerOutput:
    """Typed multi-hop fan-out sample around the seeds (hops alternate actor ↔ item).

    Each hop draws up to ``fanout`` allowed edges per frontier node, uniformly without
    replacement. An edge reached from both ends is kept once, with its earliest hop. Nodes
    are listed seeds first (in the order given), then each hop's new nodes; edges by hop."""
    allow = _Filter.of(graph, spec)
    nodes = {ACTOR: _Nodes(graph.num_actors, ACTOR), ITEM: _Nodes(graph.num_items, ITEM)}
    frontier: dict[str, tuple[IntArray, int]] = {}  # new nodes, local id of the first
    for kind, seeds in ((ACTOR, spec.actor_seeds), (ITEM, spec.item_seeds)):
        frontier[kind] = nodes[kind].add_seeds(np.asarray(seeds, np.int64)), 0
    parts: list[_Part] = []
    taken, mark, marked = _EMPTY, 0, 0  # edge ids of parts[:marked] are ``mark`` in ``taken``
    for hop, fanout in enumerate(spec.fanouts, start=1):
        new: dict[str, tuple[IntArray, int]] = {}
        for kind, csr, other in (
            (ACTOR, graph.actor_to_item, ITEM),
            (ITEM, graph.item_to_actor, ACTOR),
        ):
            ids, offset = frontier[kind]
            new[other] = _EMPTY, nodes[other].count
            if not len(ids):
                continue
            position, row = _pick(csr, ids, fanout, allow, rng)
            reached, edge, behaviour = csr.gather(position)
            part = _Part(row, len(ids), offset, reached, edge, behaviour, hop, kind == ACTOR)
            if parts:  # an edge met again from its other end keeps its earlier hop
                if not mark:
                    taken, mark = scratch.claim("edge", len(graph.position_of_edge), 1, np.int32)
                for p in parts[marked:]:
                    taken[p.edge] = mark
                marked = len(parts)
                again = taken.take(edge) == mark
                if again.any():
                    part = part.keep(~again)
            fresh, part.target = nodes[other].add(part.target)  # global -> local ids
            new[other] = fresh, nodes[other].count - len(fresh)
            parts.append(part)
        frontier = new
    found = {kind: np.concatenate(n.parts) if n.parts else _EMPTY for kind, n in nodes.items()}
    return _output(found, parts, graph.actor_to_item.behaviours)


def _output(
    nodes: dict[str, IntArray], parts: list[_Part], behaviours: tuple[int, ...]
) -> SamplerOutput:
    """Splits the sampled edges by behaviour (one of ``behaviours``) into relations."""
    out: tuple[dict[tuple[str, str, str], IntArray], ...] = ({}, {}, {}, {})
    for part in parts if len(parts) == 1 else [_merged(parts)]:
        if not len(part.edge):
            break
        for b in behaviours:
            which = None if len(behaviours) == 1 else (part.behaviour == b).nonzero()[0]
            if which is not None and not len(which):
                continue
            source = part.sources(which)
            target = part.target if which is None else part.target.take(which)
            edge = part.edge if which is None else part.edge.take(which)
            rel = (ACTOR, BEHAVIOURS[b].relationship, ITEM)
            out[0][rel], out[1][rel] = (source, target) if part.from_actor else (target, source)
            out[2][rel] = edge
            hop = part.hop
            if isinstance(hop, int):
                out[3][rel] = np.empty(len(edge), np.int64)
                out[3][rel].fill(hop)
            else:
                out[3][rel] = hop if which is None else hop.take(which)
    return SamplerOutput(nodes, *out)


def _merged(parts: list[_Part]) -> _Part:
    """All ``parts`` as one, actor → item, with the hop of every edge."""
    actor = [p.sources() if p.from_actor else p.target for p in parts]
    item = [p.target if p.from_actor else p.sources() for p in parts]
    edge = [p.edge for p in parts]
    hop = np.repeat(np.array([p.hop for p in parts], np.int64), [len(e) for e in edge])
    behaviour = np.concatenate([p.behaviour for p in parts])
    return _Part(
        np.concatenate(actor),
        0,
        0,
        np.concatenate(item),
        np.concatenate(edge),
        behaviour,
        hop,
        True,
    )


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

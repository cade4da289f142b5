"""Mini-batches for training on sampled neighbourhoods instead of the whole graph.

For a batch of supervision pairs (actor, item), the sampler draws three hops around the batch's
actors and candidate items (a three-layer ``SageRec`` reads three from an actor, two from an
item), with the batch's own pairs excluded, so an answer never carries a message to its
question. The model then runs
on that subgraph as it would on the full graph. Candidates are the batch's positives, uniform
random items and, on PinSage's curriculum, hard negatives: items that random walks from the
positive visit most, so they look like it without being it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gnn.csr import SamplerGraph
from gnn.data import BEHAVIOURS, GraphData, IntArray, Interactions
from gnn.draws import ranges
from gnn.inputs import Content, build_graph
from gnn.models import Graph, interaction_weights
from gnn.sampler import (
    ACTOR,
    ITEM,
    NeighbourInput,
    SamplerOutput,
    sample_neighbours,
)
from gnn.walks import RandomWalkInput, random_walk_neighbours

SAGE_HOPS = 3  # actor ← item ← actor ← item: what SageRec's three layers read


@dataclass(frozen=True)
class PairBatch:
    """A sampled subgraph with local ids; ``actor[k]`` should score ``candidates[label[k]]``
    above the other candidates."""

    graph: Graph
    actor: Tensor  # [B] local actor of each pair
    candidates: Tensor  # [C] local items scored for every pair
    label: Tensor  # [B] index into ``candidates`` of each pair's positive
    negative: Tensor  # [B] index into ``candidates`` of one negative per pair (for BPR/margin)


class PairSampler:
    """Builds ``PairBatch``es over fixed training edges (``edges`` index ``graph``'s edge ids)."""

    def __init__(
        self,
        data: GraphData,
        edges: Interactions,
        known_items: np.ndarray,
        typed: bool,
        half_life_days: float,
        fanout: int,
        device: torch.device,
    ) -> None:
        self.data, self.typed, self.device = data, typed, device
        self.graph = SamplerGraph.from_data(data.with_edges(edges))
        self.fanout = fanout
        self.weight = interaction_weights(edges, data.newest_ts, half_life_days)
        self.content = Content.of(data, known_items)
        # Edges of each (actor, item) pair, so a batch can exclude its own pairs' edges.
        key = edges.actor * data.num_items + edges.item
        order = np.argsort(key, kind="stable")
        self.pair_key, starts = np.unique(key[order], return_index=True)
        self.pair_edges = order
        self.pair_start = np.r_[starts, len(order)]

    @property
    def num_pairs(self) -> int:
        """P, the number of distinct training pairs."""
        return len(self.pair_key)

    def pairs(self) -> IntArray:
        """``[P, 2]`` distinct (actor, item) training pairs."""
        n = self.data.num_items
        return np.stack([self.pair_key // n, self.pair_key % n], axis=1)

    def batch(
        self,
        pair_index: IntArray,
        negatives: int,
        hard_share: float,
        rng: np.random.Generator,
    ) -> PairBatch:
        """The batch for pairs ``pair_index`` (rows of ``pairs()``)."""
        n = self.data.num_items
        actor, item = self.pair_key[pair_index] // n, self.pair_key[pair_index] % n
        uniform = rng.integers(0, n, max(negatives, len(item)))
        negative = uniform[: len(item)].copy()
        n_hard = int(len(item) * hard_share)
        if n_hard:
            negative[:n_hard] = self._hard_negatives(item[:n_hard], rng)
        items = np.unique(np.concatenate([item, uniform, negative]))
        actors = np.unique(actor)
        sample = sample_neighbours(
            self.graph,
            NeighbourInput(
                actor_seeds=actors,
                item_seeds=items,
                fanouts=(self.fanout,) * SAGE_HOPS,
                exclude=self._edges_of(pair_index),
            ),
            rng,
        )
        return PairBatch(
            self._graph(sample),
            torch.as_tensor(np.searchsorted(actors, actor), device=self.device),
            torch.arange(len(items), device=self.device),  # item seeds are listed first
            torch.as_tensor(np.searchsorted(items, item), device=self.device),
            torch.as_tensor(np.searchsorted(items, negative), device=self.device),
        )

    def _edges_of(self, pair_index: IntArray) -> IntArray:
        start = self.pair_start[pair_index]
        position, _ = ranges(start, self.pair_start[pair_index + 1] - start)
        return self.pair_edges[position]

    def _hard_negatives(self, item: IntArray, rng: np.random.Generator) -> IntArray:
        """One of the items most visited by random walks from each positive (uniform when a
        walk finds none)."""
        near = random_walk_neighbours(self.graph, RandomWalkInput(item_seeds=item), rng)
        rank = rng.integers(0, near.neighbours.shape[1], len(item))
        pick = near.neighbours[np.arange(len(item)), rank]
        return np.where(pick >= 0, pick, rng.integers(0, self.data.num_items, len(item)))

    def _graph(self, sample: SamplerOutput) -> Graph:
        """The model's input graph over a sample (local ids, edges weighted as in training)."""
        present = [(b, r) for b, r in enumerate(_RELATIONS) if r in sample.row]
        rows, cols, ids = (
            np.concatenate([part[r] for _, r in present] or [np.zeros(0, np.int64)])
            for part in (sample.row, sample.col, sample.edge)
        )
        behaviour = np.repeat([b for b, _ in present], [len(sample.row[r]) for _, r in present])
        return build_graph(
            len(sample.node[ACTOR]),
            (rows, cols, behaviour.astype(np.int64)),
            self.weight[torch.as_tensor(ids)],
            self.content.take(sample.node[ITEM]),
            self.typed,
            self.device,
        )


_RELATIONS = tuple((ACTOR, b.relationship, ITEM) for b in BEHAVIOURS)

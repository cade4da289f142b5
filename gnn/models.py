"""The models: an inductive, behaviour-typed GraphSAGE-style recommender and LightGCN.

Both answer ``forward(graph) -> (actor_emb [A, d], item_emb [I, d])`` and score with a dot
product, so training and evaluation treat them alike.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.nn import GraphConv, HeteroConv

from gnn.data import BEHAVIOURS, Interactions

# Actors get no input of their own in some convolutions, by design; PyG warns about that.
warnings.filterwarnings("ignore", message="There exist node types")
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


@dataclass(frozen=True)
class SageConfig:
    dim: int = 64  # embedding width d
    use_item_ids: bool = True  # learn an ID embedding per training item (new items do without)
    id_dropout: float = 0.0  # share of items trained without their ID (0.1 cost 2.5 points of
    # ML-100K recall@20 here; content embeddings are trained either way)
    behaviour_typed: bool = True  # one aggregation per behaviour type (False: all edges alike)
    half_life_days: float = 3650.0  # recency decay of an edge's weight (60 days cost 4 points
    # of ML-100K recall@20 on a random split; shorten it for session-heavy shops)
    category_depth: int = 4  # leaf, parent, … category levels that feed an item


@dataclass
class Graph:
    """Message-passing edges as tensors, plus item content; built by ``gnn.train.to_graph``.

    ``edges[b]`` is ``[2, E_b]`` (actor, item) for behaviour index ``b`` (one entry when
    edges are merged); ``weights[b]`` is ``[E_b]``. ``ancestors`` is ``[I, depth]`` category
    indices (-1 = none); ``features`` is ``[I, F]``; ``item_ids`` is ``[I]`` rows of the ID
    table (-1 for items the model has no ID for).
    """

    num_actors: int
    edges: list[Tensor]
    weights: list[Tensor]
    ancestors: Tensor
    features: Tensor
    item_ids: Tensor

    @property
    def num_items(self) -> int:
        return int(self.ancestors.shape[0])


class SageRec(nn.Module):
    """Inductive hetero GraphSAGE recommender (after Hamilton et al., 2017; PinSage, 2018).

    item:  x_i = Σ_levels Emb(category ancestor) + W_f · features + Emb_id(i)  (id optional)
    actor: u_a = Σ_b Conv_b({x_i : a -b-> i})          (weighted mean, per behaviour b)
    item:  z_i = x_i + Σ_b Conv'_b({u_a : a -b-> i})   (GraphSAGE update from its actors)
    actor: h_a = Σ_b Conv''_b({z_i : a -b-> i})
    score(a, i) = ⟨h_a, z_i⟩.  A new item has z_i from content (+ any neighbours); a new
    session has h_a from the items it touched — no retraining.
    """

    def __init__(
        self, config: SageConfig, num_categories: int, num_features: int, num_item_ids: int
    ) -> None:
        super().__init__()
        d = config.dim
        self.config = config
        self.categories = nn.Embedding(num_categories + 1, d, padding_idx=num_categories)
        self.level_weight = nn.Parameter(torch.ones(config.category_depth))
        self.features = nn.Linear(max(num_features, 1), d, bias=False)
        self.ids = (
            nn.Embedding(num_item_ids + 1, d, padding_idx=num_item_ids)
            if config.use_item_ids
            else None
        )
        types = [b.relationship for b in BEHAVIOURS] if config.behaviour_typed else ["TOUCHED"]
        self.types = types
        self.to_actor = self._conv(types, "item", "actor", d)
        self.to_item = self._conv(types, "actor", "item", d)
        self.to_actor_out = self._conv(types, "item", "actor", d)
        for emb in (self.categories, *([self.ids] if self.ids is not None else [])):
            nn.init.normal_(emb.weight, std=0.1)

    @staticmethod
    def _conv(types: list[str], src: str, dst: str, d: int) -> HeteroConv:
        return HeteroConv(
            {(src, t, dst): GraphConv((d, d), d, aggr="mean") for t in types}, aggr="sum"
        )

    def item_input(self, graph: Graph, drop_ids: Tensor | None = None) -> Tensor:
        """``[I, d]`` content (+ ID) representation x of every item."""
        pad = self.categories.num_embeddings - 1
        anc = graph.ancestors.clamp(min=-1)
        cats = self.categories(torch.where(anc >= 0, anc, torch.full_like(anc, pad)))
        x = (cats * self.level_weight[: anc.shape[1], None]).sum(dim=1)
        if graph.features.shape[1]:
            x = x + self.features(graph.features)
        if self.ids is not None:
            pad_id = self.ids.num_embeddings - 1
            rows = torch.where(
                graph.item_ids >= 0, graph.item_ids, torch.full_like(graph.item_ids, pad_id)
            )
            if drop_ids is not None:
                rows = torch.where(drop_ids, torch.full_like(rows, pad_id), rows)
            x = x + self.ids(rows)
        return x

    def forward(self, graph: Graph, drop_ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(actors [A, d], items [I, d])``."""
        x_item = self.item_input(graph, drop_ids)
        zeros_actor = x_item.new_zeros(graph.num_actors, x_item.shape[1])
        fwd, rev, w = self._edge_dicts(graph)
        u = self.to_actor({"item": x_item, "actor": zeros_actor}, fwd, edge_weight_dict=w[0])[
            "actor"
        ]
        z = (
            x_item
            + self.to_item({"actor": torch.relu(u), "item": x_item}, rev, edge_weight_dict=w[1])[
                "item"
            ]
        )
        h = self.to_actor_out({"item": z, "actor": zeros_actor}, fwd, edge_weight_dict=w[0])[
            "actor"
        ]
        return h, z

    def _edge_dicts(self, graph: Graph) -> tuple[dict, dict, tuple[dict, dict]]:
        fwd, rev, wf, wr = {}, {}, {}, {}
        for t, e, w in zip(self.types, graph.edges, graph.weights, strict=True):
            fwd[("item", t, "actor")] = e.flip(0)
            rev[("actor", t, "item")] = e
            wf[("item", t, "actor")] = w
            wr[("actor", t, "item")] = w
        return fwd, rev, (wf, wr)


def edge_weight(count: Tensor, age_days: Tensor, half_life_days: float) -> Tensor:
    """Weight of an edge: log-damped count times exponential recency decay."""
    return torch.log1p(count.float()) * torch.pow(0.5, age_days.float() / half_life_days)


def interaction_weights(edges: Interactions, reference_ts: float, half_life_days: float) -> Tensor:
    """``edge_weight`` of every edge, its age counted back from ``reference_ts`` (never < 0)."""
    age = np.maximum(reference_ts - edges.last_ts, 0.0) / 86_400.0
    return edge_weight(torch.as_tensor(edges.count), torch.as_tensor(age), half_life_days)


@dataclass(frozen=True)
class LightGCNConfig:
    dim: int = 64  # embedding width d
    layers: int = 3  # propagation depth K


class LightGCN(nn.Module):
    """LightGCN (He et al., 2020): E⁽ᵏ⁺¹⁾ = Â E⁽ᵏ⁾ with Â = D^-½ A D^-½ over the actor–item
    bipartite graph, final embedding = mean over k = 0..K. Transductive: one row per known
    actor and item. Propagation is one sparse matmul per layer over the whole graph."""

    def __init__(self, config: LightGCNConfig, num_actors: int, num_items: int) -> None:
        super().__init__()
        self.config = config
        self.num_actors, self.num_items = num_actors, num_items
        self.embedding = nn.Embedding(num_actors + num_items, config.dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.adjacency: Tensor | None = None

    def set_graph(self, actor: Tensor, item: Tensor) -> None:
        """Build Â from (actor, item) edges (duplicates collapse to one)."""
        n = self.num_actors + self.num_items
        rows = torch.cat([actor, item + self.num_actors])
        cols = torch.cat([item + self.num_actors, actor])
        a = torch.sparse_coo_tensor(
            torch.stack([rows, cols]), torch.ones(len(rows)), (n, n)
        ).coalesce()
        i = a.indices()
        deg = torch.bincount(i[0], minlength=n).float().clamp(min=1)
        norm = deg.pow(-0.5)
        values = norm[i[0]] * norm[i[1]]
        self.adjacency = torch.sparse_coo_tensor(i, values, (n, n)).to_sparse_csr()

    def forward(self) -> tuple[Tensor, Tensor]:
        if self.adjacency is None:
            raise RuntimeError("call set_graph() before forward()")
        e = self.embedding.weight
        total = e
        for _ in range(self.config.layers):
            e = self.adjacency @ e
            total = total + e
        out = total / (self.config.layers + 1)
        return out[: self.num_actors], out[self.num_actors :]

"""The models: an inductive, behaviour-typed GraphSAGE-style recommender and LightGCN.

Both return ``(actor_emb [A, d], item_emb [I, d])`` from ``forward`` and score with a dot
product, so training and evaluation treat them alike: ``SageRec`` embeds the ``Graph`` it is
given (``forward(graph)``, any graph); ``LightGCN`` the graph fixed by ``set_graph`` before
(``forward()``, its own actors and items only).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from gnn.data import BEHAVIOURS, Interactions

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


@dataclass(frozen=True)
class SageConfig:
    dim: int = 64  # embedding width d
    use_item_ids: bool = True  # learn an ID embedding per training item (new items do without)
    id_dropout: float = 0.0  # share of items trained without their ID (0.1 cost 2.5 points of
    # ML-100K recall@20 here; content embeddings are trained either way)
    behaviour_typed: bool = True  # a weight and a projection per behaviour (False: all alike)
    half_life_days: float = 3650.0  # recency decay of an edge's weight (60 days cost 4 points
    # of ML-100K recall@20 on a random split; shorten it for session-heavy shops)
    category_depth: int = 4  # leaf, parent, … category levels that feed an item


@dataclass
class Graph:
    """Message-passing edges as tensors, plus item content; built by ``gnn.inputs.build_graph``.

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

    def typed_edges(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """All edges as ``(actor [E], item [E], type index [E], weight [E])``."""
        kinds = [torch.full_like(e[0], b) for b, e in enumerate(self.edges)]
        both = torch.cat(self.edges, dim=1)
        return both[0], both[1], torch.cat(kinds), torch.cat(self.weights)


class SageRec(nn.Module):
    """Inductive hetero GraphSAGE recommender (after Hamilton et al., 2017; PinSage, 2018).

    item:  x_i = Σ_levels Emb(category ancestor) + W_f · features + Emb_id(i)  (id optional)
    actor: u_a = Conv({x_i : a -b-> i})          (``BehaviourConv``: typed weighted mean)
    item:  z_i = x_i + Conv'({u_a : a -b-> i})   (GraphSAGE update from its actors)
    actor: h_a = Conv''({z_i : a -b-> i})
    score(a, i) = ⟨h_a, z_i⟩.  A new item has z_i from content and any neighbours, with its
    category's average ID and message from actors standing in for what it lacks; a new
    session has h_a from the items it touched — no retraining.
    """

    STAND_INS = ("category_ids", "category_messages", "category_known")  # buffers
    category_ids: Tensor
    category_messages: Tensor
    category_known: Tensor

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
        self.to_actor = BehaviourConv(len(types), d)
        self.to_item = BehaviourConv(len(types), d)
        self.to_actor_out = BehaviourConv(len(types), d)
        for emb in (self.categories, *([self.ids] if self.ids is not None else [])):
            nn.init.normal_(emb.weight, std=0.1)
        # Per category (last row: all items), the known items' mean ID embedding, their mean
        # message from actors, and how many there were (``remember_categories``).
        self.register_buffer("category_ids", torch.zeros(num_categories + 1, d))
        self.register_buffer("category_messages", torch.zeros(num_categories + 1, d))
        self.register_buffer("category_known", torch.zeros(num_categories + 1))

    @torch.no_grad()
    def remember_categories(self, graph: Graph) -> None:
        """Average the ID embeddings and the messages from actors of ``graph``'s known items
        (with an ID and edges) per category. An item without an ID, or without edges, takes
        its nearest category's averages instead (leaf, else parent, …, else all items): a new
        item starts as an average item of its category, not as content alone."""
        x = self.item_input(graph)
        actor, item, kind, weight = graph.typed_edges()
        u = self.to_actor(x, item, actor, kind, weight, graph.num_actors)
        message, has_edges = self.to_item.neighbour_mean(
            torch.relu(u), actor, item, kind, weight, graph.num_items
        )
        known = (graph.item_ids >= 0) & has_edges
        anc = graph.ancestors[known]
        valid = anc >= 0
        rows = anc[valid]
        counts = torch.zeros_like(self.category_known).index_add_(
            0, rows, torch.ones_like(rows, dtype=x.dtype)
        )
        counts[-1] = float(int(known.sum()))
        self.category_known.copy_(counts)
        averaged = [(self.category_messages, message[known])]
        if self.ids is not None:
            averaged.append((self.category_ids, self.ids.weight[graph.item_ids[known]]))
        for buffer, values in averaged:
            vectors = values[:, None, :].expand(-1, anc.shape[1], -1)[valid]
            sums = torch.zeros_like(buffer).index_add_(0, rows, vectors)
            sums[-1] = values.sum(dim=0)
            buffer.copy_(sums / counts.clamp(min=1)[:, None])

    def stand_in(self, means: Tensor, ancestors: Tensor) -> Tensor:
        """``[I, d]`` the row of ``means`` (``category_ids`` or ``category_messages``) of each
        item's nearest category with known items; ``ancestors`` ``[I, depth]``, leaf first."""
        pad = means.shape[0] - 1
        cats = torch.where(ancestors >= 0, ancestors, torch.full_like(ancestors, pad))
        has = (self.category_known[cats] > 0) & (ancestors >= 0)
        nearest = cats.gather(1, has.to(torch.uint8).argmax(dim=1, keepdim=True)).squeeze(1)
        return means[torch.where(has.any(dim=1), nearest, pad)]

    def item_input(self, graph: Graph, drop_ids: Tensor | None = None) -> Tensor:
        """``[I, d]`` content (+ ID) representation x of every item."""
        pad = self.categories.num_embeddings - 1
        anc = graph.ancestors.clamp(min=-1)
        cats = self.categories(torch.where(anc >= 0, anc, torch.full_like(anc, pad)))
        x = (cats * self.level_weight[: anc.shape[1], None]).sum(dim=1)
        if graph.features.shape[1]:
            x = x + self.features(graph.features)
        if self.ids is not None:
            no_id = graph.item_ids < 0
            if drop_ids is not None:
                no_id = no_id | drop_ids
            pad_id = self.ids.num_embeddings - 1
            own = self.ids(
                torch.where(no_id, torch.full_like(graph.item_ids, pad_id), graph.item_ids)
            )
            x = x + torch.where(no_id[:, None], self.stand_in(self.category_ids, anc), own)
        return x

    def forward(self, graph: Graph, drop_ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(actors [A, d], items [I, d])``."""
        x_item = self.item_input(graph, drop_ids)
        actor, item, kind, weight = graph.typed_edges()
        u = self.to_actor(x_item, item, actor, kind, weight, graph.num_actors)
        empty = self.stand_in(self.category_messages, graph.ancestors)
        z = x_item + self.to_item(
            torch.relu(u), actor, item, kind, weight, graph.num_items, x_item, empty
        )
        h = self.to_actor_out(z, item, actor, kind, weight, graph.num_actors)
        return h, z


class BehaviourConv(nn.Module):
    """One weighted mean over all of a node's edges, typed by behaviour b:

        out_v = Σ_e α_b w_e (W + R_b) x_src / Σ_e α_b w_e  + c  (+ W_root x_v for items)

    with α_b = softplus(a_b) and w_e the edge weight (count, recency). ``R_b`` starts at zero
    and the ``a_b`` equal, so a typed layer starts as the merged one (one type) and learns only
    what the behaviours add; weight decay keeps a rare behaviour's ``R_b`` near the shared
    ``W``. A mean per behaviour instead (PyG's HeteroConv of GraphConvs) gives one purchase the
    pull of thirty views and ranked purchases worse than merged edges (docs/typed-vs-merged.md).
    Linear in ``x_src``, so a score splits exactly over the edges (``gnn.inference``).
    """

    WEIGHT_FLOOR = 1e-12  # on a node's total edge weight: below it a node has no edges
    EDGE_CHUNK = 1 << 19  # edges whose messages a forward without autograd holds at once

    def __init__(self, num_types: int, dim: int) -> None:
        super().__init__()
        self.shared = nn.Linear(dim, dim)
        self.per_type = nn.Parameter(torch.zeros(num_types, dim, dim))
        self.type_logit = nn.Parameter(torch.zeros(num_types))
        self.root = nn.Linear(dim, dim, bias=False)

    def type_weights(self) -> Tensor:
        """``[types]`` α_b."""
        return nn.functional.softplus(self.type_logit)

    def type_matrices(self) -> Tensor:
        """``[types, d_in, d_out]``: (W + R_b)ᵀ, so that ``x @ M_b`` projects x."""
        return self.shared.weight.T[None] + self.per_type

    def forward(
        self,
        x_src: Tensor,
        src: Tensor,
        dst: Tensor,
        kind: Tensor,
        weight: Tensor,
        num_dst: int,
        x_dst: Tensor | None = None,
        empty: Tensor | None = None,
    ) -> Tensor:
        """``[num_dst, d]`` for edges ``src[e] → dst[e]`` of behaviour ``kind[e]``; a node
        without edges takes ``empty`` (default 0) in place of the weighted mean."""
        mean, has_edges = self.neighbour_mean(x_src, src, dst, kind, weight, num_dst)
        if empty is not None:
            mean = torch.where(has_edges[:, None], mean, empty)
        out = mean + self.shared.bias
        return out if x_dst is None else out + self.root(x_dst)

    def neighbour_mean(
        self, x_src: Tensor, src: Tensor, dst: Tensor, kind: Tensor, weight: Tensor, num_dst: int
    ) -> tuple[Tensor, Tensor]:
        """``([num_dst, d] Σ_e α_b w_e M_b x_src / Σ_e α_b w_e, [num_dst] has edges)``.

        Without autograd (inference over a whole graph) the messages are summed
        ``EDGE_CHUNK`` edges at a time: memory O(chunk · d) rather than O(E · d)."""
        projected = torch.einsum("nd,kdo->kno", x_src, self.type_matrices())  # [types, N, d]
        rows = projected.flatten(0, 1)
        at = kind * x_src.shape[0] + src  # each edge's row of ``rows``
        alpha = self.type_weights()[kind] * weight
        den = scatter(alpha, dst, 0, dim_size=num_dst, reduce="sum")
        if torch.is_grad_enabled() or len(at) <= self.EDGE_CHUNK:
            # index_select, not projected[kind, src]: its backward sums in a fixed order
            message = alpha[:, None] * rows.index_select(0, at)
            num = scatter(message, dst, 0, dim_size=num_dst, reduce="sum")
        else:
            num = rows.new_zeros(num_dst, rows.shape[1])
            for start in range(0, len(at), self.EDGE_CHUNK):
                part = slice(start, start + self.EDGE_CHUNK)
                num.index_add_(0, dst[part], alpha[part, None] * rows.index_select(0, at[part]))
        return num / den.clamp(min=self.WEIGHT_FLOOR)[:, None], den > self.WEIGHT_FLOOR


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
    actor and item. Propagation is one sparse matmul per layer over the whole graph.

    Â is a buffer (not saved: ``set_graph`` derives it), so ``.to(device)`` moves it with
    the embeddings."""

    adjacency: Tensor | None

    def __init__(self, config: LightGCNConfig, num_actors: int, num_items: int) -> None:
        super().__init__()
        self.config = config
        self.num_actors, self.num_items = num_actors, num_items
        self.embedding = nn.Embedding(num_actors + num_items, config.dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.register_buffer("adjacency", None, persistent=False)

    def set_graph(self, actor: Tensor, item: Tensor) -> None:
        """Build Â from (actor, item) edges (duplicates collapse to one) where the edges are,
        and place it beside the embeddings."""
        n = self.num_actors + self.num_items
        rows = torch.cat([actor, item + self.num_actors])
        cols = torch.cat([item + self.num_actors, actor])
        a = torch.sparse_coo_tensor(
            torch.stack([rows, cols]), torch.ones(len(rows), device=rows.device), (n, n)
        ).coalesce()
        i = a.indices()
        deg = torch.bincount(i[0], minlength=n).float().clamp(min=1)
        norm = deg.pow(-0.5)
        values = norm[i[0]] * norm[i[1]]
        adjacency = torch.sparse_coo_tensor(i, values, (n, n)).to_sparse_csr()
        self.adjacency = adjacency.to(self.embedding.weight.device)

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

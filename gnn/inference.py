"""Inference with a trained ``SageRec`` on graphs it never saw.

Training indexes items, categories and features by the training snapshot; serving meets a
live graph where items, categories and actors come and go. ``SageInference`` maps external
keys into the model's index spaces (unknown ones fall back to content alone, which is what
makes the model inductive) and runs:

* the forward pass over the whole graph once, for the item embedding table;
* per request, the output layer alone (``actors_from_items``) over the subject's one-hop
  edges and the item table's cached embeddings;
* the forward pass over a few items' live 2-hop neighbourhoods when they change
  (incremental refresh of the item table).

It also decomposes a score into per-edge contributions (for explanations): the actor's output
layer is linear in the embeddings of the items it touched, so the split is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from gnn.data import IntArray, Interactions
from gnn.inputs import Content, build_graph
from gnn.models import BehaviourConv, Graph, SageRec, interaction_weights
from gnn.version import ModelIndex, ModelVersion, load_version

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FeatureScaler:
    """Standardisation of raw numeric item features (as ``gnn.data.from_snapshot`` does)."""

    names: tuple[str, ...]
    mean: FloatArray
    std: FloatArray

    @classmethod
    def fit(cls, names: Sequence[str], raw: FloatArray) -> FeatureScaler:
        if raw.size == 0:
            zeros = np.zeros(len(names))
            return cls(tuple(names), zeros, np.ones(len(names)))
        std = raw.std(axis=0)
        return cls(tuple(names), raw.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, raw: FloatArray) -> FloatArray:
        return np.asarray((raw - self.mean) / self.std, np.float64)


class SageInference:
    """A trained SageRec with its key tables; every method is thread-safe (no state changes)."""

    def __init__(
        self, model: SageRec, index: ModelIndex, reference_ts: float, version: str = ""
    ) -> None:
        self.model = model
        self.version = version
        self.dim = model.config.dim
        self.depth = model.config.category_depth
        self.reference_ts = reference_ts  # edge ages are measured from here (never negative)
        self.half_life_days = model.config.half_life_days
        self.feature_names: tuple[str, ...] = index.features
        self._categories = {k: i for i, k in enumerate(index.categories)}
        self._rows = index.rows  # the version's item key → row, shared with the item table
        self._id_rows = index.id_rows  # row → the model's ID row, -1 if trained without
        self._num_types = len(model.types)
        self._output = _OutputLayer.of(model)

    @classmethod
    def of(cls, version: ModelVersion, reference_ts: float | None = None) -> SageInference:
        """Inference with a loaded version, edge ages counted back from ``reference_ts``
        (default: the version's own); ``ValueError`` for a model that is not SageRec."""
        if not isinstance(version.model, SageRec):
            raise ValueError(
                f"{version.name}: serving needs the inductive sage model, not "
                f"{type(version.model).__name__}"
            )
        ts = version.reference_ts if reference_ts is None else reference_ts
        return cls(version.model, version.index, ts, version.name)

    @classmethod
    def from_dir(cls, directory: Path, reference_ts: float) -> SageInference:
        """Load ``models/<version>/`` (``gnn.version.load_version``); raises ``ValueError``
        for a damaged version or a model that is not SageRec."""
        return cls.of(load_version(directory), reference_ts)

    # ------------------------------------------------------------------ content
    def content(
        self,
        item_keys: Sequence[str],
        leaf_categories: Sequence[str | None],
        features: FloatArray,
    ) -> Content:
        """Model inputs for items: leaf category keys ("a/b/c") and standardised features
        ``[I, F]`` already in the model's feature order."""
        anc = np.full((len(item_keys), self.depth), -1, np.int64)
        for row, leaf in enumerate(leaf_categories):
            if not leaf:
                continue
            parts = leaf.split("/")
            for level in range(min(self.depth, len(parts))):
                anc[row, level] = self._categories.get("/".join(parts[: len(parts) - level]), -1)
        rows = np.array([self._rows.get(k, -1) for k in item_keys], np.int64)
        ids = np.full(len(item_keys), -1, np.int64)
        ids[rows >= 0] = self._id_rows[rows[rows >= 0]]
        return Content(anc, np.asarray(features, np.float32).reshape(len(item_keys), -1), ids)

    def align_features(self, names: Sequence[str], values: FloatArray) -> FloatArray:
        """Columns of ``values`` (named ``names``) in the model's feature order (0 if absent)."""
        out = np.zeros((values.shape[0], len(self.feature_names)))
        where = {n: i for i, n in enumerate(names)}
        for col, name in enumerate(self.feature_names):
            if name in where:
                out[:, col] = values[:, where[name]]
        return out

    # ------------------------------------------------------------------ forward
    @torch.no_grad()
    def forward(
        self, num_actors: int, edges: Interactions, content: Content
    ) -> tuple[Float32Array, Float32Array]:
        """``(actors [A, d], items [I, d])`` over the given graph."""
        h, z = self.model(self._graph(num_actors, edges, content))
        return h.numpy(), z.numpy()

    def actors_from_items(
        self, num_actors: int, edges: Interactions, item_emb: Float32Array
    ) -> Float32Array:
        """``[A, d]`` actor embeddings from the final item embeddings ``z`` of the items they
        touched: the model's output layer alone. With ``z`` from the item table (kept fresh
        from live neighbourhoods) this equals the full forward pass over the live 3-hop
        neighbourhood, at the cost of one layer over the actors' own edges.

        Runs in numpy on the layer's weights (``h_a = Σ_e α_b w_e M_b z_j / Σ_e α_b w_e + c``,
        see ``gnn.models.BehaviourConv``): on the few edges of one request, torch's dispatch
        costs more than the arithmetic."""
        layer = self._output
        types = len(layer.scale)
        kind = self._kinds(edges)
        alpha = layer.scale[kind] * self._weights_np(edges)
        sums = np.zeros((num_actors * types, self.dim), np.float32)
        np.add.at(sums, edges.actor * types + kind, alpha[:, None] * item_emb[edges.item])
        total = np.bincount(edges.actor, weights=alpha, minlength=num_actors)
        h = sums.reshape(num_actors, types * self.dim) @ layer.weight
        h = h / np.maximum(total, BehaviourConv.WEIGHT_FLOOR)[:, None] + layer.bias
        return np.asarray(h, np.float32)

    @torch.no_grad()
    def actor_contributions(
        self, actor: int, edges: Interactions, item_emb: Float32Array, target: Float32Array
    ) -> tuple[FloatArray, float]:
        """Split ``score(actor, target)`` over the actor's edges: ``(per_edge [E], bias)``.

        The output layer is ``h_a = Σ_e α_b w_e M_b z_j / Σ_e α_b w_e + c``, so edge
        ``(a, j, b)`` contributes ``α_b w_e ⟨M_b z_j, target⟩ / Σ_e α_b w_e`` and the rest is
        the bias ``⟨c, target⟩``; they add up to the score. Edges of other actors get 0.
        """
        layer, d = self._output, self.dim
        kind = self._kinds(edges)
        projected = (layer.weight @ target.astype(np.float32)).reshape(-1, d)  # [types, d]: M_b t
        out = np.zeros(len(edges))
        rows = np.flatnonzero(edges.actor == actor)
        if len(rows):
            alpha = layer.scale[kind[rows]] * self._weights_np(edges.take(rows))
            dots = np.einsum("ed,ed->e", item_emb[edges.item[rows]], projected[kind[rows]])
            out[rows] = alpha * dots / max(float(alpha.sum()), BehaviourConv.WEIGHT_FLOOR)
        return out, float(layer.bias @ target)

    def _weights(self, edges: Interactions) -> torch.Tensor:
        return interaction_weights(edges, self.reference_ts, self.half_life_days)

    def _kinds(self, edges: Interactions) -> IntArray:
        """The output layer's type index of each edge (all 0 when edges are merged)."""
        return edges.behaviour if self._num_types > 1 else np.zeros(len(edges), np.int64)

    def _weights_np(self, edges: Interactions) -> Float32Array:
        """``_weights`` in numpy (no torch dispatch on the request path); the tests hold the
        two to the same values through ``actors_from_items`` == ``forward``."""
        age = np.maximum(self.reference_ts - edges.last_ts, 0.0) / 86_400.0
        weights = np.log1p(edges.count) * np.power(0.5, age / self.half_life_days)
        return weights.astype(np.float32)

    def _graph(self, num_actors: int, edges: Interactions, content: Content) -> Graph:
        return build_graph(
            num_actors,
            (edges.actor, edges.item, edges.behaviour),
            self._weights(edges),
            content,
            self._num_types > 1,
        )


@dataclass(frozen=True)
class _OutputLayer:
    """The actor output layer (``BehaviourConv``) in numpy: ``weight`` ``[types · d, d]``
    stacks the projections M_b (rows: input, columns: output), ``scale`` ``[types]`` holds
    α_b and ``bias`` ``[d]`` is c (an actor has no root input)."""

    weight: Float32Array
    scale: Float32Array
    bias: Float32Array

    @classmethod
    @torch.no_grad()
    def of(cls, model: SageRec) -> _OutputLayer:
        conv = model.to_actor_out
        return cls(
            conv.type_matrices().reshape(-1, model.config.dim).numpy().copy(),
            conv.type_weights().numpy().copy(),
            conv.shared.bias.numpy().copy(),
        )

"""Warm start: a new model begins from a previous version's weights, matched by key.

Key-indexed tables (SageRec's category and item ID embeddings, its feature projection's
columns; LightGCN's actor and item rows) copy the rows of keys both index spaces share; new
items, categories, features and actors keep their fresh initialisation. Every other parameter
is copied when its shape matches. SageRec's category stand-ins are not copied: training
recomputes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch

from gnn.data import GraphData, IntArray
from gnn.models import LightGCN, SageRec
from gnn.train import GnnRecommender, TrainConfig
from gnn.version import ModelIndex, ModelVersion

log = logging.getLogger(__name__)
Pairs = tuple[IntArray, IntArray]  # (rows of the new tensor, rows of the old one)


def data_index(data: GraphData, known_items: np.ndarray | None = None) -> ModelIndex:
    """The index spaces of a model built for ``data`` (ID rows are item rows)."""
    rows = np.arange(data.num_items)
    id_rows = rows if known_items is None else np.where(known_items, rows, -1)
    return ModelIndex(
        data.item_keys, id_rows, data.category_keys, data.feature_names, data.actor_keys
    )


def matching(new: Sequence[str], old: Sequence[str]) -> Pairs:
    """Rows of the keys ``new`` and ``old`` share, aligned: ``new[a[k]] == old[b[k]]``."""
    where = {k: i for i, k in enumerate(old)}
    pairs = [(i, where[k]) for i, k in enumerate(new) if k in where]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = zip(*pairs, strict=True)
    return np.array(a, np.int64), np.array(b, np.int64)


@torch.no_grad()
def warm_start(model: torch.nn.Module, index: ModelIndex, previous: ModelVersion) -> dict[str, int]:
    """Copy ``previous``'s weights into ``model`` (built for ``index``) by key; returns the
    number of rows (or whole tensors: 1) copied per parameter."""
    if type(model) is not type(previous.model):
        raise ValueError(
            f"cannot warm-start {type(model).__name__} from {previous.name}, a "
            f"{type(previous.model).__name__}"
        )
    keyed = _keyed(model, index, previous.index)
    old_state = previous.model.state_dict()
    copied: dict[str, int] = {}
    for name, target in model.state_dict().items():
        if isinstance(model, SageRec) and name in SageRec.STAND_INS:
            continue
        source = old_state.get(name)
        if source is None:
            continue
        if name in keyed:
            dim, (new_rows, old_rows) = keyed[name]
            if target.shape[1 - dim] != source.shape[1 - dim]:
                continue
            target.index_copy_(
                dim,
                torch.as_tensor(new_rows, device=target.device),
                source.index_select(dim, torch.as_tensor(old_rows)).to(target.device),
            )
            copied[name] = len(new_rows)
        elif target.shape == source.shape:
            target.copy_(source)
            copied[name] = 1
    log.info("warm start from %s: %s", previous.name, copied)
    return copied


def _keyed(
    model: torch.nn.Module, new: ModelIndex, old: ModelIndex
) -> dict[str, tuple[int, Pairs]]:
    """Key-indexed parameters: name → (the dimension keys index, matched rows)."""
    if isinstance(model, LightGCN):
        actors = matching(new.actors, old.actors)
        items = matching(new.items, old.items)
        offsets = (len(new.actors), len(old.actors))
        rows = (
            np.concatenate([actors[0], items[0] + offsets[0]]),
            np.concatenate([actors[1], items[1] + offsets[1]]),
        )
        return {"embedding.weight": (0, rows)}
    new_ids, old_ids = matching(new.items, old.items)
    trained = (old.id_rows[old_ids] >= 0) if len(old_ids) else np.zeros(0, bool)
    return {
        "categories.weight": (0, matching(new.categories, old.categories)),
        "ids.weight": (0, (new.id_rows[new_ids][trained], old.id_rows[old_ids][trained])),
        "features.weight": (1, matching(new.features, old.features)),
    }


class WarmRecommender(GnnRecommender):
    """A ``GnnRecommender`` whose model starts from ``previous``'s weights (``warm_start``)."""

    def __init__(
        self,
        config: TrainConfig,
        previous: ModelVersion,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        super().__init__(config, on_epoch)
        self.previous = previous
        self.copied: dict[str, int] = {}

    def _build(self, data: GraphData) -> torch.nn.Module:
        model = super()._build(data)
        self.copied = warm_start(model, data_index(data), self.previous)
        return model

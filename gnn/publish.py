"""The publish gate's measure: a saved version's recall on held-out pairs of today's graph.

A candidate and the current version are scored on the same held-out pairs, through the same
inference path that serving uses, so that the gate compares like with like. Each version's
own best validation score comes from a different graph and a different validation set, and
is the best of several evaluations, so it is neither comparable nor unbiased.
"""

from __future__ import annotations

import logging

import numpy as np

from gnn.data import GraphData, IntArray
from gnn.evaluate import evaluate
from gnn.inference import Float32Array, SageInference
from gnn.models import SageRec
from gnn.splits import Split
from gnn.version import ModelVersion

log = logging.getLogger(__name__)


class _VersionScorer:
    """A saved SageRec version embedding every actor and item of ``data`` from ``split.train``."""

    def __init__(self, inference: SageInference, data: GraphData, split: Split) -> None:
        leaves = [data.category_keys[c] if c >= 0 else None for c in data.item_leaf]
        features = inference.align_features(data.feature_names, data.item_features)
        content = inference.content(data.item_keys, leaves, features)
        self._actors, self._items = inference.forward(data.num_actors, split.train, content)

    def score(self, actors: IntArray) -> Float32Array:
        return np.asarray(self._actors[actors] @ self._items.T, np.float32)


def held_out_recall(inference: SageInference, data: GraphData, split: Split, k: int = 20) -> float:
    """Recall@k of a saved version on ``split``'s held-out pairs, its inputs ``split.train``."""
    return evaluate(_VersionScorer(inference, data, split), data, split, k)[f"recall@{k}"]


def version_recall(version: ModelVersion, data: GraphData, split: Split) -> float | None:
    """``held_out_recall`` of ``version`` on today's graph (None for a model that cannot
    embed today's graph, such as LightGCN)."""
    if not isinstance(version.model, SageRec):
        log.info("%s is %s: the gate uses its stored score", version.name, version.config.model)
        return None
    return held_out_recall(SageInference.of(version, data.newest_ts), data, split)

"""Full-ranking evaluation: every model scores all candidate items for every test actor,
training items are masked, and the metrics in ``gnn.metrics`` are taken at K."""

from __future__ import annotations

import numpy as np

from gnn.baselines import Scorer
from gnn.data import GraphData
from gnn.metrics import METRICS
from gnn.splits import Split


def evaluate(
    model: Scorer, data: GraphData, split: Split, k: int = 20, chunk: int = 1_024
) -> dict[str, float]:
    """Recall, NDCG, MRR and HitRate at ``k`` over actors with held-out items."""
    actors = np.unique(split.test_actor)
    relevant = _relevant(split, actors)
    train = data.matrix(split.train).tocsr()
    hits_all = []
    for start in range(0, len(actors), chunk):
        batch = actors[start : start + chunk]
        scores = model.score(batch).astype(np.float64)
        scores[:, ~split.candidates] = -np.inf
        seen = train[batch]
        scores[seen.nonzero()] = -np.inf  # never recommend what was trained on
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        hits_all.append(
            np.array(
                [[item in relevant[a] for item in row] for a, row in zip(batch, top, strict=True)],
                np.float64,
            )
        )
    hits = np.concatenate(hits_all)
    n_rel = np.array([len(relevant[a]) for a in actors], np.int64)
    return {f"{name}@{k}": fn(hits, n_rel) for name, fn in METRICS.items()}


def _relevant(split: Split, actors: np.ndarray) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {int(a): set() for a in actors}
    for a, i in zip(split.test_actor.tolist(), split.test_item.tolist(), strict=True):
        out[a].add(i)
    return out

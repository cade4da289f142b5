"""Top-K ranking metrics, one function each; every one averages over test actors.

``hits`` is ``[n_actors, K]`` (1 where the item at that rank is relevant) and ``n_relevant``
is ``[n_actors]``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Hits = npt.NDArray[np.float64]


def recall(hits: Hits, n_relevant: npt.NDArray[np.int64]) -> float:
    """Recall@K = |relevant ∩ top-K| / |relevant|."""
    return float(np.mean(hits.sum(axis=1) / n_relevant))


def ndcg(hits: Hits, n_relevant: npt.NDArray[np.int64]) -> float:
    """NDCG@K = DCG / IDCG, DCG = Σ_r hit_r / log2(r + 1), IDCG over min(|relevant|, K) hits."""
    k = hits.shape[1]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discount
    ideal = np.cumsum(discount)[np.minimum(n_relevant, k) - 1]
    return float(np.mean(dcg / ideal))


def mrr(hits: Hits, n_relevant: npt.NDArray[np.int64]) -> float:
    """MRR@K = 1 / rank of the first relevant item (0 when none is in the top K)."""
    first = np.argmax(hits > 0, axis=1)
    found = hits.max(axis=1) > 0
    return float(np.mean(np.where(found, 1.0 / (first + 1), 0.0)))


def hit_rate(hits: Hits, n_relevant: npt.NDArray[np.int64]) -> float:
    """HitRate@K = share of actors with at least one relevant item in the top K."""
    return float(np.mean(hits.max(axis=1) > 0))


METRICS = {"recall": recall, "ndcg": ndcg, "mrr": mrr, "hit": hit_rate}

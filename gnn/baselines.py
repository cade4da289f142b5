"""Non-neural baselines behind the one scoring interface every model answers.

``fit(data, train, seed)`` learns from the training edges; ``score(actors)`` returns
``[len(actors), num_items]`` scores for full ranking (higher is better).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from gnn.data import GraphData, IntArray, Interactions

ScoreMatrix = npt.NDArray[np.float32]  # [actors, items], higher is better


class Scorer(Protocol):
    """ScoreMatrix every item for each of ``actors``: what evaluation needs."""

    def score(self, actors: IntArray) -> ScoreMatrix: ...


class FitScorer(Scorer, Protocol):
    """A model evaluation can compare: fitted on a split's training edges, then scored."""

    name: str

    def fit(self, data: GraphData, train: Interactions, seed: int) -> None: ...


class Pop:
    """Most popular items: the number of distinct actors who touched each item."""

    name = "pop"

    def fit(self, data: GraphData, train: Interactions, seed: int) -> None:
        self._pop = np.asarray(data.matrix(train).sum(axis=0), np.float32).ravel()

    def score(self, actors: IntArray) -> ScoreMatrix:
        return np.broadcast_to(self._pop, (len(actors), len(self._pop))).copy()


class GenrePop:
    """Popularity of an item's leaf category in training: what a cold item can fall back on."""

    name = "genre-pop"

    def fit(self, data: GraphData, train: Interactions, seed: int) -> None:
        pop = np.asarray(data.matrix(train).sum(axis=0), np.float64).ravel()
        leaf = data.item_leaf
        per_leaf = np.bincount(
            leaf[leaf >= 0], weights=pop[leaf >= 0], minlength=data.num_categories
        )
        # an item without a category (-1) scores by its own popularity alone (the tie-break)
        self._score = np.append(per_leaf, 0.0)[leaf].astype(np.float32)
        self._score += 1e-6 * pop.astype(np.float32)  # break ties inside a category

    def score(self, actors: IntArray) -> ScoreMatrix:
        return np.broadcast_to(self._score, (len(actors), len(self._score))).copy()


class ItemKNN:
    """Item-based k-nearest neighbours (Sarwar et al., 2001): cosine item–item similarity on
    the binary actor × item matrix, ``k`` neighbours kept per item; score = X · S."""

    name = "itemknn"

    def __init__(self, k: int = 100, shrink: float = 10.0) -> None:
        self.k, self.shrink = k, shrink

    def fit(self, data: GraphData, train: Interactions, seed: int) -> None:
        x = data.matrix(train)
        co = (x.T @ x).toarray().astype(np.float32)
        norms = np.sqrt(np.diag(co))
        sim = co / (np.outer(norms, norms) + self.shrink + 1e-9)
        np.fill_diagonal(sim, 0.0)
        if self.k < sim.shape[0]:
            cut = np.argpartition(-sim, self.k, axis=0)[self.k :]
            np.put_along_axis(sim, cut, 0.0, axis=0)
        self._x, self._sim = x, sim

    def score(self, actors: IntArray) -> ScoreMatrix:
        return np.asarray(self._x[actors] @ self._sim, np.float32)


class EASE:
    """Embarrassingly Shallow Autoencoder (Steck, 2019): B = I − P·diag(1/diag(P)) with
    P = (XᵀX + λI)⁻¹ and diag(B) = 0; score = X · B."""

    name = "ease"

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = l2

    def fit(self, data: GraphData, train: Interactions, seed: int) -> None:
        x = data.matrix(train)
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        np.fill_diagonal(b, 0.0)
        self._x, self._b = x, b.astype(np.float32)

    def score(self, actors: IntArray) -> ScoreMatrix:
        return np.asarray(self._x[actors] @ self._b, np.float32)

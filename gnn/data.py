"""Training data: actor × item interactions typed by behaviour, with item content.

Built from a CsrSnapshot (``from_snapshot``), so the trainer learns from exactly what the
graph holds. Actors are users and sessions alike (both touch items); items carry their leaf
category, the category's ancestors and numeric features, which is what makes the default
model inductive. Any of these may be missing (users' files with only user, item and time):
an item without a category has ancestors -1; SAGE then reads its ID
embedding and neighbours, and a cold item without content stands in as the average known
item (``SageRec.remember_categories``); GenrePop ranks such items by their own popularity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from graphstore import IN_CATEGORY, SUBCATEGORY_OF, Behaviour, CsrSnapshot, NodeKind

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BEHAVIOURS: tuple[Behaviour, ...] = tuple(Behaviour)


@dataclass(frozen=True)
class Interactions:
    """Deduplicated ``(actor, item, behaviour)`` edges with their aggregates.

    ``actor``, ``item``, ``behaviour`` (0-based index into ``BEHAVIOURS``), ``count`` and
    ``last_ts`` are aligned arrays of length ``E``.
    """

    actor: IntArray
    item: IntArray
    behaviour: IntArray
    count: IntArray
    last_ts: FloatArray

    def __len__(self) -> int:
        return len(self.actor)

    def take(self, mask: npt.NDArray[np.bool_] | IntArray) -> Interactions:
        return Interactions(
            self.actor[mask],
            self.item[mask],
            self.behaviour[mask],
            self.count[mask],
            self.last_ts[mask],
        )


@dataclass(frozen=True)
class GraphData:
    """Everything a model needs: interactions plus item content. Shapes in field comments."""

    actor_keys: tuple[str, ...]  # [A]
    item_keys: tuple[str, ...]  # [I]
    edges: Interactions  # [E]
    item_leaf: IntArray  # [I] leaf category index, -1 when unknown
    category_parent: IntArray  # [C] parent category index, -1 for roots
    category_keys: tuple[str, ...]  # [C]
    item_features: FloatArray  # [I, F] standardised numeric features
    feature_names: tuple[str, ...]  # [F]

    @property
    def num_actors(self) -> int:
        return len(self.actor_keys)

    @property
    def num_items(self) -> int:
        return len(self.item_keys)

    @property
    def num_categories(self) -> int:
        return len(self.category_keys)

    @property
    def newest_ts(self) -> float:
        """Timestamp of the newest edge (0 without edges): edge ages count back from here."""
        return float(self.edges.last_ts.max()) if len(self.edges) else 0.0

    def with_edges(self, edges: Interactions) -> GraphData:
        return replace(self, edges=edges)

    def matrix(self, edges: Interactions | None = None) -> sp.csr_matrix:
        """Binary actor × item matrix ``[A, I]`` of (any-behaviour) interactions."""
        e = self.edges if edges is None else edges
        m = sp.csr_matrix(
            (np.ones(len(e)), (e.actor, e.item)), shape=(self.num_actors, self.num_items)
        )
        m.data[:] = 1.0
        return m

    def category_ancestors(self, depth: int = 4) -> IntArray:
        """``[I, depth]`` leaf, parent, grandparent … category of every item (-1 padded)."""
        out = np.full((self.num_items, depth), -1, np.int64)
        # -1 (unknown or above a root) indexes the appended -1: no categories at all works too
        parent = np.append(self.category_parent, -1)
        current = self.item_leaf.copy()
        for level in range(depth):
            out[:, level] = current
            current = parent[current]
        return out


class NoInteractions(ValueError):
    """A graph without interactions: there is nothing to learn from."""


def from_snapshot(snapshot: CsrSnapshot) -> GraphData:
    """Interactions of users and sessions with items, and item content, from a snapshot."""
    users = snapshot.num_nodes(NodeKind.USER)
    parts = []
    for kind, offset in ((NodeKind.USER, 0), (NodeKind.SESSION, users)):
        for b, behaviour in enumerate(BEHAVIOURS):
            rel = snapshot.relation(kind, behaviour.relationship, NodeKind.ITEM)
            n = rel.num_edges
            parts.append((rel.rows() + offset, rel.indices, np.full(n, b), rel.count, rel.last_ts))
    actor, item, beh, count, last = (np.concatenate(col) for col in zip(*parts, strict=True))
    if not actor.size:
        raise NoInteractions(
            "the graph holds no interactions: ingest events first (graphrec ingest)"
        )
    in_cat = snapshot.relation(NodeKind.ITEM, IN_CATEGORY, NodeKind.CATEGORY)
    leaf = np.full(snapshot.num_nodes(NodeKind.ITEM), -1, np.int64)
    leaf[in_cat.rows()] = in_cat.indices
    sub = snapshot.relation(NodeKind.CATEGORY, SUBCATEGORY_OF, NodeKind.CATEGORY)
    parent = np.full(snapshot.num_nodes(NodeKind.CATEGORY), -1, np.int64)
    parent[sub.rows()] = sub.indices
    features = snapshot.item_features.astype(np.float64)
    if features.size:
        std = features.std(axis=0)
        features = (features - features.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return GraphData(
        actor_keys=tuple(snapshot.keys[NodeKind.USER]) + tuple(snapshot.keys[NodeKind.SESSION]),
        item_keys=tuple(snapshot.keys[NodeKind.ITEM]),
        edges=Interactions(
            actor.astype(np.int64),
            item.astype(np.int64),
            beh.astype(np.int64),
            count.astype(np.int64),
            last.astype(np.float64),
        ),
        item_leaf=leaf,
        category_parent=parent,
        category_keys=tuple(snapshot.keys[NodeKind.CATEGORY]),
        item_features=features.reshape(snapshot.num_nodes(NodeKind.ITEM), -1),
        feature_names=snapshot.feature_names,
    )

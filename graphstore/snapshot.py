"""Array views of the graph: a k-hop neighbourhood and a whole-graph CSR snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from graphstore.types import NodeKind, NodeRef

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Neighbourhood:
    """The typed k-hop neighbourhood of some seed nodes.

    ``nodes[0:len(seeds)]`` are the seeds (those that exist in the graph come back in
    ``found``). Edge arrays all have length ``E``; ``src``/``dst`` index into ``nodes`` and
    keep the stored direction (actor → item, item → category, child → parent category).
    ``hop[e]`` is the hop (1-based) at which edge ``e`` was reached.
    """

    seeds: tuple[NodeRef, ...]
    found: tuple[bool, ...]
    nodes: tuple[NodeRef, ...]
    src: IntArray
    dst: IntArray
    rel: tuple[str, ...]
    count: IntArray
    first_ts: FloatArray
    last_ts: FloatArray
    hop: IntArray

    @property
    def num_edges(self) -> int:
        return len(self.rel)

    def edge_keys_list(self) -> list[tuple[NodeRef, str, NodeRef]]:
        """Edges as ``(src, rel, dst)`` triples, aligned with the edge arrays."""
        return [
            (self.nodes[s], r, self.nodes[d])
            for s, r, d in zip(self.src.tolist(), self.rel, self.dst.tolist(), strict=True)
        ]

    def edge_keys(self) -> set[tuple[NodeRef, str, NodeRef]]:
        """Edges as a set of ``(src, rel, dst)`` triples, for comparisons."""
        return set(self.edge_keys_list())


@dataclass(frozen=True)
class CsrRelation:
    """One relationship type between two node kinds, as CSR over the source kind.

    Neighbours of source ``i`` are ``indices[indptr[i]:indptr[i + 1]]`` (sorted ascending),
    with the matching edge aggregates at the same positions.
    """

    src_kind: NodeKind
    rel: str
    dst_kind: NodeKind
    indptr: IntArray
    indices: IntArray
    count: IntArray
    first_ts: FloatArray
    last_ts: FloatArray

    @property
    def num_edges(self) -> int:
        return int(self.indices.shape[0])

    def rows(self) -> IntArray:
        """Source index of every edge, aligned with ``indices`` (COO row)."""
        return np.repeat(np.arange(len(self.indptr) - 1, dtype=np.int64), np.diff(self.indptr))


@dataclass(frozen=True)
class CsrSnapshot:
    """The whole graph (optionally cut off in time) as arrays, for training.

    ``keys[kind][i]`` is the external id of node ``i`` of that kind; every kind's ids are
    sorted, so two snapshots of the same graph are equal array for array. ``relations`` is
    keyed by ``(src_kind, rel, dst_kind)``. ``item_features`` is ``[num_items, F]`` with
    column names in ``feature_names`` (missing values are 0). ``watermarks`` records the
    ingest position the snapshot reflects.
    """

    keys: dict[NodeKind, tuple[str, ...]]
    relations: dict[tuple[NodeKind, str, NodeKind], CsrRelation]
    item_titles: tuple[str, ...] = ()
    item_removed: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    feature_names: tuple[str, ...] = ()
    item_features: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    watermarks: dict[str, int] = field(default_factory=dict)
    cutoff: float | None = None

    def num_nodes(self, kind: NodeKind) -> int:
        return len(self.keys.get(kind, ()))

    def index(self, kind: NodeKind) -> dict[str, int]:
        """External id → row index for one node kind."""
        return {k: i for i, k in enumerate(self.keys.get(kind, ()))}

    def relation(self, src_kind: NodeKind, rel: str, dst_kind: NodeKind) -> CsrRelation:
        """The relation, or an empty one of the right shape when the graph has none."""
        found = self.relations.get((src_kind, rel, dst_kind))
        if found is not None:
            return found
        empty_i = np.zeros(0, np.int64)
        return CsrRelation(
            src_kind,
            rel,
            dst_kind,
            np.zeros(self.num_nodes(src_kind) + 1, np.int64),
            empty_i,
            empty_i,
            np.zeros(0),
            np.zeros(0),
        )

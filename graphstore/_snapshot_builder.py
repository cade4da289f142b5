"""Turn rows read from any backend into a CsrSnapshot (shared by every backend)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from graphstore.snapshot import CsrRelation, CsrSnapshot
from graphstore.types import NodeKind

RelationKey = tuple[NodeKind, str, NodeKind]


class SnapshotBuilder:
    """Accumulates nodes, edges and item attributes, then builds sorted CSR arrays."""

    def __init__(self, cutoff: float | None = None) -> None:
        self._cutoff = cutoff
        self._keys: dict[NodeKind, set[str]] = defaultdict(set)
        self._edges: dict[RelationKey, list[list[object]]] = defaultdict(
            lambda: [[], [], [], [], []]
        )
        self._items: dict[str, tuple[str, Mapping[str, float], bool]] = {}
        self._watermarks: dict[str, int] = {}

    def add_nodes(self, kind: NodeKind, keys: Iterable[str]) -> None:
        self._keys[kind].update(keys)

    def add_edges(
        self,
        relation: RelationKey,
        src: Sequence[str],
        dst: Sequence[str],
        count: Sequence[int],
        first_ts: Sequence[float],
        last_ts: Sequence[float],
    ) -> None:
        """Add edges of one relation; endpoints are node keys of the relation's kinds."""
        columns = self._edges[relation]
        for column, values in zip(columns, (src, dst, count, first_ts, last_ts), strict=True):
            column.extend(values)
        self._keys[relation[0]].update(src)
        self._keys[relation[2]].update(dst)

    def add_item(self, key: str, title: str, features: Mapping[str, float], removed: bool) -> None:
        self._items[key] = (title, features, removed)
        self._keys[NodeKind.ITEM].add(key)

    def set_watermarks(self, watermarks: Mapping[tuple[str, int], int]) -> None:
        self._watermarks = {f"{t}:{p}": o for (t, p), o in sorted(watermarks.items())}

    def build(self) -> CsrSnapshot:
        keys = {kind: tuple(sorted(self._keys.get(kind, ()))) for kind in NodeKind}
        index = {kind: {k: i for i, k in enumerate(ks)} for kind, ks in keys.items()}
        relations = {
            rk: _relation(rk, cols, index[rk[0]], index[rk[2]], len(keys[rk[0]]))
            for rk, cols in sorted(self._edges.items())
        }
        items = keys[NodeKind.ITEM]
        names = tuple(sorted({n for _, feats, _ in self._items.values() for n in feats}))
        col = {n: j for j, n in enumerate(names)}
        features = np.zeros((len(items), len(names)))
        titles = []
        removed = np.zeros(len(items), bool)
        for i, key in enumerate(items):
            title, feats, gone = self._items.get(key, ("", {}, False))
            titles.append(title)
            removed[i] = gone
            for name, value in feats.items():
                features[i, col[name]] = value
        return CsrSnapshot(
            keys=keys,
            relations=relations,
            item_titles=tuple(titles),
            item_removed=removed,
            feature_names=names,
            item_features=features,
            watermarks=dict(self._watermarks),
            cutoff=self._cutoff,
        )


def _relation(
    rk: RelationKey,
    cols: list[list[object]],
    src_index: Mapping[str, int],
    dst_index: Mapping[str, int],
    num_src: int,
) -> CsrRelation:
    src = np.fromiter((src_index[k] for k in cols[0]), np.int64, len(cols[0]))  # type: ignore[index]
    dst = np.fromiter((dst_index[k] for k in cols[1]), np.int64, len(cols[1]))  # type: ignore[index]
    order = np.lexsort((dst, src))
    indptr = np.zeros(num_src + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=num_src), out=indptr[1:])
    return CsrRelation(
        src_kind=rk[0],
        rel=rk[1],
        dst_kind=rk[2],
        indptr=indptr,
        indices=dst[order],
        count=np.asarray(cols[2], np.int64)[order],
        first_ts=np.asarray(cols[3], np.float64)[order],
        last_ts=np.asarray(cols[4], np.float64)[order],
    )

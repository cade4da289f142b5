"""The item table: every catalogue item's model inputs, metadata and embedding, kept fresh.

Built once per model version from the version itself (the item table the trainer computed
over its snapshot, and its usearch index when the version has one; no graph is read), then
updated row by row: an item whose neighbourhood changed is re-embedded from its live 2-hop
neighbourhood, a new item is appended with its content. Rows are append-only and a row's
metadata is written before its embedding, so a row the index returns is always complete.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gnn.ann import EXACT_THRESHOLD, Index
from gnn.inference import FeatureScaler, SageInference
from gnn.inputs import Content
from gnn.version import ModelVersion
from graphstore import ItemRecord, category_keys
from serving.topk import ItemIndex

IntArray = npt.NDArray[np.int64]


class ItemTable:
    """Item keys ↔ rows, content, titles, popularity and the embedding index of one model."""

    def __init__(
        self,
        inference: SageInference,
        keys: Sequence[str],
        rows: dict[str, int],
        leaves: Sequence[str | None],
        titles: Sequence[str],
        content: Content,
        popularity: npt.NDArray[np.float64],
        removed: npt.NDArray[np.bool_],
        scaler: FeatureScaler,
        embeddings: npt.NDArray[np.float32],
        exact_threshold: int,
        ann: Index | None = None,
        copy: bool = True,
    ) -> None:
        self.inference = inference
        self.scaler = scaler
        self.keys: list[str] = list(keys)
        self.index = dict(rows)  # key → row of ``keys``: a copy, rows are appended here
        self.leaves: list[str | None] = list(leaves)
        self.titles: list[str] = list(titles)
        self.content = content
        self.popularity = popularity.astype(np.float64)
        self.removed = removed.astype(bool)
        self.embeddings = ItemIndex(embeddings, exact_threshold, ann, copy)
        self._write = threading.Lock()
        self._by_category: dict[str, IntArray] = {}

    @classmethod
    def of(
        cls,
        inference: SageInference,
        version: ModelVersion,
        exact_threshold: int = EXACT_THRESHOLD,
    ) -> ItemTable:
        """The item table ``version`` holds (every item of its training snapshot, embedded
        over all of the snapshot's edges) and its usearch index when it has one, ready to be
        kept fresh. The table takes over the version's embeddings array (read-only from then
        on) rather than copying it."""
        items = version.items
        scaler = FeatureScaler(version.index.features, items.feature_mean, items.feature_std)
        return cls(
            inference,
            version.index.items,
            version.index.rows,
            items.leaves,
            items.titles,
            items.content,
            items.popularity,
            items.removed,
            scaler,
            items.embeddings,
            exact_threshold,
            version.ann,
            copy=False,
        )

    @property
    def size(self) -> int:
        return self.embeddings.size

    # ------------------------------------------------------------------ reads
    def rows_of(self, keys: Sequence[str]) -> IntArray:
        """Row of each key, -1 when the table does not hold it."""
        return np.array([self.index.get(k, -1) for k in keys], np.int64)

    def category_path(self, row: int) -> tuple[str, ...]:
        leaf = self.leaves[row]
        return tuple(leaf.split("/")) if leaf else ()

    def in_category(self, category: str) -> IntArray:
        """Rows of items in ``category`` (a path key such as "face/serums") or below it."""
        found = self._by_category.get(category)
        if found is None:
            prefix = category + "/"
            found = np.array(
                [
                    r
                    for r, leaf in enumerate(self.leaves)
                    if leaf and (leaf == category or leaf.startswith(prefix))
                ],
                np.int64,
            )
            self._by_category[category] = found
        return found

    def removed_rows(self) -> IntArray:
        return np.flatnonzero(self.removed)

    def content_of(self, rows: IntArray) -> Content:
        """Model inputs of rows; a row of -1 (an item the table lacks) gets no content."""
        content = self.content  # one consistent reference while writers swap it
        known = content.take(np.maximum(rows, 0))
        missing = rows < 0
        if missing.any():
            known.ancestors[missing] = -1
            known.features[missing] = 0.0
            known.id_rows[missing] = -1
        return known

    # ------------------------------------------------------------------ writes
    def upsert_items(self, records: Sequence[ItemRecord]) -> IntArray:
        """Add new items or update known ones (category, title, features, removed flag); their
        embeddings are recomputed by the caller with ``set_embeddings``. Returns their rows."""
        with self._write:
            current = self.content
            content = Content(
                current.ancestors.copy(), current.features.copy(), current.id_rows.copy()
            )
            removed = self.removed.copy()
            appended: list[Content] = []
            rows = []
            for record in records:
                leaf = category_keys(record.category_path)[-1] if record.category_path else None
                item = self._content_of_record(record, leaf)
                row = self.index.get(record.item_id)
                if row is None:
                    row = len(self.keys)
                    self.keys.append(record.item_id)
                    self.leaves.append(leaf)
                    self.titles.append(record.title)
                    self.index[record.item_id] = row
                    appended.append(item)
                    removed = np.append(removed, record.removed)
                elif row < len(content.id_rows):
                    self.leaves[row], self.titles[row] = leaf, record.title
                    content.ancestors[row] = item.ancestors[0]
                    content.features[row] = item.features[0]
                    removed[row] = record.removed
                else:  # appended earlier in this same call
                    appended[row - len(content.id_rows)] = item
                    removed[row] = record.removed
                rows.append(row)
            self.content = Content.concat([content, *appended])
            self.popularity = np.append(self.popularity, np.zeros(len(appended)))
            self.removed = removed
            self._by_category = {}
            return np.array(rows, np.int64)

    def _content_of_record(self, record: ItemRecord, leaf: str | None) -> Content:
        names = [n for n, _ in record.numeric_features]
        values = np.array([[v for _, v in record.numeric_features]], np.float64)
        raw = self.inference.align_features(names, values.reshape(1, len(names)))
        return self.inference.content([record.item_id], [leaf], self.scaler.transform(raw))

    def set_embeddings(self, rows: IntArray, vectors: npt.NDArray[np.float32]) -> None:
        """Store fresh embeddings; rows past the end must have been added by ``upsert_items``."""
        with self._write:
            self.embeddings.upsert(rows, vectors)

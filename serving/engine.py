"""One model version ready to serve, and the embeddings a request reads from it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gnn.data import Interactions
from gnn.inference import SageInference
from gnn.version import load_version
from graphstore import TopicPartition
from serving.subgraph import LocalGraph
from serving.table import ItemTable
from serving.types import ScoredItem

log = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Engine:
    """One model version ready to serve: the model, its item table and the log positions
    that table reflects (changes after them are the change feed's to apply)."""

    version: str
    inference: SageInference
    table: ItemTable
    watermarks: Mapping[TopicPartition, int]

    @classmethod
    def load(cls, model_dir: Path, exact_threshold: int) -> Engine:
        """Load a version with the item table it holds; reads no graph."""
        version = load_version(model_dir)
        inference = SageInference.of(version)
        table = ItemTable.of(inference, version, exact_threshold)
        log.info("model %s: %d items loaded", version.name, table.size)
        return cls(version.name, inference, table, _positions(version.watermarks))

    def item_vectors(self, keys: Sequence[str]) -> Vectors:
        """``[n, d]`` final embeddings of items from the table; an item the table lacks yet
        (a catalogue change still on its way) is embedded from what the graph holds of it."""
        table = self.table
        rows = table.rows_of(keys)
        missing = (rows < 0) | (rows >= table.size)
        out = np.empty((len(keys), self.inference.dim), np.float32)
        out[~missing] = table.embeddings.vectors()[rows[~missing]]
        if missing.any():
            no_edges = Interactions(*(np.zeros(0, np.int64),) * 4, np.zeros(0))
            _, z = self.inference.forward(0, no_edges, table.content_of(rows[missing]))
            out[missing] = z
        return out

    def actor_vectors(self, graph: LocalGraph) -> Vectors:
        """``[subjects, d]``: the output layer over each subject's edges, reading the items'
        final embeddings from the table (no other layer runs per request)."""
        z = self.item_vectors(graph.items)
        h = self.inference.actors_from_items(len(graph.actors), graph.edges, z)
        return h[: graph.num_subjects]

    def scored(self, rows: npt.NDArray[np.int64], scores: npt.ArrayLike) -> list[ScoredItem]:
        """Table rows and their scores as result items."""
        table = self.table
        values = np.asarray(scores, np.float64).tolist()
        return [
            ScoredItem(table.keys[r], s, table.category_path(r), table.titles[r])
            for r, s in zip(rows.tolist(), values, strict=True)
        ]


def _positions(watermarks: Mapping[str, int]) -> dict[TopicPartition, int]:
    """``"topic:partition" → offset`` as ``(topic, partition) → offset``."""
    out: dict[TopicPartition, int] = {}
    for key, offset in watermarks.items():
        topic, _, partition = key.rpartition(":")
        out[(topic, int(partition))] = offset
    return out

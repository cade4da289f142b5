"""One model version ready to serve, and the embeddings a request reads from it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gnn.data import Interactions
from gnn.inference import SageInference
from graphstore import GraphStore
from serving.subgraph import LocalGraph
from serving.table import ItemTable
from serving.types import ScoredItem

log = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Engine:
    """One model version ready to serve: the model and its item table."""

    version: str
    inference: SageInference
    table: ItemTable

    @classmethod
    def load(cls, model_dir: Path, store: GraphStore, exact_threshold: int) -> Engine:
        """Load a version and embed every item of the store's current graph."""
        snapshot = store.snapshot()
        newest = [float(r.last_ts.max()) for r in snapshot.relations.values() if r.num_edges]
        inference = SageInference.from_dir(model_dir, max(newest, default=time.time()))
        table = ItemTable.build(inference, snapshot, exact_threshold)
        log.info("model %s: %d items embedded", model_dir.name, table.size)
        return cls(model_dir.name, inference, table)

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

"""The model's input graph: the one place that turns edges and item content into a ``Graph``.

Training on the full graph (``to_graph``), training on sampled neighbourhoods
(``gnn.minibatch``) and inference on live graphs (``gnn.inference``) all call
``build_graph``; they differ only in where the edges, weights and content come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from gnn.data import BEHAVIOURS, GraphData, IntArray, Interactions
from gnn.models import Graph, interaction_weights


@dataclass(frozen=True)
class Content:
    """What the model reads about items besides their neighbours, rows aligned with items.

    ``ancestors`` ``[I, depth]`` model category rows (-1: none or unknown to the model),
    ``features`` ``[I, F]`` standardised in the model's feature order, ``id_rows`` ``[I]``
    rows of the model's ID table (-1: the model has no ID for the item).
    """

    ancestors: IntArray
    features: npt.NDArray[np.float32]
    id_rows: IntArray

    def take(self, rows: IntArray) -> Content:
        return Content(self.ancestors[rows], self.features[rows], self.id_rows[rows])

    @staticmethod
    def concat(parts: Sequence[Content]) -> Content:
        return Content(
            np.concatenate([p.ancestors for p in parts]),
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.id_rows for p in parts]),
        )

    @classmethod
    def of(cls, data: GraphData, known_items: npt.NDArray[np.bool_] | None = None) -> Content:
        """The content of ``data``'s items in its own index spaces; only ``known_items``
        (default: all) keep their ID row, the others are embedded as brand-new items."""
        rows = np.arange(data.num_items)
        return cls(
            data.category_ancestors(),
            np.asarray(data.item_features, np.float32),
            rows if known_items is None else np.where(known_items, rows, -1),
        )


def build_graph(
    num_actors: int,
    edges: tuple[IntArray, IntArray, IntArray],
    weights: Tensor,
    content: Content,
    typed: bool,
    device: torch.device | None = None,
) -> Graph:
    """The ``Graph`` the models read.

    ``edges`` is ``(actor [E], item [E], behaviour [E])`` with actors in ``[0, num_actors)``,
    items rows of ``content`` (``[I]`` items) and behaviours indices into ``BEHAVIOURS``;
    ``weights`` is ``[E]`` (``gnn.models.edge_weight``). Typed graphs hold one ``[2, E_b]``
    edge tensor and one ``[E_b]`` weight tensor per behaviour, in ``BEHAVIOURS`` order;
    merged graphs one of each. Edges keep their given order within a group. Every tensor
    is placed on ``device`` (default: CPU)."""
    actor, item, behaviour = edges
    groups = (
        [behaviour == b for b in range(len(BEHAVIOURS))] if typed else [np.ones(len(actor), bool)]
    )
    device = device or torch.device("cpu")
    return Graph(
        num_actors=num_actors,
        edges=[
            torch.as_tensor(np.stack([actor[m], item[m]]), dtype=torch.long).to(device)
            for m in groups
        ],
        weights=[weights[torch.as_tensor(m)].to(device) for m in groups],
        ancestors=torch.as_tensor(content.ancestors).to(device),
        features=torch.as_tensor(content.features, dtype=torch.float32).to(device),
        item_ids=torch.as_tensor(content.id_rows).to(device),
    )


def to_graph(
    data: GraphData,
    edges: Interactions,
    typed: bool,
    half_life_days: float,
    device: torch.device,
    known_items: npt.NDArray[np.bool_] | None = None,
) -> Graph:
    """``build_graph`` over ``edges`` (global ids of ``data``) with ``data``'s item content,
    edge ages counted back from ``data``'s newest edge.

    Only ``known_items`` (default: all) use their ID embedding; others are represented by
    content and neighbours alone, as a brand-new item would be."""
    return build_graph(
        data.num_actors,
        (edges.actor, edges.item, edges.behaviour),
        interaction_weights(edges, data.newest_ts, half_life_days),
        Content.of(data, known_items),
        typed,
        device,
    )

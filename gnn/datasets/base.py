"""The Dataset type, the exact edge ledger, and loading a dataset straight into a store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from graphstore import EdgeAggregate, GraphStore, Interaction, ItemRecord, NodeRef, edge_aggregates

Ledger = dict[tuple[NodeRef, str, str], EdgeAggregate]


@dataclass(frozen=True)
class Dataset:
    """A catalogue and a time-ordered list of interactions."""

    name: str
    items: list[ItemRecord]
    interactions: list[Interaction]

    def ledger(self) -> Ledger:
        return ledger_of(self.interactions)


def ledger_of(interactions: Iterable[Interaction]) -> Ledger:
    """Exact aggregate per ``(actor, relationship, item_id)``: what the graph must hold."""
    return edge_aggregates(interactions)


def load_into(store: GraphStore, dataset: Dataset, batch_size: int = 20_000) -> None:
    """Write a dataset directly into a store (no log, no watermark): for training and eval."""
    store.upsert_items(dataset.items)
    for start in range(0, len(dataset.interactions), batch_size):
        store.add_interactions(dataset.interactions[start : start + batch_size])

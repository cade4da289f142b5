"""Keeping the item table fresh: re-embed changed items from their live 2-hop
neighbourhoods, and add items the graph holds but the table has not seen yet."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphstore import (
    IN_CATEGORY,
    INTERACTION_RELATIONSHIPS,
    MAX_SEEDS,
    GraphStore,
    ItemRecord,
    NodeKind,
    NodeRef,
)
from serving.engine import Engine
from serving.subgraph import local_graph

REFRESH_EDGES = 50_000  # edges one re-embedding round trip (and forward pass) carries at most


def refresh_chunk(fanouts: tuple[int, int]) -> int:
    """Items re-embedded per round trip: as many as ``REFRESH_EDGES`` holds when each has a
    full 2-hop neighbourhood (``f1`` actors and ``f2`` items of each: ``f1 * (1 + f2)`` edges).
    The store keeps every node to its fan-out, a hub item with 20,000 edges included, so one
    round trip is bounded whatever the items' degrees."""
    first, second = fanouts
    return max(1, min(MAX_SEEDS, REFRESH_EDGES // (first * (1 + second))))


def re_embed(
    store: GraphStore,
    engine: Engine,
    item_ids: Sequence[str],
    records: Sequence[ItemRecord],
    fanouts: tuple[int, int],
) -> int:
    """Add or update the catalogue ``records``, then recompute the final embeddings of them
    and of ``item_ids`` from their live neighbourhoods (item → actors → items, capped by
    ``fanouts``), ``refresh_chunk(fanouts)`` items a round trip. Returns the items
    re-embedded."""
    table = engine.table
    if records:
        table.upsert_items(records)
    keys = sorted({*item_ids, *(r.item_id for r in records)} & set(table.index))
    step = refresh_chunk(fanouts)
    for start in range(0, len(keys), step):
        chunk = keys[start : start + step]
        seeds = [NodeRef(NodeKind.ITEM, k) for k in chunk]
        hood = store.neighbourhood(seeds, fanouts, INTERACTION_RELATIONSHIPS)
        graph = local_graph(hood)
        order = {k: i for i, k in enumerate(graph.items)}
        local = np.array([order.setdefault(k, len(order)) for k in chunk], np.int64)
        content = table.content_of(table.rows_of(list(order)))
        _, z = engine.inference.forward(len(graph.actors), graph.edges, content)
        table.set_embeddings(table.rows_of(chunk), z[local])
    return len(keys)


def items_from_graph(store: GraphStore, item_ids: Sequence[str]) -> list[ItemRecord]:
    """What the graph holds about items the table lacks (their category), for those of
    ``item_ids`` the graph has; one round trip per ``MAX_SEEDS`` ids."""
    records = []
    for start in range(0, len(item_ids), MAX_SEEDS):
        seeds = [NodeRef(NodeKind.ITEM, k) for k in item_ids[start : start + MAX_SEEDS]]
        hood = store.neighbourhood(seeds, [1], (IN_CATEGORY,))
        leaves: dict[int, str] = {}
        for src, dst in zip(hood.src.tolist(), hood.dst.tolist(), strict=True):
            if src < len(seeds) and hood.nodes[dst].kind is NodeKind.CATEGORY:
                leaves[src] = hood.nodes[dst].key
        for i, seed in enumerate(seeds):
            if hood.found[i]:
                leaf = leaves.get(i, "")
                records.append(ItemRecord(seed.key, tuple(leaf.split("/")) if leaf else ()))
    return records

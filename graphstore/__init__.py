"""The graph: the GraphStore protocol, its backends, and ``open_store(url)``.

Backends are chosen by URL scheme:

* ``sqlite:///abs/path`` or ``sqlite://rel/path`` — embedded, a durable SQLite file under that
  directory
* ``memory://`` — embedded, in process memory (gone when closed); it takes no path
* ``neo4j://host:port`` / ``bolt://host:port`` — a Neo4j 5 server
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from graphstore.base import (
    MAX_CLOCK_SKEW_S,
    MAX_FANOUT,
    MAX_HOPS,
    MAX_ID_LENGTH,
    MAX_SEEDS,
    Batch,
    GraphStore,
    GraphStoreError,
    InvalidId,
    InvalidInput,
    Positioned,
    category_keys,
    check_id,
)
from graphstore.snapshot import CsrRelation, CsrSnapshot, Neighbourhood
from graphstore.types import (
    ALL_RELATIONSHIPS,
    IN_CATEGORY,
    INTERACTION_RELATIONSHIPS,
    SUBCATEGORY_OF,
    ApplyResult,
    Behaviour,
    DedupWindow,
    EdgeAggregate,
    EdgeKey,
    Interaction,
    ItemRecord,
    NodeKind,
    NodeRef,
    Position,
    StoreStats,
    TopicPartition,
    edge_aggregates,
)

__all__ = [
    "ALL_RELATIONSHIPS",
    "INTERACTION_RELATIONSHIPS",
    "IN_CATEGORY",
    "MAX_CLOCK_SKEW_S",
    "MAX_FANOUT",
    "MAX_HOPS",
    "MAX_ID_LENGTH",
    "MAX_SEEDS",
    "SUBCATEGORY_OF",
    "ApplyResult",
    "Batch",
    "Behaviour",
    "CsrRelation",
    "CsrSnapshot",
    "DedupWindow",
    "EdgeAggregate",
    "EdgeKey",
    "GraphStore",
    "GraphStoreError",
    "Interaction",
    "InvalidId",
    "InvalidInput",
    "ItemRecord",
    "Neighbourhood",
    "NodeKind",
    "NodeRef",
    "Position",
    "Positioned",
    "StoreStats",
    "TopicPartition",
    "category_keys",
    "check_id",
    "edge_aggregates",
    "open_store",
]


def open_store(url: str) -> GraphStore:
    """Open the graph store a URL names; raises ``InvalidInput`` for unknown schemes."""
    parts = urlsplit(url)
    location = parts.netloc + parts.path
    if parts.scheme == "memory":
        if location:
            raise InvalidInput(
                f"{url!r}: memory:// is in process memory and takes no path; "
                f"for a durable store under {location!r} use sqlite://{location}"
            )
        from graphstore.embedded import EmbeddedGraphStore

        return EmbeddedGraphStore(None)
    if parts.scheme == "sqlite":
        if not location:
            raise InvalidInput(f"{url!r}: sqlite:// needs a directory, e.g. sqlite://data/graph")
        from graphstore.embedded import EmbeddedGraphStore

        return EmbeddedGraphStore(Path(location))
    if parts.scheme in ("neo4j", "bolt", "neo4j+s", "bolt+s"):
        from graphstore.neo4j import Neo4jGraphStore

        return Neo4jGraphStore.from_url(url)
    raise InvalidInput(
        f"unknown graph store URL {url!r}: use sqlite://PATH, memory:// or neo4j://HOST:PORT"
    )

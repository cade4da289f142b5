"""What the Neo4j backend does beyond the contract: a hop reads by fan-out, not degree;
reset deletes in transactions bounded by relationship count; older graphs are migrated."""

from __future__ import annotations

from typing import Any

import pytest

from graphstore import (
    IN_CATEGORY,
    INTERACTION_RELATIONSHIPS,
    Behaviour,
    GraphStore,
    Interaction,
    ItemRecord,
    NodeKind,
    NodeRef,
)
from graphstore import _cypher as cy
from graphstore.neo4j import Neo4jGraphStore, hop_params

pytestmark = pytest.mark.integration
T0 = 1_790_000_000.0


def views(item: str, users: int, prefix: str) -> list[Interaction]:
    """``users`` users viewing ``item``, one second apart, user ``{prefix}{n}`` at ``T0 + n``."""
    return [
        Interaction(
            f"{prefix}-{n}", NodeRef(NodeKind.USER, f"{prefix}{n}"), item, Behaviour.VIEW, T0 + n
        )
        for n in range(users)
    ]


def db_hits(plan: dict[str, Any]) -> int:
    return int(plan.get("dbHits", 0)) + sum(db_hits(c) for c in plan.get("children", []))


def profiled_hop(
    store: Neo4jGraphStore,
    item: str,
    fanout: int,
    rels: tuple[str, ...] = INTERACTION_RELATIONSHIPS,
) -> tuple[int, list[str]]:
    """The database hits of one hop from ``item``, and the nodes it reached, newest first."""
    params = hop_params([item], fanout, rels, None)
    with store._session() as session:
        result = session.run("PROFILE " + cy.HOP_EDGES[NodeKind.ITEM], params)
        (record,) = list(result)
        summary = result.consume()
    assert summary.profile is not None
    return db_hits(summary.profile), [edge[3] for edge in record["edges"]]


def test_a_hop_reads_by_fanout_not_by_degree(neo4j: GraphStore) -> None:
    assert isinstance(neo4j, Neo4jGraphStore)
    neo4j.add_interactions(views("hub", 3_000, "h") + views("small", 30, "s"))
    hub_hits, hub_users = profiled_hop(neo4j, "hub", 5)
    small_hits, small_users = profiled_hop(neo4j, "small", 5)
    assert hub_users == ["h2999", "h2998", "h2997", "h2996", "h2995"]
    assert small_users == ["s29", "s28", "s27", "s26", "s25"]
    # 100 times the degree, about the same work, a small share of the hub's edges: the hop
    # stops after the fan-out
    assert hub_hits <= 2 * small_hits, (hub_hits, small_hits)
    assert hub_hits < 3_000 // 10, hub_hits


def test_a_hop_over_other_types_reads_none_of_the_hubs_edges(neo4j: GraphStore) -> None:
    assert isinstance(neo4j, Neo4jGraphStore)
    neo4j.upsert_items([ItemRecord("hub", ("a", "b"), ts=T0)])
    neo4j.add_interactions(views("hub", 3_000, "h"))
    hits, reached = profiled_hop(neo4j, "hub", 5, (IN_CATEGORY,))
    assert reached == ["a/b"]
    assert hits < 100, hits  # the 3,000 views are not read to be dropped


def transaction_number(store: Neo4jGraphStore) -> int:
    """The number of the transaction this call starts: the server numbers them in order."""
    with store._session() as session:
        rows = session.run("SHOW TRANSACTIONS YIELD transactionId, currentQuery").data()
    own = [r["transactionId"] for r in rows if r["currentQuery"].startswith("SHOW TRANSACTIONS")]
    return max(int(t.rsplit("-", 1)[1]) for t in own)


def test_reset_deletes_in_transactions_bounded_by_relationship_count(
    neo4j: GraphStore,
) -> None:
    store = Neo4jGraphStore.from_url(neo4j.url, delete_batch=100)
    with store:
        store.add_interactions(views("hub", 1_000, "u"))  # one node with 1,000 relationships
        first = transaction_number(store)
        store.reset()
        last = transaction_number(store)
        stats = store.stats()
        assert (stats.nodes, stats.edges) == ({}, {})
    # at most 100 relationships a transaction, then at most 100 nodes (1,001)
    assert last - first >= 1_000 // 100 + 1_001 // 100, (first, last)


def test_a_graph_written_before_endpoint_keys_is_migrated_when_opened(
    neo4j: GraphStore,
) -> None:
    assert isinstance(neo4j, Neo4jGraphStore)
    neo4j.add_interactions(views("i1", 3, "u"))
    with neo4j._session() as session:  # as graphrec before schema version 2 left it
        session.run("MATCH ()-[e]->() REMOVE e.src_User, e.dst_Item").consume()
        session.run("MATCH (v:GraphSchema) DELETE v").consume()
    item = NodeRef(NodeKind.ITEM, "i1")
    assert neo4j.neighbourhood([item], [5]).edge_keys() == set()  # the keys are what is read
    with Neo4jGraphStore.from_url(neo4j.url) as reopened:
        hood = reopened.neighbourhood([item], [5])
    assert {s.key for s, _, _ in hood.edge_keys()} == {"u0", "u1", "u2"}

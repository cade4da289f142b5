"""Neo4j's notifications about our own statements do not reach the user's log."""

from __future__ import annotations

import logging

import pytest

from graphstore import (
    Batch,
    Behaviour,
    DedupWindow,
    Interaction,
    ItemRecord,
    NodeKind,
    NodeRef,
    Positioned,
)
from graphstore.neo4j import Neo4jGraphStore

pytestmark = pytest.mark.integration


def test_a_fresh_graph_logs_no_notifications(
    neo4j: Neo4jGraphStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="neo4j.notifications")
    store = Neo4jGraphStore.from_url(neo4j.url)  # constraints exist: "already exists" notes
    with store:
        store.watermarks()
        store.stats()
        store.snapshot()
        store.neighbourhood([NodeRef(NodeKind.USER, "u1")], [5, 5])
        user = NodeRef(NodeKind.USER, "u1")
        event = Interaction("e1", user, "i1", Behaviour.VIEW, 1.7e9)
        store.apply(Batch([Positioned(event)], dedup=DedupWindow()))
        store.upsert_items([ItemRecord("i1", ("a", "b"), ts=1.0)])
        # Property keys outlive the nodes that had them, so a reset graph still knows ours;
        # a key no statement ever wrote stands for them as on a brand-new database.
        with store._session() as session:
            session.run("MATCH (n:Item) WHERE n.never_written_key = 1 RETURN n").consume()
    notes = [r.getMessage() for r in caplog.records if r.name == "neo4j.notifications"]
    assert notes == []

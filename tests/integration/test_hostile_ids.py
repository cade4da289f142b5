"""Ids full of Cypher syntax go into Neo4j only as parameters: through the sink, item upserts
with category names, the neighbourhood fetch, the snapshot and Explain's Cypher and Browser
link, every id comes back exactly and nothing else in the graph changes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from neo4j import GraphDatabase

from graphrec.pipeline import ingest
from graphstore import (
    Behaviour,
    GraphStore,
    Interaction,
    ItemRecord,
    NodeKind,
    NodeRef,
    category_keys,
)
from serving.explain import browser_url, cypher_for
from serving.types import ExplanationPath
from streaming.log import EventLog
from streaming.produce import produce
from tests.integration.servers import Servers

pytestmark = pytest.mark.integration
T0 = 1_700_000_000.0

HOSTILE = [
    "quote'single",
    'quote"double',
    "back\\slash\\",
    "{brace}}",
    "`back`tick`",
    "slash//comment",
    "$param",
    "line\nbreak",
    "ünïcødé 日本 🙂",
    "'}) DETACH DELETE n //",
    "\\'; MATCH (n) DETACH DELETE n; //",
    "amp&hash#percent%20",
    "$p1n1",  # Explain's name for another path's parameter (last: its own is p12n*)
]
N = len(HOSTILE)
CATEGORY_PATH = ("root'{", "`mid$`", "leaf\\\n'})")  # a name may not hold '/'


def user(k: int) -> str:
    return f"u-{HOSTILE[k]}"


def item(k: int) -> str:
    return f"i-{HOSTILE[k]}"


@pytest.fixture
def loaded(neo4j: GraphStore, tmp_path: Path) -> GraphStore:
    """A sentinel edge written first, then every hostile id through the sink and directly."""
    sentinel = Interaction("s", NodeRef(NodeKind.USER, "sentinel"), "kept", Behaviour.PURCHASE, T0)
    neo4j.add_interactions([sentinel])
    items = [ItemRecord(item(k), CATEGORY_PATH, title=HOSTILE[k], ts=T0) for k in range(6)]
    events = [
        Interaction(f"e-{HOSTILE[k]}", NodeRef(NodeKind.USER, user(k)), item(k), Behaviour.VIEW, T0)
        for k in range(N)
    ]
    produce(EventLog(tmp_path / "log"), items, events, fmt="json")
    summary = ingest(f"log://{tmp_path / 'log'}", neo4j, "hostile", idle_exit_s=0.5)
    assert (summary.applied, summary.dead_lettered) == (len(items) + len(events), 0)
    later = [ItemRecord(item(k), (HOSTILE[k].replace("/", "|"),), ts=T0) for k in range(6, N)]
    neo4j.upsert_items(later)
    return neo4j


def test_every_id_round_trips_and_nothing_else_changes(loaded: GraphStore) -> None:
    snap = loaded.snapshot()
    assert set(snap.keys[NodeKind.USER]) == {user(k) for k in range(N)} | {"sentinel"}
    assert set(snap.keys[NodeKind.ITEM]) == {item(k) for k in range(N)} | {"kept"}
    categories = set(category_keys(CATEGORY_PATH)) | {
        HOSTILE[k].replace("/", "|") for k in range(6, N)
    }
    assert set(snap.keys[NodeKind.CATEGORY]) == categories
    titles = dict(zip(snap.keys[NodeKind.ITEM], snap.item_titles, strict=True))
    assert {titles[item(k)] for k in range(6)} == set(HOSTILE[:6])
    stats = loaded.stats()
    assert stats.nodes == {"User": N + 1, "Item": N + 1, "Category": len(categories)}
    assert stats.edges["VIEWED"] == N and stats.edges["PURCHASED"] == 1


def test_the_neighbourhood_of_each_hostile_seed(loaded: GraphStore) -> None:
    for k in range(N):
        hood = loaded.neighbourhood([NodeRef(NodeKind.USER, user(k))], [5, 5])
        assert hood.found == (True,)
        reached = {ref.key for ref in hood.nodes if ref.kind is NodeKind.ITEM}
        assert reached == {item(k)}


def explanation_paths() -> list[ExplanationPath]:
    return [
        ExplanationPath(
            (NodeRef(NodeKind.USER, user(k)), NodeRef(NodeKind.ITEM, item(k))),
            ("VIEWED",),
            (True,),
            1.0,
        )
        for k in range(N)
    ]


def run_cypher(servers: Servers, credentials: tuple[str, str], text: str, **params: str) -> list:  # type: ignore[type-arg]
    host = urlsplit(servers.neo4j)
    with GraphDatabase.driver(f"neo4j://{host.hostname}:{host.port}", auth=credentials) as d:
        records, _, _ = d.execute_query(text, params, routing_="r")
    return [[n["id"] for n in r["p"].nodes] for r in records]


def test_explain_cypher_draws_exactly_the_paths(
    loaded: GraphStore, servers: Servers, credentials: tuple[str, str]
) -> None:
    cypher, params = cypher_for(explanation_paths())
    drawn = run_cypher(servers, credentials, cypher, **params)
    assert sorted(drawn) == sorted([user(k), item(k)] for k in range(N))


def test_explain_browser_link_draws_exactly_the_paths(
    loaded: GraphStore, servers: Servers, credentials: tuple[str, str]
) -> None:
    cypher, params = cypher_for(explanation_paths())
    link = browser_url("http://127.0.0.1:7474/browser/", "neo4j://127.0.0.1:7687", cypher, params)
    inline = parse_qs(urlsplit(link).query)["arg"][0]
    drawn = run_cypher(servers, credentials, inline)
    assert sorted(drawn) == sorted([user(k), item(k)] for k in range(N))

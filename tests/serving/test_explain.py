"""Explanations: exact score decomposition, paths through categories, Browser links."""

from __future__ import annotations

import urllib.parse

import numpy as np
import pytest

from gnn.data import Interactions
from graphstore import NodeKind, NodeRef
from serving.explain import _through_categories, browser_url, cypher_for
from serving.types import ExplanationPath
from tests.serving.conftest import Served, World


def test_edge_contributions_and_bias_add_up_to_the_score(served: Served, world: World) -> None:
    engine = served.serving.registry.current()
    assert engine is not None
    rng = np.random.default_rng(0)
    n = 12
    items = rng.choice(engine.table.size, n, replace=False)
    edges = Interactions(
        actor=np.r_[np.zeros(n // 2, np.int64), np.ones(n - n // 2, np.int64)],
        item=np.arange(n, dtype=np.int64),
        behaviour=rng.integers(0, 4, n),
        count=rng.integers(1, 5, n),
        last_ts=engine.inference.reference_ts - rng.uniform(0, 400 * 86_400.0, n),
    )
    content = engine.table.content_of(items.astype(np.int64))
    h, z = engine.inference.forward(2, edges, content)
    target = engine.table.embeddings.vectors()[7].copy()
    parts, bias = engine.inference.actor_contributions(0, edges, z, target)
    assert parts[n // 2 :].tolist() == [0.0] * (n - n // 2)  # other actors' edges
    assert parts.sum() + bias == pytest.approx(float(h[0] @ target), rel=1e-4, abs=1e-4)
    # the request path's output layer alone (numpy) gives the forward pass's actors
    np.testing.assert_allclose(
        engine.inference.actors_from_items(2, edges, z), h, rtol=1e-5, atol=1e-5
    )


def test_category_route_climbs_to_the_common_ancestor() -> None:
    hops = _through_categories("i1", "i2", "a/b/c", "a/d")
    assert [(n.key, rel, fwd) for n, rel, fwd in hops] == [
        ("a/b/c", "IN_CATEGORY", True),
        ("a/b", "SUBCATEGORY_OF", True),
        ("a", "SUBCATEGORY_OF", True),
        ("a/d", "SUBCATEGORY_OF", False),
        ("i2", "IN_CATEGORY", False),
    ]
    assert _through_categories("i1", "i2", "a/b", "x/y") == []


def test_cypher_is_parameterised_and_browser_link_carries_no_ampersand_or_hash() -> None:
    path = ExplanationPath(
        (NodeRef(NodeKind.USER, "u&1"), NodeRef(NodeKind.ITEM, "it'#2")),
        ("CLICKED",),
        (True,),
        1.0,
    )
    cypher, params = cypher_for([path])
    assert cypher == "MATCH p = (:User {id: $p0n0})-[:CLICKED]->(:Item {id: $p0n1}) RETURN p"
    assert params == {"p0n0": "u&1", "p0n1": "it'#2"}
    url = browser_url("http://h:7474/browser/", "neo4j://neo4j@h:7687", cypher, params)
    query = urllib.parse.unquote(url.split("&cmd=edit&arg=", 1)[1])
    assert "&" not in query and "#" not in query
    assert "{id: 'u\\u00261'}" in query and "{id: 'it\\'\\u00232'}" in query
    assert url.startswith("http://h:7474/browser/?dbms=neo4j%3A%2F%2Fneo4j%40h%3A7687&cmd=edit")

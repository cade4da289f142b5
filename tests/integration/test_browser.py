"""Self-test of tests/integration/browser.py: Neo4j Browser in headless Chromium on the real server.

Screenshots land in ``artifacts/`` (kept by CI). Without chromium/chromedriver/selenium the
browser tests skip, except under ``CI=true``, where they fail: CI must be able to take them.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from neo4j import Driver, GraphDatabase

from tests.integration.browser import screenshot_query, screenshot_url
from tests.integration.browser_urls import cypher_literal, query_url
from tests.integration.servers import REPO, Servers

ARTIFACTS = REPO / "artifacts"
PATH_QUERY = "MATCH p=(u:User {id:$u})-[:CLICKED]->(i:Item)-[:IN_CATEGORY]->(c) RETURN p"


@pytest.fixture
def driver(servers: Servers, credentials: tuple[str, str]) -> Iterator[Driver]:
    with GraphDatabase.driver(servers.neo4j, auth=credentials) as d:
        yield d


@pytest.fixture
def path_ids(driver: Driver) -> Iterator[dict[str, str]]:
    """(:User)-[:CLICKED]->(:Item)-[:IN_CATEGORY]->(:Category), ids unique to this test run."""
    run = uuid.uuid4().hex[:8]
    ids = {k: f"browsertest-{run}-{k}" for k in ("u", "i", "c")}
    driver.execute_query(
        "CREATE (:User {id:$u})-[:CLICKED]->(:Item {id:$i})-[:IN_CATEGORY]->(:Category {id:$c})",
        ids,
    )
    yield ids
    driver.execute_query(
        "MATCH (n) WHERE (n:User OR n:Item OR n:Category) AND n.id IN $ids DETACH DELETE n",
        ids=list(ids.values()),
    )


def assert_png(path: Path, size: tuple[int, int] = (1400, 1000)) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert struct.unpack(">II", data[16:24]) == size
    assert len(data) > 20_000, f"{path} is only {len(data)} bytes: a blank page?"


@pytest.mark.integration
@pytest.mark.slow
def test_screenshot_of_a_parameterised_path_query(
    chromium: None, servers: Servers, credentials: tuple[str, str], path_ids: dict[str, str]
) -> None:
    out = ARTIFACTS / "browser-path-query.png"
    user, password = credentials
    result = screenshot_query(
        PATH_QUERY,
        {"u": path_ids["u"]},
        out,
        browser_url=f"{servers.neo4j_http}/browser/",
        bolt_url=servers.neo4j,
        user=user,
        password=password,
    )
    assert_png(out)
    assert (result.records, result.nodes, result.relationships) == (1, 3, 2), result


@pytest.mark.integration
@pytest.mark.slow
def test_a_query_url_opens_the_query_in_the_browser_editor(
    chromium: None, servers: Servers, credentials: tuple[str, str], path_ids: dict[str, str]
) -> None:
    # What an Explain link looks like: parameters inlined, one line per line of the query.
    query = PATH_QUERY.replace("$u", cypher_literal(path_ids["u"])).replace(" RETURN", "\nRETURN")
    user, password = credentials
    url = query_url(
        query, browser_url=f"{servers.neo4j_http}/browser/", bolt_url=servers.neo4j, user=user
    )
    out = ARTIFACTS / "browser-query-url.png"
    result = screenshot_url(url, out, password=password)
    assert_png(out)
    assert (result.records, result.nodes, result.relationships) == (1, 3, 2), result


def test_query_url_form() -> None:
    url = query_url("MATCH (n:User {id:'a b+c%'})\nRETURN n")
    assert url == (
        "http://127.0.0.1:7474/browser/?dbms=neo4j%3A%2F%2Fneo4j%40127.0.0.1%3A7687"
        "&cmd=edit&arg=MATCH%20%28n%3AUser%20%7Bid%3A%27a%20b%2Bc%25%27%7D%29%0ARETURN%20n"
    )
    for unsendable in ("MATCH (n:User&Item) RETURN n", "RETURN 1 // #1"):
        with pytest.raises(ValueError):
            query_url(unsendable)


def test_cypher_literals() -> None:
    assert cypher_literal("it's \\ ok") == "'it\\'s \\\\ ok'"
    assert cypher_literal([1, 2.5, True, None]) == "[1, 2.5, true, null]"
    assert cypher_literal({"k": 5, "a b": "x"}) == "{`k`: 5, `a b`: 'x'}"

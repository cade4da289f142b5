"""Shared fixtures: graph store backends for the contract suite, and server fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from graphstore import GraphStore, open_store
from tests.integration.servers import Servers, ensure_servers


@dataclass
class Backend:
    """How to get a fresh, empty store of one backend, and reopen it on the same data."""

    name: str
    make: Callable[[], GraphStore]
    reopen: Callable[[GraphStore], GraphStore]


def _embedded(tmp_path: Path) -> Backend:
    counter = iter(range(1_000_000))

    def make() -> GraphStore:
        return open_store(f"sqlite://{tmp_path / f'store-{next(counter)}'}")

    def reopen(store: GraphStore) -> GraphStore:
        url = store.url
        store.close()
        return open_store(url)

    return Backend("embedded", make, reopen)


def _neo4j(url: str) -> Backend:
    from graphstore.neo4j import Neo4jGraphStore

    def make() -> GraphStore:
        store = Neo4jGraphStore.from_url(url)
        store.reset()
        return store

    def reopen(store: GraphStore) -> GraphStore:
        store.close()
        return Neo4jGraphStore.from_url(url)

    return Backend("neo4j", make, reopen)


BACKENDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("neo4j", id="neo4j", marks=pytest.mark.integration),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Only tests marked ``integration`` may use the servers, so that ``-m "not integration"``
    never contacts them."""
    for item in items:
        uses = "servers" in getattr(item, "fixturenames", ())
        if uses and item.get_closest_marker("integration") is None:
            raise pytest.UsageError(f"{item.nodeid} uses the servers but is not marked integration")


@pytest.fixture(scope="session")
def servers() -> Servers:
    """Real Kafka and Neo4j on 127.0.0.1 (see tests/integration/servers.py)."""
    return ensure_servers()


@pytest.fixture
def neo4j(servers: Servers) -> Iterator[GraphStore]:
    """The real Neo4j, emptied before the test and after it."""
    from graphstore.neo4j import Neo4jGraphStore

    store = Neo4jGraphStore.from_url(servers.neo4j)
    store.reset()
    try:
        yield store
    finally:
        store.reset()
        store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every GraphStore implementation, for the contract suite."""
    if request.param == "embedded":
        yield _embedded(tmp_path)
    else:
        yield _neo4j(request.getfixturevalue("servers").neo4j)


@pytest.fixture
def store(backend: Backend) -> Iterator[GraphStore]:
    s = backend.make()
    yield s
    s.close()

"""Shared fixtures: graph store backends for the contract suite, and server fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from graphstore import GraphStore, open_store


@dataclass
class Backend:
    """How to get a fresh, empty store of one backend, and reopen it on the same data."""

    name: str
    make: Callable[[], GraphStore]
    reopen: Callable[[GraphStore], GraphStore]


def _embedded(tmp_path: Path) -> Backend:
    counter = iter(range(1_000_000))

    def make() -> GraphStore:
        return open_store(f"memory://{tmp_path / f'store-{next(counter)}'}")

    def reopen(store: GraphStore) -> GraphStore:
        url = store.url
        store.close()
        return open_store(url)

    return Backend("embedded", make, reopen)


BACKENDS = [pytest.param("embedded", id="embedded")]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every GraphStore implementation, for the contract suite."""
    yield _embedded(tmp_path)


@pytest.fixture
def store(backend: Backend) -> Iterator[GraphStore]:
    s = backend.make()
    yield s
    s.close()

from __future__ import annotations

import pytest

from gnn.data import GraphData, from_snapshot
from gnn.datasets import SyntheticConfig, generate
from gnn.datasets.base import load_into
from graphstore import CsrSnapshot, open_store


@pytest.fixture(scope="session")
def small_snapshot() -> CsrSnapshot:
    """A small synthetic shop's graph: 4,000 events, 300 actors, 200 items."""
    with open_store("memory://") as store:
        load_into(store, generate(SyntheticConfig(seed=5, events=4_000, users=300, items=200)))
        return store.snapshot()


@pytest.fixture(scope="session")
def small(small_snapshot: CsrSnapshot) -> GraphData:
    """``small_snapshot`` as training data."""
    return from_snapshot(small_snapshot)

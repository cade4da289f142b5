from __future__ import annotations

import pytest

from gnn.data import GraphData
from gnn.datasets import SyntheticConfig, generate
from gnn.experiment import graph_of


@pytest.fixture(scope="session")
def small() -> GraphData:
    """A small synthetic shop: 4,000 events, 300 actors, 200 items."""
    return graph_of(generate(SyntheticConfig(seed=5, events=4_000, users=300, items=200)))

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from gnn.data import GraphData, from_snapshot
from gnn.datasets import SyntheticConfig, generate
from gnn.datasets.base import load_into
from graphstore import CsrSnapshot, open_store

TORCH_THREADS = torch.get_num_threads()  # as collection finds it: torch's default


@pytest.fixture(autouse=True)
def torch_threads() -> Iterator[None]:
    """Training tests run on torch's default thread count: a serving app started in this
    process before them (tests/faults) sets one thread for the whole process."""
    torch.set_num_threads(TORCH_THREADS)
    yield


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

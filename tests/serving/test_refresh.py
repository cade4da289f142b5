"""Re-embedding changed items: round trips bounded by the edges they may carry."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from graphstore import GraphStore, Neighbourhood, open_store
from serving import refresh
from serving.engine import Engine
from serving.refresh import re_embed, refresh_chunk
from tests.serving.conftest import World


class RecordingStore:
    """The store, recording the seeds and fan-outs of each neighbourhood round trip."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self.calls: list[tuple[int, tuple[int, ...]]] = []

    def neighbourhood(self, seeds: Any, fanouts: Any, *args: Any, **kwargs: Any) -> Neighbourhood:
        self.calls.append((len(seeds), tuple(fanouts)))
        return self.store.neighbourhood(seeds, fanouts, *args, **kwargs)


def test_the_chunk_holds_the_edge_budget_at_the_fanout_caps() -> None:
    assert refresh_chunk((50, 10)) == refresh.REFRESH_EDGES // 550
    assert refresh_chunk((10_000, 10_000)) == 1  # never none


def test_items_are_re_embedded_in_round_trips_bounded_by_the_budget(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refresh, "REFRESH_EDGES", 11 * 55)  # 11 items of (5, 10) a round trip
    version = next(p for p in sorted(world.models.iterdir()) if p.name != "current")
    engine = Engine.load(version, exact_threshold=20_000)
    items = [i.item_id for i in world.dataset.items]
    before = engine.table.embeddings.vectors().copy()
    with open_store(world.store_url) as store:
        recording = RecordingStore(store)
        done = re_embed(recording, engine, items, [], (5, 10))  # type: ignore[arg-type]
    assert done == len(items)
    assert recording.calls == [(11, (5, 10))] * (len(items) // 11) + (
        [(len(items) % 11, (5, 10))] if len(items) % 11 else []
    )
    assert len(recording.calls) == math.ceil(len(items) / 11)
    after = engine.table.embeddings.vectors()
    assert np.isfinite(after).all() and not np.array_equal(before, after)

"""Serving loads a model version without reading the graph: the item table is the one the
trainer computed over its snapshot, and a hot reload reads no graph either, at 100k items; the
usearch index comes with the version and is not rebuilt."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.reload import synthetic_version
from gnn.ann import build_index
from gnn.checkpoint import current_version, set_current, snapshot_reference_ts, write_version
from gnn.data import from_snapshot
from gnn.inputs import Content
from gnn.version import load_version
from graphstore import GraphStore, open_store
from serving.app import Serving
from serving.engine import Engine
from serving.recommender import RecommenderConfig
from serving.server import ServerConfig
from tests.serving.conftest import World


def current_dir(models: Path) -> Path:
    name = current_version(models)
    assert name is not None
    return models / name


def test_the_loaded_table_is_the_full_forward_over_the_training_snapshot(world: World) -> None:
    with open_store(world.store_url) as store:
        snapshot, marks = store.snapshot(), store.watermarks()
    engine = Engine.load(current_dir(world.models), exact_threshold=20_000)
    version = load_version(current_dir(world.models))
    # what serving computed at every load before: one forward over every snapshot edge
    data = from_snapshot(snapshot)
    content = Content.of(data, version.index.id_rows >= 0)
    _, z = engine.inference.forward(data.num_actors, data.edges, content)
    table = engine.table
    assert table.keys == list(data.item_keys) and table.size == data.num_items
    np.testing.assert_allclose(table.embeddings.vectors(), z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table.content.features, content.features, rtol=1e-5, atol=1e-6)
    assert np.array_equal(table.content.ancestors, content.ancestors)
    assert np.array_equal(table.content.id_rows, content.id_rows)
    assert engine.inference.reference_ts == snapshot_reference_ts(snapshot)
    assert dict(engine.watermarks) == marks and marks


def _no_build(table: np.ndarray) -> None:
    raise AssertionError("serving built a usearch index the version holds")


def test_serving_searches_the_versions_own_usearch_index(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = load_version(current_dir(world.models))
    built = build_index(version.items.embeddings)
    saved = write_version(tmp_path / "models", replace(version, name="v-ann", ann=built))
    monkeypatch.setattr("serving.topk.build_index", _no_build)
    engine = Engine.load(saved, exact_threshold=1)
    index = engine.table.embeddings
    assert index._ann is not None and len(index._ann) == engine.table.size
    queries = version.items.embeddings[:20]
    for q in queries:
        rows, scores = index.search(q, 5)
        assert sorted(rows.tolist()) == sorted(built.search(q, 5).keys.tolist())
        np.testing.assert_allclose(scores, version.items.embeddings[rows] @ q, rtol=1e-5)


class CountingStore:
    """A store that records which thread called which of its methods."""

    def __init__(self, store: GraphStore) -> None:
        self._store = store
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, threading.current_thread().name))
            return attr(*args, **kwargs)

        return counted


LOAD_ITEMS = 100_000


def test_loading_and_hot_reloading_a_version_read_no_graph(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    version = synthetic_version("v-loaded", LOAD_ITEMS)  # with its usearch index, built once
    monkeypatch.setattr("serving.topk.build_index", _no_build)  # serving searches the version's
    write_version(models, version)
    set_current(models, version.name)
    with open_store(world.store_url) as real:
        store = CountingStore(real)
        serving = Serving(
            store,  # type: ignore[arg-type]
            models,
            RecommenderConfig(),  # the default exact_threshold: the usearch index is searched
            config=ServerConfig(address="127.0.0.1:0"),
            reload_every_s=0.05,
            probe_every_s=3600,
        )
        try:
            serving.start()
            assert serving.registry.version == version.name
            write_version(models, replace(version, name="v-reloaded"))
            set_current(models, "v-reloaded")
            deadline = time.monotonic() + 20
            while serving.registry.version != "v-reloaded":
                assert time.monotonic() < deadline, "the new version was not loaded in time"
                time.sleep(0.02)
            engine = serving.registry.current()
            assert engine is not None and engine.table.size == LOAD_ITEMS
            assert engine.table.embeddings._ann is not None
        finally:
            serving.stop()
    loaders = {threading.main_thread().name, "model-watcher"}
    assert [c for c in store.calls if c[1] in loaders] == []
    assert all(name == "neighbourhood" for name, _ in store.calls)  # the health probe only

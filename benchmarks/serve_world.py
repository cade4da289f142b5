"""The world of ``graphrec bench serve``: a synthetic shop in a graph store and a GNN trained on
it briefly (BPR loss, large batches: quality is not what the benchmark measures).

Without a store URL the world goes into a fresh embedded store in the run's directory. With one
(``neo4j://…``), it is generated into that store once and reused: a watermark named after the
world's parameters marks a store that holds it, and its model is kept under
``$GRAPHREC_CACHE/bench-serve/<world>/``; a store holding anything else is emptied first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gnn.datasets import Dataset
    from graphstore import GraphStore

Progress = Callable[[str], None]


@dataclass
class World:
    store: GraphStore
    models: Path
    dataset: Dataset
    figures: dict[str, object]


@dataclass(frozen=True)
class WorldSpec:
    items: int
    events: int
    users: int
    epochs: int
    seed: int
    train_events: int | None  # train on the graph as of this many events (None: all of them)

    @property
    def name(self) -> str:
        """What a store holding this world is marked with (its only watermark topic)."""
        return f"bench-serve-world-{self.seed}-{self.items}-{self.users}-{self.events}"


def build_world(spec: WorldSpec, work: Path, store_url: str | None, say: Progress) -> World:
    """The world in a store and a trained model, reusing both where a store URL holds them."""
    from gnn.datasets import SyntheticConfig, generate
    from graphstore import open_store

    started = time.perf_counter()
    say(f"generating {spec.items:,} items, {spec.events:,} events, {spec.users:,} users")
    config = SyntheticConfig(seed=spec.seed, events=spec.events, users=spec.users, items=spec.items)
    dataset = generate(config)
    figures: dict[str, object] = {"generate_s": round(time.perf_counter() - started, 2)}
    store = open_store(store_url or f"sqlite://{work / 'graph'}")
    try:
        figures |= _load(store, dataset, spec, say)
        figures["build_s"] = round(time.perf_counter() - started, 2)  # generated and written
        models = work / "models" if store_url is None else _cache() / spec.name / "models"
        figures |= _train(store, dataset, spec, models, say)
    except BaseException:
        store.close()
        raise
    return World(store, models, dataset, figures)


def _load(store: GraphStore, dataset: Dataset, spec: WorldSpec, say: Progress) -> dict[str, object]:
    """Write the world into the store unless it holds it already; the seconds each step took."""
    from gnn.datasets.base import load_into
    from graphstore import Batch

    if (spec.name, 0) in store.watermarks():
        say(f"{store.url} holds the world already: reusing it")
        return {"world_reused": True, "reset_s": 0.0, "write_s": 0.0}
    started = time.perf_counter()
    say(f"emptying {store.url}")
    store.reset()
    emptied = time.perf_counter()
    say(f"writing the world into {store.url}")
    load_into(store, dataset)
    store.apply(Batch(consumed={(spec.name, 0): 0}))  # the mark, once everything is in
    loaded = time.perf_counter()
    say(f"world written in {loaded - emptied:.1f} s (emptying took {emptied - started:.1f} s)")
    return {
        "world_reused": False,
        "reset_s": round(emptied - started, 2),
        "write_s": round(loaded - emptied, 2),
    }


def _train(
    store: GraphStore, dataset: Dataset, spec: WorldSpec, models: Path, say: Progress
) -> dict[str, object]:
    """Train a model into ``models`` unless one is published there already."""
    from gnn.train import TrainConfig
    from gnn.trainer import train_once

    if (models / "current").exists():
        say(f"reusing the model in {models}")
        return {"model_reused": True, "train_s": 0.0, "validation_recall@20": None}
    cut = None
    if spec.train_events is not None and spec.train_events < len(dataset.interactions):
        cut = dataset.interactions[spec.train_events].ts  # the graph as of that event
    started = time.perf_counter()
    snapshot = store.snapshot(before=cut)
    say(f"snapshot in {time.perf_counter() - started:.1f} s; training {spec.epochs} epochs")
    # BPR, not the default full softmax (a [batch, items] logit matrix per step), and large
    # batches: every step is a forward pass over the whole graph.
    config = TrainConfig(
        epochs=spec.epochs,
        loss="bpr",
        batch_size=8_192,
        eval_every=max(1, spec.epochs),
        validation_share=0.02,  # evaluation ranks all items for every validation actor
        seed=spec.seed,
    )
    trained = train_once(snapshot, config, models)
    took = time.perf_counter() - started
    say(f"trained in {took:.1f} s (validation recall@20 {trained['validation_recall@20']})")
    return {
        "model_reused": False,
        "train_s": round(took, 2),
        "validation_recall@20": trained["validation_recall@20"],
    }


def _cache() -> Path:
    return (
        Path(os.environ.get("GRAPHREC_CACHE", Path.home() / ".cache" / "graphrec")) / "bench-serve"
    )

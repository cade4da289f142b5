"""``graphrec bench warm``: a retrain after +10% events, warm (from the previous version's
weights, ``gnn.warm``) beside cold (from scratch), on the same held-out pairs.

The previous version is trained on the first ``base_share`` of the events (by time), less the
held-out pairs, written and loaded as a real version. Both retrains then fit the whole graph's
training pairs with the same configuration and early stopping; the warm one's time includes
loading the previous version. Goal (issue 18): warm recall@20 within .005 of cold's in at most
a third of its time.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from gnn.checkpoint import snapshot_version, write_version
from gnn.data import GraphData, from_snapshot
from gnn.datasets import Dataset, SyntheticConfig, generate, load_ml100k
from gnn.datasets.base import load_into
from gnn.evaluate import evaluate
from gnn.splits import Split, make_split
from gnn.train import GnnRecommender, TrainConfig
from gnn.version import load_version
from gnn.warm import WarmRecommender
from graphstore import CsrSnapshot, open_store

GOAL = "warm recall@20 >= cold - .005 in <= 1/3 of cold's time"


def bench_warm(
    dataset: str = "ml-100k", base_share: float = 0.9, seed: int = 0, epochs: int = 60
) -> dict[str, object]:
    """Cold and warm retrain figures (``graphrec bench warm``)."""
    events = _dataset(dataset)
    base_snapshot, snapshot = _snapshots(events, base_share)
    data = from_snapshot(snapshot)
    split = make_split(data, "random", seed, 0.1)
    config = TrainConfig(epochs=epochs, seed=seed)
    with tempfile.TemporaryDirectory(prefix="graphrec-bench-warm-") as work:
        started = time.perf_counter()
        base_dir = _previous_version(base_snapshot, data, split, config, Path(work))
        base_s = time.perf_counter() - started
        cold = _retrain(lambda: GnnRecommender(config), data, split)
        warm = _retrain(lambda: WarmRecommender(config, load_version(base_dir)), data, split)
    ratio = warm["seconds"] / cold["seconds"]
    cpu_ratio = warm["cpu_seconds"] / cold["cpu_seconds"]
    gap = cold["recall@20"] - warm["recall@20"]
    return {
        "bench": "warm",
        "dataset": dataset,
        "events": len(events.interactions),
        "base_share": base_share,
        "held_out_pairs": len(split.test_actor),
        "previous_seconds": round(base_s, 2),
        "cold": cold,
        "warm": warm,
        "time_ratio": round(ratio, 3),
        "cpu_time_ratio": round(cpu_ratio, 3),
        "recall_gap": round(gap, 4),
        "goal": GOAL,
        "met": bool(gap <= 0.005 and ratio <= 1 / 3),
    }


def _dataset(name: str) -> Dataset:
    if name == "ml-100k":
        return load_ml100k()
    if name == "synthetic":
        return generate(SyntheticConfig())
    raise ValueError(f"unknown dataset {name!r}: ml-100k or synthetic")


def _snapshots(dataset: Dataset, base_share: float) -> tuple[CsrSnapshot, CsrSnapshot]:
    """The graph after the first ``base_share`` of the events, and after all of them."""
    cut = int(len(dataset.interactions) * base_share)
    with open_store("memory://") as store:
        load_into(store, replace(dataset, interactions=dataset.interactions[:cut]))
        base = store.snapshot()
        load_into(store, replace(dataset, items=[], interactions=dataset.interactions[cut:]))
        return base, store.snapshot()


def _previous_version(
    snapshot: CsrSnapshot, data: GraphData, split: Split, config: TrainConfig, work: Path
) -> Path:
    """The version trained on ``snapshot`` without ``split``'s held-out pairs of ``data``,
    written to ``work``: what a warm retrain starts from."""
    base = from_snapshot(snapshot)
    held = set(
        zip(
            np.asarray(data.actor_keys)[split.test_actor].tolist(),
            np.asarray(data.item_keys)[split.test_item].tolist(),
            strict=True,
        )
    )
    e = base.edges
    keys = zip(
        np.asarray(base.actor_keys)[e.actor].tolist(),
        np.asarray(base.item_keys)[e.item].tolist(),
        strict=True,
    )
    keep = np.array([pair not in held for pair in keys], bool)
    rec = GnnRecommender(config)
    rec.fit(base, e.take(keep), config.seed)
    return write_version(work, snapshot_version("previous", rec, base, snapshot))


def _retrain(make: Callable[[], GnnRecommender], data: GraphData, split: Split) -> dict[str, float]:
    """Fit a fresh recommender on ``split.train``: its time (from ``make`` on) and recall."""
    started, cpu = time.perf_counter(), time.process_time()
    rec = make()
    rec.fit(data, split.train, rec.config.seed)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    history = rec.history
    best = max(history, key=lambda h: h["val_recall@20"])
    return {
        "recall@20": round(evaluate(rec, data, split)["recall@20"], 4),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),  # all threads: less sensitive to a shared machine
        "epochs": int(history[-1]["epoch"]),
        "best_epoch": int(best["epoch"]),
    }

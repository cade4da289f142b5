"""Train a version, gate it and publish it: once (``train_once``) or on a schedule
(``train_periodically``). ``graphrec train``, the demo and the benchmarks call these."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from gnn.checkpoint import (
    current_version,
    new_version,
    set_current,
    snapshot_version,
    write_version,
)
from gnn.data import from_snapshot
from gnn.manifest import VersionError
from gnn.publish import version_recall
from gnn.splits import make_split
from gnn.train import GnnRecommender, TrainConfig
from gnn.version import ModelVersion, load_version
from gnn.warm import WarmRecommender
from graphstore import CsrSnapshot, open_store

log = logging.getLogger(__name__)


def train_once(
    snapshot: CsrSnapshot,
    config: TrainConfig,
    models_dir: Path,
    warm_from: Path | None = None,
) -> dict[str, object]:
    """Train one version and write it whole (``gnn.checkpoint.write_version``); publish it
    (``current`` pointer) only if its recall on held-out pairs is not worse than the current
    version's on the same pairs. ``warm_from``: a version directory whose weights the model
    starts from (``gnn.warm``; None: a cold start). Returns a summary."""
    data = from_snapshot(snapshot)
    split = make_split(data, "random", config.seed, 0.1)
    model = (
        GnnRecommender(config)
        if warm_from is None
        else WarmRecommender(config, load_version(warm_from))
    )
    model.fit(data, split.train, config.seed)
    candidate = snapshot_version(new_version(models_dir), model, data, snapshot)
    metric = version_recall(candidate, data, split)
    if metric is None:  # LightGCN cannot embed today's graph: its own validation score
        metric = model.best_validation
    current = _current(models_dir)
    current_metric = None
    if current is not None:
        current_metric = version_recall(current, data, split)
        if current_metric is None:
            current_metric = float(current.metrics["validation_recall@20"])
    published = current_metric is None or metric >= current_metric
    log.info(
        "version %s: held-out recall@20 %.4f against %s for the current version: %s",
        candidate.name,
        metric,
        "none" if current_metric is None else f"{current_metric:.4f}",
        "published" if published else "kept, not published",
    )
    metrics = {
        "validation_recall@20": metric,
        "best_validation_recall@20": model.best_validation,
        "current_recall@20": current_metric,
        "published": published,
        "previous": current.name if current else None,
        "warm_from": None if warm_from is None else warm_from.name,
        "history": model.history,
    }
    directory = write_version(models_dir, replace(candidate, metrics=metrics))
    if published:
        load_version(directory)  # what was written reads back whole before it goes live
        set_current(models_dir, candidate.name)
    return {
        "version": candidate.name,
        "path": str(directory),
        "validation_recall@20": round(metric, 4),
        "current_recall@20": None if current_metric is None else round(current_metric, 4),
        "published": published,
        "previous": current.name if current else None,
        "config": asdict(config),
    }


def _current(models_dir: Path) -> ModelVersion | None:
    """The current version, if there is one that loads (a damaged or older-format current
    version is logged and replaced by the next one trained)."""
    try:
        version = current_version(models_dir)
        return None if version is None else load_version(models_dir / version)
    except VersionError as exc:
        log.warning("the current version cannot be loaded, publishing over it: %s", exc)
        return None


def train_periodically(
    store_url: str,
    config: TrainConfig,
    models_dir: Path,
    every_minutes: float = 0.0,
    every_events: int = 0,
    report: Callable[[dict[str, object]], None] = lambda summary: None,
) -> None:
    """``train_once`` on the store's snapshot, then again every ``every_minutes`` or after
    ``every_events`` new interactions, whichever comes first (neither: return after one).
    A round whose store holds no new interactions trains nothing. Each summary goes to
    ``report``."""
    last_events = -1
    while True:
        with open_store(store_url) as graph:
            events = graph.stats().interactions
            if events != last_events:
                report(train_once(graph.snapshot(), config, models_dir))
                last_events = events
        if every_minutes <= 0 and every_events <= 0:
            return
        deadline = time.monotonic() + (every_minutes * 60 if every_minutes > 0 else float("inf"))
        while time.monotonic() < deadline:
            time.sleep(5)
            if every_events > 0:
                with open_store(store_url) as graph:
                    if graph.stats().interactions - last_events >= every_events:
                        break

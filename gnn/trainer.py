"""Train a version, gate it and publish it: once (``train_once``) or on a schedule
(``PeriodicTrainer``). ``graphrec train``, the demo and the benchmarks call these."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
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
from graphstore import CsrSnapshot, GraphStore

log = logging.getLogger(__name__)
EVENTS_POLL_S = 5.0  # how often a schedule by events counts the graph's interactions


def _nothing() -> None:
    pass


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


@dataclass(frozen=True)
class Schedule:
    """Retrain every ``every_minutes`` or after ``every_events`` new interactions, whichever
    comes first; neither: once."""

    every_minutes: float = 0.0
    every_events: int = 0

    @property
    def periodic(self) -> bool:
        return self.every_minutes > 0 or self.every_events > 0


class PeriodicTrainer:
    """``train_once`` on the store's snapshot, on a ``Schedule``; each summary goes to
    ``report``. A round whose store holds no new interactions trains nothing.

    ``run`` raises when a round fails (the store unreachable, say); calling it again carries
    on from the last round that worked, so whoever calls it decides how to retry
    (``graphrec train`` backs off and tries again)."""

    def __init__(
        self,
        open_graph: Callable[[], AbstractContextManager[GraphStore]],
        config: TrainConfig,
        models_dir: Path,
        schedule: Schedule = Schedule(),
        report: Callable[[dict[str, object]], None] = lambda summary: None,
    ) -> None:
        self.open_graph = open_graph
        self.config, self.models_dir = config, models_dir
        self.schedule, self.report = schedule, report
        self.trained_on = -1  # interactions in the graph at the last round that trained

    def run(
        self, stopping: threading.Event | None = None, succeeded: Callable[[], None] = _nothing
    ) -> None:
        """Rounds until ``stopping`` is set (one round when not periodic), calling
        ``succeeded`` after each round that worked."""
        stopping = stopping or threading.Event()
        while not stopping.is_set():
            self.round()
            succeeded()
            if not self.schedule.periodic or self._wait_for_next_round(stopping):
                return

    def round(self) -> None:
        """Train on the graph unless it holds no new interactions (or, periodic, none yet:
        ``train_once`` refuses an empty graph)."""
        with self.open_graph() as graph:
            events = graph.stats().interactions
            if events == self.trained_on or (events == 0 and self.schedule.periodic):
                return
            self.report(train_once(graph.snapshot(), self.config, self.models_dir))
            self.trained_on = events

    def _wait_for_next_round(self, stopping: threading.Event) -> bool:
        """Wait for the next round; True when stopped instead."""
        minutes, events = self.schedule.every_minutes, self.schedule.every_events
        period_s = minutes * 60 if minutes > 0 else float("inf")
        deadline = time.monotonic() + period_s
        while time.monotonic() < deadline:
            if stopping.wait(min(EVENTS_POLL_S, period_s)):
                return True
            if events > 0:
                with self.open_graph() as graph:
                    if graph.stats().interactions - self.trained_on >= events:
                        return False
        return False

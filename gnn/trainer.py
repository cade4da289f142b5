"""Train a version, gate it and publish it: once (``train_once``) or on a schedule
(``PeriodicTrainer``). ``graphrec train``, the demo and the benchmarks call these."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

from gnn.checkpoint import (
    current_version,
    new_version,
    set_current,
    snapshot_version,
    write_version,
)
from gnn.data import GraphData, from_snapshot
from gnn.distributed import SINGLE, Group
from gnn.manifest import VersionError
from gnn.publish import version_recall
from gnn.splits import Split, make_split
from gnn.train import GnnRecommender, TrainConfig
from gnn.version import ModelVersion, load_version
from gnn.warm import WarmRecommender
from graphstore import CsrSnapshot, GraphStore

log = logging.getLogger(__name__)
EVENTS_POLL_S = 5.0  # how often a schedule by events counts the graph's interactions
CHANGES_POLL_S = 1.0  # longest wait for the change stream, so a stop is seen soon


def _nothing() -> None:
    pass


def train_once(
    snapshot: CsrSnapshot,
    config: TrainConfig,
    models_dir: Path,
    warm_from: Path | None = None,
    warm: bool = False,
    group: Group = SINGLE,
) -> dict[str, object]:
    """Train one version and write it whole (``gnn.checkpoint.write_version``); publish it
    (``current`` pointer) only if its recall on held-out pairs is not worse than the current
    version's on the same pairs. ``warm_from``: a version directory whose weights the model
    starts from (``gnn.warm``); else ``warm``: start from the current version's when it is a
    model of the same kind; else a cold start. Returns a summary.

    In a torchrun ``group`` every rank calls it with the same snapshot and trains; rank 0
    alone gates, writes and publishes, the others return ``{"rank": rank}`` once trained."""
    data = from_snapshot(snapshot)
    split = make_split(data, "random", config.seed, 0.1)
    current = _current(models_dir)
    previous = _warm_start(config, current, warm) if warm_from is None else load_version(warm_from)
    model = GnnRecommender(config) if previous is None else WarmRecommender(config, previous)
    model.fit(data, split.train, config.seed, group)
    if not group.leader:
        return {"rank": group.rank}
    candidate = snapshot_version(new_version(models_dir), model, data, snapshot)
    metric, current_metric = _recalls(candidate, current, data, split, model.best_validation)
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
        "warm_from": None if previous is None else previous.name,
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
        "warm_from": None if previous is None else previous.name,
        "config": asdict(config),
    }


def _recalls(
    candidate: ModelVersion,
    current: ModelVersion | None,
    data: GraphData,
    split: Split,
    best_validation: float,
) -> tuple[float, float | None]:
    """The candidate's and the current version's recall@20 on the same held-out pairs; a
    LightGCN version cannot embed today's graph: its own validation score instead."""
    metric = version_recall(candidate, data, split)
    if metric is None:
        metric = best_validation
    if current is None:
        return metric, None
    current_metric = version_recall(current, data, split)
    if current_metric is None:
        current_metric = float(current.metrics["validation_recall@20"])
    return metric, current_metric


def _warm_start(
    config: TrainConfig, current: ModelVersion | None, warm: bool
) -> ModelVersion | None:
    """The version a warm start begins from: the current one, if ``warm`` and it is a model
    of ``config.model``'s kind."""
    if not warm or current is None:
        return None
    if current.config.model != config.model:
        log.info(
            "training %s cold: the current version %s is a %s model",
            config.model,
            current.name,
            current.config.model,
        )
        return None
    return current


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


class NewEvents(Protocol):
    """Counts the interactions the graph applied after a snapshot, as they are applied
    (``graphrec.changecount.ChangeCount`` reads them from the sink's change stream)."""

    def count(self, watermarks: Mapping[str, int], wait_s: float) -> int:
        """Interactions seen so far past ``watermarks`` (a snapshot's, ``"topic:partition"``
        → offset), after waiting up to ``wait_s`` for more; raises when it cannot tell."""
        ...


class PeriodicTrainer:
    """``train_once`` on the store's snapshot, on a ``Schedule``; each summary goes to
    ``report``. A round whose store holds no new interactions trains nothing.

    The store is opened once, at the first round, and kept (``close`` closes it). New
    interactions are counted by ``new_events`` when given (past the watermarks of the
    snapshot last trained on), else from the store's counts every ``EVENTS_POLL_S``.
    ``warm``: each round starts from the current version's weights (``train_once``).

    In a torchrun ``group`` of more than one process it trains once: rank 0 opens the store,
    reads the snapshot and sends it to every rank, so all train on the same graph (the
    others never open the store); a schedule is refused (a CronJob schedules such runs).

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
        new_events: NewEvents | None = None,
        warm: bool = False,
        group: Group = SINGLE,
    ) -> None:
        if group.size > 1 and schedule.periodic:
            raise ValueError(
                f"a schedule needs one process, not {group.size}: run distributed training "
                "once per round (a CronJob, say)"
            )
        self.open_graph, self.group = open_graph, group
        self.config, self.models_dir = config, models_dir
        self.schedule, self.report = schedule, report
        self.new_events, self.warm = new_events, warm
        self.trained_on = -1  # interactions in the graph at the last round that trained
        self.trained_marks: dict[str, int] = {}  # the watermarks of that round's snapshot
        self._opened: AbstractContextManager[GraphStore] | None = None
        self._graph: GraphStore | None = None

    def graph(self) -> GraphStore:
        """The trainer's store, opened at the first call."""
        if self._graph is None:
            opened = self.open_graph()
            self._graph = opened.__enter__()
            self._opened = opened
        return self._graph

    def close(self) -> None:
        """Close the store, if it was opened."""
        opened, self._opened, self._graph = self._opened, None, None
        if opened is not None:
            opened.__exit__(None, None, None)

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
        found = self.group.from_leader(self._new_snapshot)
        if found is None:
            return
        events, snapshot = found
        summary = train_once(
            snapshot, self.config, self.models_dir, warm=self.warm, group=self.group
        )
        if self.group.leader:
            self.report(summary)
        self.trained_on = events
        self.trained_marks = dict(snapshot.watermarks)

    def _new_snapshot(self) -> tuple[int, CsrSnapshot] | None:
        """The graph's interaction count and snapshot, None when there is nothing new."""
        graph = self.graph()
        events = graph.stats().interactions
        if events == self.trained_on or (events == 0 and self.schedule.periodic):
            return None
        return events, graph.snapshot()

    def _wait_for_next_round(self, stopping: threading.Event) -> bool:
        """Wait for the next round; True when stopped instead."""
        minutes, every = self.schedule.every_minutes, self.schedule.every_events
        deadline = time.monotonic() + (minutes * 60 if minutes > 0 else float("inf"))
        while not stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if every > 0 and self.new_events is not None:
                wait_s = min(CHANGES_POLL_S, left)
                if self.new_events.count(self.trained_marks, wait_s) >= every:
                    return False
            elif stopping.wait(min(EVENTS_POLL_S, left)):
                return True
            elif every > 0 and self.graph().stats().interactions - self.trained_on >= every:
                return False
        return True

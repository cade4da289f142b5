"""The periodic trainer outlives its store: a round that fails (the store unreachable) is
retried with back-off, one log line per failure, shown in its metrics; once the store answers
again it trains on what arrived meanwhile. The store is a real embedded one behind a switch
that makes opening it and calling it fail, as a store that is down does. The trainer keeps
one store handle for its lifetime; `graphrec train` reads the configuration `serve` reads and
starts from the current version unless --cold."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from gnn.datasets import SyntheticConfig, generate
from gnn.train import TrainConfig
from gnn.trainer import PeriodicTrainer, Schedule
from graphrec.pipeline import ingest, produce_dataset
from graphrec.train_cli import LOOP_NAME, keep_training
from graphstore import GraphStore, GraphStoreError, open_store
from serving.loops import LoopMetrics, LoopState
from tests.faults.test_changefeed import closed_port
from tests.integration.waiting import wait_until

LABELS = {"loop": LOOP_NAME}


def add_events(log_url: str, store_url: str, seed: int) -> None:
    produce_dataset(log_url, generate(SyntheticConfig(seed=seed, events=800, users=60, items=80)))
    with open_store(store_url) as store:
        ingest(log_url, store, group="sink", idle_exit_s=0.3)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite://{tmp_path / 'graph'}"
    add_events(f"log://{tmp_path / 'log'}", url, seed=1)
    return url


class Switch:
    """Opens the store, counting how often; while ``down`` is set, opening it and calling
    the opened store fail as an unreachable one does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.down = threading.Event()
        self.opened = 0

    def __call__(self) -> AbstractContextManager[GraphStore]:
        self._check()
        self.opened += 1
        return self._open()

    @contextmanager
    def _open(self) -> Iterator[GraphStore]:
        with open_store(self.url) as store:
            yield cast(GraphStore, _Switched(store, self._check))

    def _check(self) -> None:
        if self.down.is_set():
            raise GraphStoreError("cannot reach the graph store: connection refused")


class _Switched:
    """``store``, whose calls run ``check`` first."""

    def __init__(self, store: GraphStore, check: Callable[[], None]) -> None:
        self._store, self._check = store, check

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._check()
            return attribute(*args, **kwargs)

        return call


def test_failed_rounds_are_retried_until_the_store_is_back(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="serving.loops")
    switch = Switch(store_url)
    summaries: list[dict[str, object]] = []
    trainer = PeriodicTrainer(
        switch,
        TrainConfig(epochs=2, seed=0),
        tmp_path / "models",
        Schedule(every_minutes=0.2 / 60),  # a round every 0.2 s
        summaries.append,
    )
    registry = CollectorRegistry()
    state = LoopState(LOOP_NAME, LoopMetrics(registry))
    stopping = threading.Event()
    thread = threading.Thread(
        target=keep_training, args=(trainer, state, stopping, 0.05, 0.2), daemon=True
    )
    thread.start()
    try:
        wait_until("the first version", lambda: len(summaries) == 1, 120)
        switch.down.set()
        failures = "graphrec_background_failures_total"
        wait_until(
            "two failed rounds", lambda: (registry.get_sample_value(failures, LABELS) or 0) >= 2, 30
        )
        assert thread.is_alive(), "a failed round must not end the trainer"
        assert registry.get_sample_value("graphrec_background_up", LABELS) == 0
        add_events(f"log://{tmp_path / 'log'}", store_url, seed=2)  # while it cannot see them
        switch.down.clear()
        wait_until("a version of the grown graph", lambda: len(summaries) == 2, 120)
        assert registry.get_sample_value("graphrec_background_up", LABELS) == 1
        lines = [r.getMessage() for r in caplog.records if r.name == "serving.loops"]
        assert len(lines) == registry.get_sample_value(failures, LABELS)
        assert all(
            line.startswith("trainer failed (GraphStoreError: cannot reach")
            and "retrying in" in line
            for line in lines
        ), lines
    finally:
        stopping.set()
        thread.join(timeout=60)
    assert not thread.is_alive(), "stopping must end the trainer"
    assert switch.opened == 1, "the trainer keeps its store through failed rounds"


def test_the_periodic_trainer_serves_its_state_on_metrics(store_url: str, tmp_path: Path) -> None:
    port = closed_port()
    env = {**os.environ, "GRAPHREC_DATA_DIR": str(tmp_path)}
    args = ["train", "--store", store_url, "--models-dir", str(tmp_path / "models")]
    args += ["--epochs", "1", "--every-minutes", "10", "--metrics-port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "graphrec", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as page:
                return page.read().decode()
        except OSError:
            return ""

    try:
        wait_until("the trainer up on /metrics", lambda: 'up{loop="trainer"} 1.0' in scrape(), 120)
        assert 'graphrec_background_failures_total{loop="trainer"} 0.0' in scrape()
    finally:
        process.terminate()
        process.wait(timeout=30)

"""The periodic trainer's schedule and its one store handle: rounds after M new events,
counted from the store (no log) or from the change stream past the snapshot last trained on;
the store opened once across rounds. `graphrec train` reads the configuration `serve` reads
and starts from the current version unless --cold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import gnn.trainer
from gnn.train import TrainConfig
from gnn.trainer import PeriodicTrainer, Schedule
from graphrec.changecount import ChangeCount, positions
from graphstore import NodeKind, NodeRef, open_store
from streaming.changes import Change, encode_change
from streaming.urls import open_writer
from tests.faults.test_trainer import Switch, add_events, store_url
from tests.integration.waiting import wait_until

__all__ = ["store_url"]  # the fixture this module uses


class Recording:
    """A ``NewEvents`` that remembers every count it gave."""

    def __init__(self, counter: ChangeCount) -> None:
        self.counter = counter
        self.counts: list[int] = []

    def count(self, watermarks: Mapping[str, int], wait_s: float) -> int:
        n = self.counter.count(watermarks, wait_s)
        self.counts.append(n)
        return n


def running(trainer: PeriodicTrainer) -> tuple[threading.Thread, threading.Event]:
    stopping = threading.Event()
    thread = threading.Thread(target=trainer.run, args=(stopping,), daemon=True)
    thread.start()
    return thread, stopping


def stopped(thread: threading.Thread, stopping: threading.Event) -> None:
    stopping.set()
    thread.join(timeout=60)
    assert not thread.is_alive(), "stopping must end the trainer"


def test_rounds_by_events_from_the_store_open_it_once(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gnn.trainer, "EVENTS_POLL_S", 0.05)  # count often: many store calls
    switch = Switch(store_url)
    summaries: list[dict[str, object]] = []
    trainer = PeriodicTrainer(
        switch,
        TrainConfig(epochs=1, seed=0),
        tmp_path / "models",
        Schedule(every_events=500),
        summaries.append,
    )
    thread, stopping = running(trainer)
    try:
        wait_until("the first version", lambda: len(summaries) == 1, 120)
        for seed, rounds in ((2, 2), (3, 3)):
            add_events(f"log://{tmp_path / 'log'}", store_url, seed=seed)  # 800 events each
            wait_until(f"version {rounds}", lambda n=rounds: len(summaries) == n, 120)
    finally:
        stopped(thread, stopping)
        trainer.close()
    assert switch.opened == 1


def item_change(key: str, at: Mapping[tuple[str, int], int], events: int) -> Change:
    return Change(NodeRef(NodeKind.ITEM, key), dict(at), events, None, 0.0)


def test_rounds_by_events_from_the_change_stream(store_url: str, tmp_path: Path) -> None:
    changes_url = f"log://{tmp_path / 'log'}?changes=trainer-test-changes"
    writer = open_writer(changes_url)

    def publish(*changes: Change) -> None:
        writer.send("trainer-test-changes", [encode_change(c) for c in changes])

    counter = Recording(ChangeCount(changes_url))
    switch = Switch(store_url)
    summaries: list[dict[str, object]] = []
    trainer = PeriodicTrainer(
        switch,
        TrainConfig(epochs=1, seed=0),
        tmp_path / "models",
        Schedule(every_events=1_000),
        summaries.append,
        new_events=counter,
    )
    thread, stopping = running(trainer)
    try:
        wait_until("the first version", lambda: len(summaries) == 1, 120)
        trained = positions(trainer.trained_marks)
        publish(item_change("old", trained, 5_000))  # the snapshot holds it: not new
        add_events(f"log://{tmp_path / 'log'}", store_url, seed=2)
        with open_store(store_url) as store:
            after = store.watermarks()
        publish(item_change("a", after, 600))
        wait_until("600 new events counted", lambda: 600 in counter.counts, 30)
        assert len(summaries) == 1, "600 of 1000 events must not start a round"
        publish(item_change("a", after, 600))  # published twice: counts once
        publish(item_change("b", after, 400))
        wait_until("the second version", lambda: len(summaries) == 2, 120)
        assert 1_000 in counter.counts and 1_600 not in counter.counts
        wait_until("nothing new past it", lambda: counter.counts[-1] == 0, 30)
    finally:
        stopped(thread, stopping)
        trainer.close()
        counter.counter.close()
    assert switch.opened == 1


def train(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "graphrec", "train", "--epochs", "1", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture
def configured(store_url: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """The environment of a deployment that names its store and models directory."""
    models = tmp_path / "configured-models"
    env = {
        **os.environ,
        "GRAPHREC_DATA_DIR": str(tmp_path / "unused"),
        "GRAPHREC_STORE": store_url,
        "GRAPHREC_MODELS_DIR": str(models),
    }
    yield env, models


def test_train_reads_the_configuration_and_starts_warm(
    configured: tuple[dict[str, str], Path],
) -> None:
    env, models = configured
    first = train(env)
    assert Path(str(first["path"])).parent == models and first["warm_from"] is None
    second = train(env)
    assert second["warm_from"] == first["version"]
    cold = train(env, "--cold")
    assert cold["warm_from"] is None


def test_rounds_after_the_events_the_sink_reports(store_url: str, tmp_path: Path) -> None:
    log_url = f"log://{tmp_path / 'log'}"  # where add_events produces and the sink publishes
    counter = Recording(ChangeCount(log_url))
    summaries: list[dict[str, object]] = []
    trainer = PeriodicTrainer(
        Switch(store_url),
        TrainConfig(epochs=1, seed=0),
        tmp_path / "models",
        Schedule(every_events=1_000),
        summaries.append,
        new_events=counter,
    )
    thread, stopping = running(trainer)
    try:
        wait_until("the first version", lambda: len(summaries) == 1, 120)
        wait_until("the stream read up to it", lambda: 0 in counter.counts, 30)
        add_events(log_url, store_url, seed=2)  # 800 events
        wait_until("800 new events counted", lambda: 800 in counter.counts, 30)
        assert len(summaries) == 1, "800 of 1000 events must not start a round"
        add_events(log_url, store_url, seed=3)
        wait_until("the second version", lambda: len(summaries) == 2, 120)
    finally:
        stopped(thread, stopping)
        trainer.close()
        counter.counter.close()

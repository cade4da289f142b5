"""Kill the sink process with SIGKILL at a random point, restart it: the graph is unaffected,
and the change stream covers every node of it up to the graph's watermarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import ingest, produce_dataset
from graphstore import CsrSnapshot, NodeKind, NodeRef, open_store
from streaming.changes import decode_change
from streaming.log import EventLog
from streaming.urls import parse_log_url
from tests.contract.test_graphstore_contract import assert_same_graph
from tests.streaming.changestream import ledger

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, CsrSnapshot, Path]:
    """A log holding 20,000 events (+200 malformed), and the graph built from it with no crash."""
    work = tmp_path_factory.mktemp("crash")
    log_url = f"log://{work / 'log'}"
    produce_dataset(log_url, generate(SyntheticConfig(seed=11, events=20_000)), malformed=200)
    with open_store(f"sqlite://{work / 'reference'}") as reference:
        ingest(log_url, reference, group="reference", idle_exit_s=0.3)
        return log_url, reference.snapshot(), work


@pytest.fixture(scope="module")
def nodes() -> set[NodeRef]:
    """Every node the produced log touches (items, users, sessions)."""
    data = generate(SyntheticConfig(seed=11, events=20_000))
    return set(ledger(data.interactions, data.items))


def assert_stream_covers(
    log_url: str, marks: dict[tuple[str, int], int], nodes: set[NodeRef]
) -> None:
    """The log's change stream names every node, and its last record the graph's watermarks."""
    address = parse_log_url(log_url)
    records = EventLog(Path(address.location)).read((address.changes, 0), 0, 10_000_000)
    changes = [decode_change(r) for r in records]
    assert {c.node for c in changes} == nodes
    assert changes[-1].positions == marks


def _start_sink(
    log_url: str, store_url: str, group: str, batch_size: int
) -> subprocess.Popen[bytes]:
    args = [
        "--from",
        log_url,
        "--store",
        store_url,
        "--group",
        group,
        "--batch-size",
        str(batch_size),
    ]
    return subprocess.Popen(
        [sys.executable, "-m", "graphrec", "ingest", *args, "--idle-exit", "0.5"],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _events_in(snapshot: CsrSnapshot) -> int:
    """Interactions (sum of edge counts) a graph holds."""
    actors = (NodeKind.USER, NodeKind.SESSION)
    return sum(int(r.count.sum()) for k, r in snapshot.relations.items() if k[0] in actors)


def _committed(store_dir: Path) -> int:
    if not (store_dir / "graph.sqlite").exists():
        return 0
    with open_store(f"sqlite://{store_dir}") as peek:
        return peek.stats().interactions


def _wait_for_progress(
    store_dir: Path, proc: subprocess.Popen[bytes], at_least: int, timeout_s: float = 60.0
) -> None:
    """Block until the child's graph holds ``at_least`` interactions; fail if it never will
    (the child exited short of it) or not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (done := _committed(store_dir)) < at_least:
        code = proc.poll()
        if code is not None and _committed(store_dir) < at_least:
            pytest.fail(f"the sink exited ({code}) with {done} of {at_least} interactions")
        if time.monotonic() > deadline:
            pytest.fail(f"the sink committed {done} of {at_least} interactions in {timeout_s} s")
        time.sleep(0.02)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kill_at=st.floats(min_value=0.0, max_value=0.8),
    batch_size=st.sampled_from([50, 200, 700]),
)
def test_sigkill_then_replay_gives_the_same_graph(
    produced: tuple[str, CsrSnapshot, Path], nodes: set[NodeRef], kill_at: float, batch_size: int
) -> None:
    """The kill lands once the graph holds at least ``kill_at`` of the events. Each run has
    its own change stream (one graph per stream)."""
    shared_log, reference, work = produced
    group, store_dir = f"g-{uuid.uuid4().hex[:8]}", work / uuid.uuid4().hex[:8]
    log_url = f"{shared_log}?changes=changes-{group}"
    proc = _start_sink(log_url, f"sqlite://{store_dir}", group, batch_size)
    _wait_for_progress(store_dir, proc, max(1, int(kill_at * _events_in(reference))))
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    with open_store(f"sqlite://{store_dir}") as store:
        ingest(log_url, store, group=group, batch_size=batch_size, idle_exit_s=0.3)
        assert_same_graph(store.snapshot(), reference)
        ends = EventLog(Path(shared_log.removeprefix("log://"))).end_offsets("events")
        marks = store.watermarks()
        assert all(marks[("events", p)] == end - 1 for p, end in ends.items() if end)
    assert_stream_covers(log_url, marks, nodes)


def test_a_kill_really_lands_mid_stream(produced: tuple[str, CsrSnapshot, Path]) -> None:
    """Guards the property test above: the child is killed with work still left to do."""
    log_url, reference, work = produced
    store_dir = work / "midstream"
    proc = _start_sink(log_url, f"sqlite://{store_dir}", "mid", 50)
    _wait_for_progress(store_dir, proc, 1)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    with open_store(f"sqlite://{store_dir}") as store:
        assert 0 < store.stats().interactions < _events_in(reference)

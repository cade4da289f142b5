"""Kill the sink process with SIGKILL at a random point, restart it: the graph is unaffected."""

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
from graphstore import CsrSnapshot, open_store
from streaming.log import EventLog
from tests.contract.test_graphstore_contract import assert_same_graph

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


def _wait_for_first_commit(store_dir: Path, proc: subprocess.Popen[bytes]) -> None:
    """Block until the child has committed something (so the kill lands mid-stream)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (store_dir / "graph.sqlite").exists():
            with open_store(f"sqlite://{store_dir}") as peek:
                if peek.stats().interactions:
                    return
        time.sleep(0.02)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    delay=st.floats(min_value=0.0, max_value=0.6),
    batch_size=st.sampled_from([50, 200, 700]),
)
def test_sigkill_then_replay_gives_the_same_graph(
    produced: tuple[str, CsrSnapshot, Path], delay: float, batch_size: int
) -> None:
    log_url, reference, work = produced
    group, store_dir = f"g-{uuid.uuid4().hex[:8]}", work / uuid.uuid4().hex[:8]
    proc = _start_sink(log_url, f"sqlite://{store_dir}", group, batch_size)
    _wait_for_first_commit(store_dir, proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    with open_store(f"sqlite://{store_dir}") as store:
        ingest(log_url, store, group=group, batch_size=batch_size, idle_exit_s=0.3)
        assert_same_graph(store.snapshot(), reference)
        ends = EventLog(Path(log_url.removeprefix("log://"))).end_offsets("events")
        marks = store.watermarks()
        assert all(marks[("events", p)] == end - 1 for p, end in ends.items() if end)


def test_a_kill_really_lands_mid_stream(produced: tuple[str, CsrSnapshot, Path]) -> None:
    """Guards the property test above: the child is killed with work still left to do."""
    log_url, reference, work = produced
    store_dir = work / "midstream"
    proc = _start_sink(log_url, f"sqlite://{store_dir}", "mid", 50)
    _wait_for_first_commit(store_dir, proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    with open_store(f"sqlite://{store_dir}") as store:
        done = store.stats().interactions
        total = sum(
            int(r.count.sum())
            for k, r in reference.relations.items()
            if k[0].value != "Item" and k[0].value != "Category"
        )
        assert 0 < done < total

"""Sink workers as one Kafka consumer group, on the real servers: three `graphrec ingest`
processes over a 6-partition topic, one killed with SIGKILL mid-stream and a fourth started;
the graph then matches the ledger exactly, the DLQ holds each poison record once and the
change stream they share names every node."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.ingest_group import end_offsets
from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import produce_dataset
from graphstore import GraphStore, TopicPartition
from streaming.changes import decode_change
from streaming.records import header
from streaming.topicread import read_topic
from streaming.urls import create_log_topics, parse_log_url
from tests.integration.servers import Servers
from tests.integration.test_kafka_neo4j import assert_matches_ledger
from tests.integration.waiting import wait_until
from tests.streaming.changestream import ledger

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 6
EVENTS = 200_000
POISON = 1_000
KILL_AFTER = 10_000  # records the victim has applied (graph-committed) when it is killed


class SinkProcess:
    """One `graphrec ingest --follow` process in the group, its metrics on a port of its own."""

    def __init__(self, url: str, store: str, group: str, log: Path) -> None:
        self.port = _free_port()
        self.log = log
        args = ["--from", url, "--store", store, "--group", group, "--batch-size", "2000"]
        args += ["--follow", "--metrics-port", str(self.port)]
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "graphrec", "ingest", *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def applied(self) -> int:
        """Records this process has written to the graph (0 until its /metrics answers)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return 0
        found = re.search(r"^graphrec_sink_applied_total (\S+)$", text, re.MULTILINE)
        return int(float(found.group(1))) if found else 0

    def stop(self) -> str:
        """SIGTERM, as a deployment stops a pod; returns its JSON summary line."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=120)
        assert self.process.returncode == 0, self.log.read_text()[-2_000:]
        return out.decode()


@pytest.fixture
def processes() -> Iterator[list[SinkProcess]]:
    """Sink processes a test starts; any still running when it ends are killed."""
    started: list[SinkProcess] = []
    yield started
    for sink in started:
        if sink.process.poll() is None:
            sink.process.kill()
            sink.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def all_consumed(store: GraphStore, ends: dict[TopicPartition, int]) -> bool:
    """The graph's watermark of every partition is at its last record."""
    marks = store.watermarks()
    return all(marks.get(tp, -1) == end - 1 for tp, end in ends.items() if end)


def test_ledger_holds_with_three_sinks_one_killed_and_a_fourth_joining(
    servers: Servers, neo4j: GraphStore, tmp_path: Path, processes: list[SinkProcess]
) -> None:
    run = uuid.uuid4().hex[:8]
    url = f"kafka://{servers.kafka}/events-{run}?items=items-{run}&changes=changes-{run}"
    address = parse_log_url(url)
    assert create_log_topics(url, PARTITIONS) == dict.fromkeys(address.topics, PARTITIONS)
    group = f"ledger-{run}"
    started = time.monotonic()
    # The sinks start (and join the group) while the events are generated and produced.
    sinks = processes
    sinks += [SinkProcess(url, servers.neo4j, group, tmp_path / f"sink-{i}.log") for i in range(3)]
    data = generate(SyntheticConfig(seed=31, events=EVENTS, users=10_000, items=5_000))
    produce_dataset(url, data, malformed=POISON, seed=31)
    ends = end_offsets(servers.kafka, list(address.topics))
    assert sum(ends.values()) == EVENTS + POISON + len(data.items)
    print(f"produced {time.monotonic() - started:.1f} s after the sinks started")
    victim = sinks[0]
    wait_until(
        f"the victim to commit {KILL_AFTER} records",
        lambda: victim.applied() >= KILL_AFTER or victim.process.poll() is not None,
        180,
    )
    print(f"victim killed {time.monotonic() - started:.1f} s after the sinks started")
    victim.process.send_signal(signal.SIGKILL)
    assert victim.process.wait(timeout=30) == -signal.SIGKILL
    assert not all_consumed(neo4j, ends), "the kill should land mid-stream"
    sinks.append(SinkProcess(url, servers.neo4j, group, tmp_path / "sink-3.log"))
    started = time.monotonic()
    wait_until("the group to consume every partition", lambda: all_consumed(neo4j, ends), 300)
    print(f"consumed {time.monotonic() - started:.1f} s after the fourth sink started")
    for sink in sinks[1:]:
        sink.stop()
        log = sink.log.read_text()
        assert "Deadlock" not in log and "Traceback" not in log, log[-2_000:]

    assert_matches_ledger(neo4j, data)
    letters = list(read_topic(f"kafka://{servers.kafka}", f"{address.events}.dlq"))
    origins = {
        (header(r.headers, "source.partition"), header(r.headers, "source.offset")) for r in letters
    }
    assert len(letters) == POISON
    assert len(origins) == POISON
    # Every sink published its commits' changes to the one change stream: it names every node.
    changes = read_topic(f"kafka://{servers.kafka}", address.changes)
    assert {decode_change(r).node for r in changes} == set(ledger(data.interactions, data.items))

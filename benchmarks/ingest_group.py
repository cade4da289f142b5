"""Events/s of 1..N `graphrec ingest` processes in one consumer group over a partitioned Kafka
topic, into Neo4j (``graphrec bench ingest --workers N``).

For each count of processes: new topics with ``partitions`` partitions are created empty, the
processes start (``--follow``) and join one group, and once the group is stable with all of
them the dataset is produced. The clock runs from the end of producing (the events the graph
holds then are left out) to the graph commit that reaches every partition's last record,
polled every ``POLL_S``: the group's steady rate, not that of process start-up, joining
rebalances or the producer competing for the CPU.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

from gnn.datasets import Dataset
from graphrec.pipeline import produce_dataset
from graphstore import GraphStore, TopicPartition
from streaming.urls import create_log_topics, parse_log_url

POLL_S = 0.1
TIMEOUT_S = 1_800.0


def group_rates(
    dataset: Dataset,
    bootstrap: str,
    store: GraphStore,
    workers: int,
    batch_size: int,
    partitions: int,
) -> dict[str, float]:
    """Events/s per count of sink processes (1 and ``workers``), keyed by the count."""
    rates: dict[str, float] = {}
    for count in sorted({1, workers}):
        run = f"bench-group-{count}-{uuid.uuid4().hex[:8]}"
        log_url = f"kafka://{bootstrap}/{run}-events?items={run}-items&changes={run}-changes"
        create_log_topics(log_url, partitions)
        store.reset()
        rate = _rate(dataset, log_url, store, count, batch_size, group=run)
        rates[str(count)] = round(rate, 1)
    return rates


def _rate(
    dataset: Dataset, log_url: str, store: GraphStore, count: int, batch_size: int, group: str
) -> float:
    args = ["--from", log_url, "--store", store.url, "--group", group]
    args += ["--batch-size", str(batch_size), "--follow"]
    command = [sys.executable, "-m", "graphrec", "ingest", *args]
    sinks = [subprocess.Popen(command, stdout=subprocess.DEVNULL) for _ in range(count)]
    try:
        bootstrap = parse_log_url(log_url).location
        _await(_GroupWatch(bootstrap, group, count), sinks, "the group to take in every process")
        produce_dataset(log_url, dataset)
        started, at_start = time.monotonic(), store.stats().interactions
        address = parse_log_url(log_url)
        ends = end_offsets(bootstrap, list(address.topics))
        _await(lambda: _at_end(store.watermarks(), ends), sinks, "the group to read everything")
        ended = time.monotonic()
    finally:
        for sink in sinks:
            sink.send_signal(signal.SIGTERM)
        codes = [sink.wait(timeout=120) for sink in sinks]
    if any(codes):
        raise RuntimeError(f"sink processes of {group} exited with {codes}")
    return (len(dataset.interactions) - at_start) / (ended - started)


def _await(done: Callable[[], bool], sinks: list[subprocess.Popen[bytes]], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {TIMEOUT_S:g} s waiting for {what}")
        if any(s.poll() is not None for s in sinks):
            codes = [s.returncode for s in sinks]
            raise RuntimeError(f"a sink process exited (codes {codes}) waiting for {what}")
        time.sleep(POLL_S)


class _GroupWatch:
    """Whether consumer group ``group`` is stable with ``members`` members."""

    def __init__(self, bootstrap: str, group: str, members: int) -> None:
        self.bootstrap, self.group, self.members = bootstrap, group, members

    def __call__(self) -> bool:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="graphrec-bench")
        try:
            (info,) = admin.describe_consumer_groups([self.group])
        finally:
            admin.close()
        return bool(info.state == "Stable" and len(info.members) == self.members)


def _at_end(marks: dict[TopicPartition, int], ends: dict[TopicPartition, int]) -> bool:
    return all(marks.get(tp, -1) >= end - 1 for tp, end in ends.items() if end)


def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    """Each partition's end offset in ``topics`` on the Kafka at ``bootstrap``."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaTP

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [KafkaTP(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        return {(tp.topic, tp.partition): int(o) for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()

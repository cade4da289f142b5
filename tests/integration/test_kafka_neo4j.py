"""Kafka → sink → Neo4j on the real servers: exactness, dead letters and faults.

Each test uses its own topics and consumer group; the Neo4j database is emptied first.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition

from gnn.datasets import Dataset, SyntheticConfig, generate, ledger_of
from graphrec.pipeline import ingest, open_sink, produce_dataset
from graphstore import GraphStore
from streaming.records import LogRecord, header
from streaming.urls import open_source
from tests.contract.test_graphstore_contract import edge_table
from tests.integration.servers import Servers, services
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def topics_url(servers: Servers) -> str:
    run = uuid.uuid4().hex[:8]
    return f"kafka://{servers.kafka}/events-{run}?items=items-{run}&changes=changes-{run}"


def assert_matches_ledger(store: GraphStore, data: Dataset) -> None:
    got = {k: v for k, v in edge_table(store.snapshot()).items() if k[0] in ("User", "Session")}
    expected = {
        (a.kind.value, a.key, rel, item): (agg.count, agg.first_ts, agg.last_ts)
        for (a, rel, item), agg in ledger_of(data.interactions).items()
    }
    assert len(got) == len(expected)
    assert got == expected


def topic_size(bootstrap: str, topic: str) -> int:
    """Records the topic holds: the sum of its partitions' end offsets."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def read_all(url: str, expected: int, timeout_s: float = 60.0) -> list[LogRecord]:
    """The first ``expected`` records from the start of the topics; fails if they do not come."""
    source = open_source(url, f"check-{uuid.uuid4().hex[:6]}")
    records: list[LogRecord] = []
    source.on_assign(lambda tps: [source.seek(tp, 0) for tp in tps])

    def read() -> bool:
        records.extend(source.poll(5_000, 0.5))
        return len(records) >= expected

    try:
        wait_until(f"{expected} records from {url}", read, timeout_s)
    finally:
        source.close()  # type: ignore[attr-defined]
    return records


def test_100k_events_through_kafka_into_neo4j_match_the_ledger(
    servers: Servers, neo4j: GraphStore
) -> None:
    data = generate(SyntheticConfig(seed=21, events=100_000, users=5_000, items=5_000))
    url = topics_url(servers)
    produce_dataset(url, data)
    summary = ingest(url, neo4j, group="it-100k", batch_size=2_000, idle_exit_s=5.0)
    assert summary.applied == 100_000 + len(data.items)
    assert summary.skipped_replayed == 0
    assert_matches_ledger(neo4j, data)


def test_poison_records_go_to_the_dead_letter_topic(servers: Servers, neo4j: GraphStore) -> None:
    data = generate(SyntheticConfig(seed=22, events=20_000))
    url = topics_url(servers)
    produce_dataset(url, data, malformed=1_000, seed=22)
    summary = ingest(url, neo4j, group="it-dlq", idle_exit_s=5.0)
    assert summary.dead_lettered == 1_000
    assert_matches_ledger(neo4j, data)
    events_topic = url.split("/")[-1].split("?")[0]
    assert topic_size(servers.kafka, f"{events_topic}.dlq") == 1_000
    letters = read_all(
        f"kafka://{servers.kafka}/{events_topic}.dlq?items=unused-{events_topic}", 1_000
    )
    assert len(letters) == 1_000 and all(r.topic.endswith(".dlq") for r in letters)
    assert all(header(r.headers, "error") for r in letters)
    assert {header(r.headers, "source.topic") for r in letters} == {events_topic.encode()}


def test_sink_killed_with_sigkill_then_restarted_gives_the_same_graph(
    servers: Servers, neo4j: GraphStore
) -> None:
    data = generate(SyntheticConfig(seed=23, events=30_000))
    url = topics_url(servers)
    produce_dataset(url, data)
    args = ["--from", url, "--store", servers.neo4j, "--group", "it-kill", "--batch-size", "300"]
    child = subprocess.Popen(
        [sys.executable, "-m", "graphrec", "ingest", *args, "--idle-exit", "30"]
    )
    # a few batches of 300 in, most of the 30,000 still to go: the kill lands mid-stream
    wait_until("the child's first batches", lambda: neo4j.stats().interactions >= 1_500, 120)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    partial = neo4j.stats().interactions
    assert 0 < partial < 30_000, "the kill should land mid-stream"
    ingest(url, neo4j, group="it-kill", idle_exit_s=20.0)  # the old member's session must expire
    assert_matches_ledger(neo4j, data)


KAFKA_OUTAGE_S = 5.0  # how long Kafka stays down; its consumers reconnect in the background


def listening(address: str) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


class FollowingSink:
    """A sink following a topic in a background thread, as `graphrec ingest --follow` runs."""

    def __init__(self, url: str, store: GraphStore, group: str) -> None:
        self.sink = open_sink(url, store, group)
        self.thread = threading.Thread(target=self.sink.run, daemon=True)
        self.thread.start()

    def wait_applied(self, records: int, timeout_s: float = 240.0) -> None:
        """Until the sink has applied ``records`` records (items and events) in all."""
        wait_until(
            f"the sink to apply {records} records (at {self.sink.stats.applied})",
            lambda: self.sink.stats.applied >= records,
            timeout_s,
        )

    def stop(self) -> None:
        self.sink.stop()
        self.thread.join(timeout=60)


@pytest.mark.parametrize("server", ["neo4j", "kafka"])
def test_server_outage_during_ingest_loses_and_duplicates_nothing(
    servers: Servers, neo4j: GraphStore, server: str
) -> None:
    data = generate(SyntheticConfig(seed=24, events=20_000))
    url = topics_url(servers)
    follower = FollowingSink(url, neo4j, group=f"it-outage-{server}")
    half = len(data.interactions) // 2
    first, second = data.interactions[:half], data.interactions[half:]
    produce_dataset(url, Dataset(data.name, data.items, first))
    follower.wait_applied(len(data.items) + half)
    services("down", server)
    try:
        if server == "neo4j":
            # events arrive while the graph is down: the sink's writes fail and it retries
            # (after the driver's own 30 s of retries, so the deadline is generous)
            retries = follower.sink.stats.retries
            produce_dataset(url, Dataset(data.name, [], second))
            wait_until("the sink to retry", lambda: follower.sink.stats.retries > retries, 150)
        else:
            wait_until("Kafka to stop listening", lambda: not listening(servers.kafka), 60)
            time.sleep(KAFKA_OUTAGE_S)  # the outage itself, not a wait for anything
        assert follower.thread.is_alive(), "the sink must ride out the outage"
    finally:
        services("up", server)  # a failure here must not take the server from later tests
    if server == "kafka":
        produce_dataset(url, Dataset(data.name, [], second))
    total = len(data.items) + len(data.interactions)
    follower.wait_applied(total)
    follower.stop()
    assert follower.sink.stats.applied == total  # each record applied once, replays skipped
    assert_matches_ledger(neo4j, data)


def test_neo4j_browser_is_served(servers: Servers) -> None:
    with urllib.request.urlopen(f"{servers.neo4j_http}/browser/", timeout=10) as response:
        assert response.status == 200
        assert b"Neo4j Browser" in response.read()

"""The sink's change stream on real Kafka: the topic is created with one partition and
compacted, the changes arrive (read by graphrec and, as JSON, by kcat from outside), and a
sink that dies between the graph commit and the publish has its batch published by the next."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import closing_all, ingest, open_sink, produce_dataset
from graphstore import open_store
from streaming.changes import Change, decode_change
from streaming.sink import SinkConfig
from streaming.urls import open_changes, parse_log_url
from tests.integration.servers import Servers
from tests.integration.waiting import wait_until
from tests.streaming.changestream import events_per_node, ledger
from tests.streaming.test_change_resume import DiesAtSend, Killed

pytestmark = pytest.mark.integration
KCAT = shutil.which("kcat") or "/usr/bin/kcat"
FORMAT = ("-f", "%k\t%s\n")  # key, tab, value: one record a line


def fresh_url(servers: Servers) -> str:
    run = uuid.uuid4().hex[:8]
    return f"kafka://{servers.kafka}/events-{run}?items=items-{run}&changes=changes-{run}"


def topic_layout(bootstrap: str, topic: str) -> tuple[int, str]:
    """(partitions, cleanup.policy) of ``topic`` as the broker describes it."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="graphrec-test")
    try:
        (described,) = admin.describe_topics([topic])
        wanted = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"cleanup.policy": None})
        (response,) = admin.describe_configs([wanted])
    finally:
        admin.close()
    (resource,) = response.resources
    entries = {entry[0]: entry[1] for entry in resource[4]}
    return len(described["partitions"]), entries["cleanup.policy"]


def read_changes(url: str, expected: int, timeout_s: float = 60.0) -> list[Change]:
    """The first ``expected`` records of the change stream, through graphrec's consumer."""
    source = open_changes(url, f"check-{uuid.uuid4().hex[:6]}")
    records = []

    def read() -> bool:
        records.extend(source.poll(5_000, 0.5))
        return len(records) >= expected

    with closing_all(source):
        wait_until(f"{expected} change records", read, timeout_s)
    return [decode_change(r) for r in records]


def kcat_read(bootstrap: str, topic: str) -> list[tuple[str, dict[str, object]]]:
    """(key, JSON value) of every record of ``topic``, read by kcat to its end."""
    out = subprocess.run(
        [KCAT, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", *FORMAT],
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout.decode()
    rows = [line.split("\t", 1) for line in out.splitlines() if line]
    return [(key, json.loads(value)) for key, value in rows]


def test_the_change_topic_is_compacted_and_the_changes_arrive(
    servers: Servers, tmp_path: Path
) -> None:
    data = generate(SyntheticConfig(seed=51, events=5_000, users=100, items=200))
    url = fresh_url(servers)
    topic = parse_log_url(url).changes
    produce_dataset(url, data)
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        summary = ingest(url, store, group="it-changes", batch_size=700, idle_exit_s=5.0)
        marks = store.watermarks()
    assert topic_layout(servers.kafka, topic) == (1, "compact")
    changes = read_changes(url, summary.changes_published)
    assert len(changes) == summary.changes_published > 0
    assert events_per_node(changes) == ledger(data.interactions, data.items)
    assert changes[-1].positions == marks
    outside = kcat_read(servers.kafka, topic)
    assert len(outside) == len(changes)
    for (key, body), change in zip(outside, changes, strict=True):
        assert key == f"{change.node.kind.value}:{change.node.key}"
        assert (body["kind"], body["id"], body["events"]) == (
            change.node.kind.value,
            change.node.key,
            change.events,
        )


def test_a_batch_applied_before_a_crash_is_published_by_the_next_sink(
    servers: Servers, tmp_path: Path
) -> None:
    data = generate(SyntheticConfig(seed=52, events=4_000, users=80, items=150))
    url = fresh_url(servers)
    produce_dataset(url, data)
    config = SinkConfig(batch_size=400, retry_initial_s=0.05)
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        first = open_sink(url, store, "it-crash", config)
        assert first.changes is not None
        first.changes.writer = DiesAtSend(first.changes.writer, at=4)
        with closing_all(first.source, first.dead_letters, first.changes), pytest.raises(Killed):
            first.run(idle_exit_s=10.0)
        published = first.stats.changes_published
        assert store.watermarks() != read_changes(url, published)[-1].positions
        second = open_sink(url, store, "it-crash", config)
        with closing_all(second.source, second.dead_letters, second.changes):
            second.run(idle_exit_s=10.0)
        assert store.stats().interactions == len(data.interactions)  # nothing applied twice
        total = len(data.interactions) + len(data.items)
        assert first.stats.applied + second.stats.applied == total
        assert second.stats.skipped_replayed > 0
        marks = store.watermarks()
    changes = read_changes(url, published + second.stats.changes_published)
    assert events_per_node(changes) == ledger(data.interactions, data.items)
    assert changes[-1].positions == marks

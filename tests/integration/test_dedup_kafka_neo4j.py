"""Resent events through real Kafka into Neo4j: JSON events sent with kcat, as users send
them, 10% of them twice (same event id, new offset), the sink process restarted in between."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence

import pytest

from gnn.datasets import Dataset, SyntheticConfig, generate
from graphrec.pipeline import produce_dataset
from graphstore import GraphStore, Interaction
from streaming.codec import event_to_json
from streaming.kafka import ensure_topics
from tests.integration.servers import Servers
from tests.integration.test_kafka_neo4j import assert_matches_ledger
from tests.integration.waiting import wait_until
from tests.streaming.resent import with_resends

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KCAT = shutil.which("kcat") or "/usr/bin/kcat"


def kcat_produce(bootstrap: str, topic: str, events: Sequence[Interaction]) -> None:
    """One JSON event a line, keyed by actor id, through kcat (librdkafka, no idempotence)."""
    lines = b"".join(e.actor.key.encode() + b"\t" + event_to_json(e) + b"\n" for e in events)
    subprocess.run(
        [KCAT, "-P", "-b", bootstrap, "-t", topic, "-K", "\t"], input=lines, check=True, timeout=120
    )


def start_sink(url: str, store: str, group: str, *extra: str) -> subprocess.Popen[bytes]:
    args = ["--from", url, "--store", store, "--group", group, "--batch-size", "700", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "graphrec", "ingest", *args], stdout=subprocess.PIPE
    )


def summary_of(proc: subprocess.Popen[bytes]) -> dict[str, int]:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"the sink exited with {proc.returncode}"
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def consumed(store: GraphStore, topic: str) -> int:
    """Records of ``topic`` the graph's watermarks cover."""
    return sum(o + 1 for (t, _), o in store.watermarks().items() if t == topic)


def test_duplicate_ledger_across_a_sink_restart(servers: Servers, neo4j: GraphStore) -> None:
    data = generate(SyntheticConfig(seed=31, events=10_000))
    first, second = data.interactions[:5_000], data.interactions[5_000:]
    feed_1 = with_resends(first, 0.1, seed=1)
    feed_2 = with_resends(second, 0.05, seed=2, also=first[:250])
    run = uuid.uuid4().hex[:8]
    events, items = f"events-{run}", f"items-{run}"
    url = f"kafka://{servers.kafka}/{events}?items={items}&changes=changes-{run}"
    ensure_topics(servers.kafka, [events, items])
    produce_dataset(url, Dataset(data.name, data.items, []))
    group = f"it-dedup-{run}"

    sink = start_sink(url, servers.neo4j, group, "--follow")
    kcat_produce(servers.kafka, events, feed_1)
    wait_until("the sink to take the first half", lambda: consumed(neo4j, events) == 5_500, 180)
    sink.send_signal(signal.SIGTERM)  # the restart: this process stops, a new one takes over
    before = summary_of(sink)

    kcat_produce(servers.kafka, events, feed_2)
    after = summary_of(start_sink(url, servers.neo4j, group, "--idle-exit", "10"))

    assert consumed(neo4j, events) == 11_000
    assert_matches_ledger(neo4j, data)
    assert (before["skipped_duplicate"], after["skipped_duplicate"]) == (500, 500)
    assert before["skipped_replayed"] == after["skipped_replayed"] == 0

"""A rebalance that hands the sink its partitions again does not make it re-read records it
already has in hand (they used to come back as ``skipped_replayed``)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import open_sink, produce_dataset
from graphstore import open_store
from streaming.kafka import KafkaSource
from streaming.sink import SinkConfig
from tests.integration.servers import Servers
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration


def test_reassigned_partitions_are_not_read_twice(servers: Servers, tmp_path: Path) -> None:
    data = generate(SyntheticConfig(seed=41, events=30_000))
    run = uuid.uuid4().hex[:8]
    url = f"kafka://{servers.kafka}/events-{run}?items=items-{run}&changes=changes-{run}"
    produce_dataset(url, data)
    group = f"rebalance-{run}"
    total = len(data.items) + len(data.interactions)
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        sink = open_sink(url, store, group, SinkConfig(batch_size=300))
        thread = threading.Thread(target=sink.run, daemon=True)
        thread.start()
        try:
            wait_until("the first batches", lambda: sink.stats.applied >= 600, 60)
            # A second member joins (partitions move) and leaves (they come back) mid-stream.
            other = KafkaSource(servers.kafka, group, [f"events-{run}", f"items-{run}"])
            deadline = time.monotonic() + 60
            while not other.assignment():
                assert time.monotonic() < deadline, "the second member got no partitions"
                other.poll(1, 0.2)
            other.close()
            wait_until("the whole backlog", lambda: sink.stats.applied >= total, 120)
        finally:
            sink.stop()
            thread.join(timeout=30)
            sink.source.close()  # type: ignore[attr-defined]
            sink.dead_letters.close()  # type: ignore[attr-defined]
        assert sink.stats.applied == total
        assert sink.stats.skipped_replayed == 0
        assert store.stats().interactions == len(data.interactions)

"""The gap test on the real servers: events applied after the training snapshot, before and
while the server starts, reach the item table through Kafka, the sink, its change stream on
Kafka and Neo4j (tests/serving/test_gap.py runs it on the embedded backend)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gnn.datasets import SyntheticConfig, generate
from gnn.train import TrainConfig
from gnn.trainer import train_once
from graphrec.pipeline import ingest, produce_dataset
from graphstore import GraphStore, Interaction, ItemRecord
from graphstore.neo4j import Neo4jGraphStore
from streaming.codec import encode_event, encode_item
from streaming.records import OutRecord
from streaming.urls import open_writer, parse_log_url
from tests.integration.servers import Servers
from tests.serving.test_gap import GapWorld, check_the_gap_is_closed

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_changes_after_the_training_snapshot_reach_the_item_table(
    servers: Servers, neo4j: GraphStore, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    log_url = (
        f"kafka://{servers.kafka}/gap-{run}-events?items=gap-{run}-items&changes=gap-{run}-changes"
    )
    address = parse_log_url(log_url)
    dataset = generate(SyntheticConfig(seed=3, events=6_000, users=300, items=400))
    produce_dataset(log_url, dataset)
    ingest(log_url, neo4j, group=f"sink-{run}", idle_exit_s=2.0)
    train_once(neo4j.snapshot(), TrainConfig(epochs=20, seed=0), tmp_path / "models")
    writer = open_writer(log_url)

    def publish(events: list[Interaction], items: list[ItemRecord]) -> None:
        if items:
            writer.send(
                address.items, [OutRecord(encode_item(i), i.item_id.encode()) for i in items]
            )
        if events:
            writer.send(
                address.events,
                [OutRecord(encode_event(e), e.actor.key.encode()) for e in events],
            )
        with Neo4jGraphStore.from_url(servers.neo4j) as sink_store:
            ingest(log_url, sink_store, group=f"sink-{run}", idle_exit_s=2.0)

    check_the_gap_is_closed(
        GapWorld(
            log_url,
            tmp_path / "models",
            dataset,
            lambda: Neo4jGraphStore.from_url(servers.neo4j),
            publish,
        )
    )

"""Neo4j stopped under a running server (issue 22, item 2): Recommend answers within
min(deadline, 2 s) from what needs no store, health turns NOT_SERVING within 5 s, and both
come back by themselves within 10 s of Neo4j returning.

Stops and starts the shared Neo4j: run under the servers' lock, e.g.
``flock /tmp/graphrec-servers.lock python -m pytest -m integration tests/faults``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gnn.datasets import Dataset, SyntheticConfig, generate
from gnn.train import TrainConfig
from gnn.trainer import train_once
from graphrec.pipeline import ingest, produce_dataset
from graphstore import NodeKind
from graphstore.neo4j import Neo4jGraphStore
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.server import ServerConfig
from tests.integration.servers import Servers, services
from tests.serving.test_store_down import NOT_SERVING, SERVING, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Live:
    def __init__(self, store: Neo4jGraphStore, models: Path, dataset: Dataset) -> None:
        self.store, self.dataset = store, dataset
        self.serving = Serving(store, models, config=ServerConfig("127.0.0.1:0"))
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.serving.start()}")
        self.stub = pb_grpc.RecommenderStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def status(self) -> int:
        request = health_pb2.HealthCheckRequest(service="graphrec.v1.Recommender")
        return int(self.health.Check(request, timeout=2).status)

    def recommend(self, timeout_s: float, **subject: str) -> tuple[pb.RecommendResponse, float]:
        started = time.monotonic()
        request = pb.RecommendRequest(subject=pb.Subject(**subject), k=5)
        return self.stub.Recommend(request, timeout=timeout_s), time.monotonic() - started


@pytest.fixture
def live(servers: Servers, tmp_path: Path) -> Iterator[Live]:
    dataset = generate(SyntheticConfig(seed=5, events=3_000, users=200, items=200))
    log_url = f"log://{tmp_path / 'log'}"
    produce_dataset(log_url, dataset)
    store = Neo4jGraphStore.from_url(servers.neo4j)
    store.reset()
    ingest(log_url, store, group="sink", idle_exit_s=0.3)
    train_once(store.snapshot(), TrainConfig(epochs=5, seed=0), tmp_path / "models")
    live = Live(store, tmp_path / "models", dataset)
    try:
        wait_until(lambda: live.status() == SERVING, 30, "SERVING once the model is loaded")
        yield live
    finally:
        live.channel.close()
        live.serving.stop()
        store.close()


def test_neo4j_down_answers_fast_flips_health_and_recovers(live: Live) -> None:
    user = next(i.actor.key for i in live.dataset.interactions if i.actor.kind is NodeKind.USER)
    item = live.dataset.items[0].item_id
    assert not live.recommend(5, user_id=user)[0].fallback
    try:
        services("down", "neo4j")
        down_at = time.monotonic()
        answer, took = live.recommend(5, user_id=user)
        assert answer.fallback and answer.fallback_reason.startswith("graph store unavailable")
        assert took < 2.0, f"Recommend took {took:.2f} s with Neo4j down"
        short, took_short = live.recommend(1, user_id=user)  # a 1 s deadline is met too
        assert short.fallback and took_short < 1.0
        similar, _ = live.recommend(5, item_id=item)
        assert len(similar.items) == 5 and not similar.fallback
        wait_until(lambda: live.status() == NOT_SERVING, 5, "NOT_SERVING")
        flipped = time.monotonic() - down_at
        assert flipped < 5.0
        metrics = live.serving.metrics.registry
        assert metrics.get_sample_value("graphrec_store_up") == 0
    finally:
        services("up", "neo4j")
    up_at = time.monotonic()
    wait_until(lambda: live.status() == SERVING, 10, "SERVING after Neo4j returned")
    back = time.monotonic() - up_at
    wait_until(lambda: not live.recommend(5, user_id=user)[0].fallback, 10, "personalised")
    print(  # the measured figures, for the record (pytest -s)
        f"Neo4j down: Recommend {took:.3f} s (1 s deadline: {took_short:.3f} s), "
        f"NOT_SERVING after {flipped:.2f} s; SERVING {back:.2f} s after Neo4j was up"
    )

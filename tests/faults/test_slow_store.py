"""A slow graph store under a running server (issue 22, fault suite): Neo4j reached through
a proxy that delays its answers. Recommend for a user answers within the request's store
bound plus a margin, from what needs no store, and personalised answers return by
themselves once the store is fast again. Nothing is stopped: safe beside other tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from gnn.datasets import SyntheticConfig, generate
from gnn.train import TrainConfig
from gnn.trainer import train_once
from graphrec.pipeline import ingest, produce_dataset
from graphstore import NodeKind
from graphstore.neo4j import Neo4jGraphStore
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.recommender import RecommenderConfig
from serving.server import ServerConfig
from tests.faults.latency_proxy import LatencyProxy
from tests.integration.servers import Servers
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BOUND_S = 0.5  # the request's store bound under test


@pytest.fixture
def slow_store(servers: Servers, tmp_path: Path) -> Iterator[tuple[LatencyProxy, Path, str]]:
    dataset = generate(SyntheticConfig(seed=7, events=3_000, users=200, items=200))
    log_url = f"log://{tmp_path / 'log'}"
    produce_dataset(log_url, dataset)
    with Neo4jGraphStore.from_url(servers.neo4j) as direct:
        direct.reset()
        ingest(log_url, direct, group="sink", idle_exit_s=0.3)
        train_once(direct.snapshot(), TrainConfig(epochs=3, seed=0), tmp_path / "models")
    bolt = urlsplit(servers.neo4j)
    user = next(i.actor.key for i in dataset.interactions if i.actor.kind is NodeKind.USER)
    with LatencyProxy((bolt.hostname or "127.0.0.1", bolt.port or 7687)) as proxy:
        yield proxy, tmp_path / "models", user


def _recommend(stub: pb_grpc.RecommenderStub, user: str) -> tuple[pb.RecommendResponse, float]:
    started = time.monotonic()
    answer = stub.Recommend(pb.RecommendRequest(subject=pb.Subject(user_id=user), k=5), timeout=10)
    return answer, time.monotonic() - started


def test_a_slow_store_costs_a_request_at_most_its_bound(
    slow_store: tuple[LatencyProxy, Path, str], servers: Servers
) -> None:
    proxy, models, user = slow_store
    scheme = urlsplit(servers.neo4j).scheme
    store = Neo4jGraphStore.from_url(f"{scheme}://127.0.0.1:{proxy.port}")
    serving = Serving(
        store,
        models,
        RecommenderConfig(store_timeout_s=BOUND_S),
        ServerConfig("127.0.0.1:0"),
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{serving.start()}")
    stub = pb_grpc.RecommenderStub(channel)
    try:
        wait_until("a personalised answer", lambda: not _recommend(stub, user)[0].fallback, 30)
        proxy.delay_s = 3 * BOUND_S
        answer, took = _recommend(stub, user)
        assert answer.fallback and answer.fallback_reason, answer
        assert len(answer.items) == 5
        assert took < BOUND_S + 1.0, f"Recommend took {took:.2f} s behind a slow store"
        proxy.delay_s = 0.0
        wait_until("personalised again", lambda: not _recommend(stub, user)[0].fallback, 15)
    finally:
        channel.close()
        serving.stop()
        store.close()

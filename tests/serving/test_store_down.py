"""The service while its graph store does not answer: prompt answers from what needs no
store, NOT_SERVING health, and recovery by itself once the store answers again.

The store is the embedded one, unplugged by a wrapper whose store calls raise what the
bounded Neo4j view raises when the server is down (the store is not what is under test; the
Neo4j bound is tested in tests/faults against a stopped Neo4j)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from graphstore import GraphStore, GraphStoreError, Neighbourhood, open_store
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.server import ServerConfig
from tests.serving.conftest import World
from tests.serving.test_service import session, user_with_most_items

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Unpluggable:
    """The served graph store; while ``down``, its reads fail as an unreachable one's do."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self.down = False
        self.calls_while_down = 0

    def neighbourhood(self, *args: Any, **kwargs: Any) -> Neighbourhood:
        if self.down:
            self.calls_while_down += 1
            raise GraphStoreError("cannot reach the graph store: connection refused")
        return self.store.neighbourhood(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class Running:
    def __init__(self, world: World) -> None:
        self.store = Unpluggable(open_store(world.store_url))
        self.serving = Serving(
            self.store,  # type: ignore[arg-type]
            world.models,
            config=ServerConfig(address="127.0.0.1:0"),
            reload_every_s=0.2,
        )
        port = self.serving.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.RecommenderStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def status(self) -> int:
        request = health_pb2.HealthCheckRequest(service="graphrec.v1.Recommender")
        return int(self.health.Check(request, timeout=2).status)

    def store_up(self) -> float | None:
        return self.serving.metrics.registry.get_sample_value("graphrec_store_up")

    def close(self) -> None:
        self.channel.close()
        self.serving.stop()
        self.store.store.close()


@pytest.fixture
def running(world: World) -> Iterator[Running]:
    r = Running(world)
    try:
        wait_until(lambda: r.status() == SERVING, 10, "SERVING once the model is loaded")
        yield r
    finally:
        r.store.down = False
        r.close()


def wait_until(condition: Any, timeout_s: float, what: str) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"not {what} within {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - started


def recommend(r: Running, **subject: Any) -> tuple[pb.RecommendResponse, float]:
    started = time.monotonic()
    answer = r.stub.Recommend(pb.RecommendRequest(subject=pb.Subject(**subject), k=5), timeout=5)
    return answer, time.monotonic() - started


def test_health_turns_not_serving_while_the_store_is_down_and_back(running: Running) -> None:
    running.store.down = True
    flipped = wait_until(lambda: running.status() == NOT_SERVING, 5, "NOT_SERVING")
    assert running.store_up() == 0
    running.store.down = False
    back = wait_until(lambda: running.status() == SERVING, 10, "SERVING again")
    assert running.store_up() == 1
    assert flipped < 5 and back < 10


def test_a_user_gets_popular_items_at_once_saying_why(running: Running, world: World) -> None:
    user = user_with_most_items(world)
    assert not recommend(running, user_id=user)[0].fallback
    running.store.down = True
    for _ in range(2):  # the first finds out by asking; the next by the probe, or asking
        answer, took = recommend(running, user_id=user)
        assert answer.fallback and len(answer.items) == 5
        assert answer.fallback_reason.startswith("graph store unavailable")
        assert took < 2.0
    wait_until(lambda: running.status() == NOT_SERVING, 5, "NOT_SERVING")
    asked = running.store.calls_while_down
    answer, took = recommend(running, user_id=user)
    assert answer.fallback and took < 2.0
    assert running.store.calls_while_down == asked  # the probe said down: not even asked
    down_answers = running.serving.metrics.registry.get_sample_value(
        "graphrec_store_unavailable_answers_total"
    )
    assert down_answers is not None and down_answers >= 3
    running.store.down = False
    wait_until(lambda: running.status() == SERVING, 10, "SERVING again")
    assert not recommend(running, user_id=user)[0].fallback


def test_items_and_session_events_are_answered_from_the_table(
    running: Running, world: World
) -> None:
    item = world.dataset.items[0].item_id
    similar_before = recommend(running, item_id=item)[0]
    running.store.down = True
    similar, _ = recommend(running, item_id=item)  # needs no store: the same answer
    assert [i.item_id for i in similar.items] == [i.item_id for i in similar_before.items]
    assert not similar.fallback
    clicks = [i.item_id for i in world.dataset.items[:3]]
    answer, took = recommend(running, session=session("s-known", clicks))
    assert not answer.fallback and len(answer.items) == 5 and took < 2.0
    assert answer.fallback_reason.endswith("answered from the request's events only")
    assert not {i.item_id for i in answer.items} & set(clicks)


def test_explain_and_score_fail_fast_as_unavailable(running: Running, world: World) -> None:
    user = user_with_most_items(world)
    item = world.dataset.items[0].item_id
    running.store.down = True
    calls = (
        lambda: running.stub.Explain(
            pb.ExplainRequest(subject=pb.Subject(user_id=user), item_id=item), timeout=5
        ),
        lambda: running.stub.ScoreItems(
            pb.ScoreItemsRequest(subject=pb.Subject(user_id=user), item_ids=[item]), timeout=5
        ),
    )
    for call in calls:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as failure:
            call()
        assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "graph store unavailable" in (failure.value.details() or "")
        assert time.monotonic() - started < 2.0

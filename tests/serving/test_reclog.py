"""The recommendation log: every Recommend answer as a record, written off the request path;
a stuck, failing or unopenable log never holds up or fails a request, and what it does not
write is counted (the ledger: written + dropped = answered)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from graphrec.reclog import log_config
from graphstore import open_store
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.logrecord import RECOMMENDATIONS_TOPIC, decode
from serving.loops import LoopMetrics, LoopState
from serving.reclog import (
    LOOP_NAME,
    Publish,
    RecommendationLog,
    RecommendationLogConfig,
    request_id,
)
from serving.server import ServerConfig
from serving.types import SubjectKind
from streaming.log import EventLog
from tests.integration.waiting import wait_until
from tests.serving.conftest import World
from tests.serving.test_service import session, user_with_most_items

Records = Sequence[tuple[bytes, bytes]]


class Logged:
    """A service whose Recommend answers go to ``config``'s log."""

    def __init__(self, world: World, config: RecommendationLogConfig) -> None:
        self.store = open_store(world.store_url)
        self.serving = Serving(
            self.store,
            world.models,
            config=ServerConfig(address="127.0.0.1:0"),
            recommendation_log=config,
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.serving.start()}")
        self.stub = pb_grpc.RecommenderStub(self.channel)

    def metric(self, name: str, **labels: str) -> float:
        value = self.serving.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def written(self) -> float:
        return self.metric("graphrec_recommendation_log_records_total")

    def dropped(self, reason: str) -> float:
        return self.metric("graphrec_recommendation_log_dropped_total", reason=reason)

    def all_dropped(self) -> float:
        return sum(self.dropped(r) for r in ("full", "write_failed", "unreadable", "stopped"))

    def ask(self, n: int, user: str) -> None:
        """``n`` Recommend calls, each answered within its 5 s deadline (or the test fails)."""
        for i in range(n):
            request = pb.RecommendRequest(subject=pb.Subject(user_id=user), k=5)
            assert self.stub.Recommend(request, timeout=5.0).items, i


@contextmanager
def logged(world: World, config: RecommendationLogConfig) -> Iterator[Logged]:
    running = Logged(world, config)
    try:
        yield running
    finally:
        running.channel.close()
        running.serving.stop()
        running.store.close()


def test_every_answer_is_logged_as_it_was_answered(world: World, tmp_path: Path) -> None:
    user = user_with_most_items(world)
    item = next(iter(world.dataset.items)).item_id
    asked = [
        ({"user_id": user}, (("x-request-id", "checkout-42"),)),
        ({"session": session("s-1", [item])}, ()),
        ({"item_id": item}, ()),
    ]
    with logged(world, log_config(f"log://{tmp_path / 'log'}")) as running:
        answers = []
        before = time.time()
        for subject, metadata in asked:
            request = pb.RecommendRequest(subject=pb.Subject(**subject), k=4)
            response, call = running.stub.Recommend.with_call(request, metadata=metadata)
            answers.append((response, dict(call.trailing_metadata())["x-request-id"]))
        after = time.time()
        wait_until("three records written", lambda: running.written() == 3, 10)
    log = EventLog(tmp_path / "log")
    values = [
        r
        for p in range(log.partitions(RECOMMENDATIONS_TOPIC))
        for r in log.read((RECOMMENDATIONS_TOPIC, p), 0, 100)
    ]
    records = {decode(r.value).request_id: (r.key, decode(r.value)) for r in values}
    assert answers[0][1] == "checkout-42"
    assert len({rid for _, rid in answers[1:]} | {"checkout-42"}) == 3
    kinds = [
        (SubjectKind.USER, user),
        (SubjectKind.SESSION, "s-1"),
        (SubjectKind.ITEM, item),
    ]
    for (response, rid), (kind, key) in zip(answers, kinds, strict=True):
        partition_key, record = records[rid]
        assert partition_key == f"{kind}:{key}".encode()
        assert (record.subject_kind, record.subject_id) == (kind, key)
        assert record.items == tuple(i.item_id for i in response.items)
        assert record.scores == pytest.approx([i.score for i in response.items], rel=1e-6)
        assert record.model_version == response.model_version
        assert record.fallback == response.fallback
        assert record.arm == "primary"
        assert before <= record.ts <= after and record.latency_ms > 0


def stuck() -> tuple[RecommendationLogConfig, threading.Event, list[bytes]]:
    """A log whose writes wait until the event is set; what it took."""
    release, taken = threading.Event(), []

    def publish(records: Records) -> None:
        release.wait()
        taken.extend(value for _, value in records)

    config = RecommendationLogConfig(lambda: publish, capacity=5, max_batch=2, linger_s=0.0)
    return config, release, taken


def test_a_stuck_log_never_holds_up_a_request_and_counts_what_it_drops(world: World) -> None:
    config, release, taken = stuck()
    with logged(world, config) as running:
        try:
            running.ask(30, user_with_most_items(world))
            assert running.written() == 0
            # at most the queue's capacity and the batch in the stuck write are kept
            assert running.dropped("full") >= 30 - 5 - 2
        finally:
            release.set()
        wait_until(
            "every answer written or dropped",
            lambda: len(taken) + running.dropped("full") == 30,
            10,
        )
        assert running.written() == len(taken) >= 5


def failing_then(working: threading.Event, fails: Callable[[], None]) -> Publish:
    def publish(records: Records) -> None:
        if not working.is_set():
            fails()

    return publish


def test_a_failing_log_drops_its_batches_shows_down_and_recovers(world: World) -> None:
    working = threading.Event()

    def refuse() -> None:
        raise ConnectionError("broker unavailable")

    config = RecommendationLogConfig(
        lambda: failing_then(working, refuse), capacity=100, max_batch=3, linger_s=0.0, attempts=2
    )
    user = user_with_most_items(world)
    with logged(world, config) as running:
        health = health_pb2_grpc.HealthStub(running.channel)

        def status() -> int:
            name = f"graphrec.v1.Recommender/{LOOP_NAME}"
            return int(health.Check(health_pb2.HealthCheckRequest(service=name)).status)

        loop = {"loop": LOOP_NAME}
        running.ask(6, user)
        wait_until("a batch dropped", lambda: running.dropped("write_failed") >= 3, 20)
        assert running.metric("graphrec_background_failures_total", **loop) >= 2
        assert running.metric("graphrec_background_up", **loop) == 0
        assert status() == health_pb2.HealthCheckResponse.NOT_SERVING
        working.set()
        running.ask(4, user)
        wait_until("the log to write again", lambda: running.written() >= 4, 30)
        assert running.metric("graphrec_background_up", **loop) == 1
        assert status() == health_pb2.HealthCheckResponse.SERVING
        wait_until(
            "the ledger to balance", lambda: running.written() + running.all_dropped() == 10, 10
        )


def test_a_log_that_cannot_be_opened_is_opened_again_later(world: World) -> None:
    tries = []

    def connect() -> Publish:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise ConnectionError("no brokers available")
        return lambda records: None

    config = RecommendationLogConfig(connect, capacity=100, linger_s=0.0)
    with logged(world, config) as running:
        running.ask(5, user_with_most_items(world))
        wait_until("the five answers written", lambda: running.written() == 5, 20)
        assert len(tries) == 3


def test_unreadable_answers_are_counted_and_left_out() -> None:
    registry = CollectorRegistry()
    published: list[bytes] = []
    reclog = RecommendationLog(
        RecommendationLogConfig(lambda: lambda rs: published.extend(v for _, v in rs)), registry
    )
    reclog.start(LoopState(LOOP_NAME, LoopMetrics(registry)))
    good = pb.RecommendRequest(subject=pb.Subject(user_id="u")).SerializeToString()
    answer = pb.RecommendResponse(model_version="v1").SerializeToString()
    reclog.answered(b"\x0a\x05ab", answer, "truncated", 0.001)  # a field cut short
    reclog.answered(good, answer, "fine", 0.001)
    reclog.stop()
    assert [decode(v).request_id for v in published] == ["fine"]
    dropped = registry.get_sample_value(
        "graphrec_recommendation_log_dropped_total", {"reason": "unreadable"}
    )
    assert dropped == 1


def test_stop_counts_what_was_still_queued() -> None:
    registry = CollectorRegistry()
    config, release, _ = stuck()
    reclog = RecommendationLog(config, registry)
    reclog.start(LoopState(LOOP_NAME, LoopMetrics(registry)))
    raw = pb.RecommendRequest(subject=pb.Subject(user_id="u")).SerializeToString()

    def waiting() -> float | None:
        return registry.get_sample_value("graphrec_recommendation_log_waiting")

    try:
        for n in range(2):
            reclog.answered(raw, b"", str(n), 0.001)
        wait_until("the writer to take a batch", lambda: waiting() == 0, 5)
        for n in range(4):
            reclog.answered(raw, b"", str(n), 0.001)
        assert waiting() == 4
        reclog.stop(timeout_s=0.2)
    finally:
        release.set()
    stopped = registry.get_sample_value(
        "graphrec_recommendation_log_dropped_total", {"reason": "stopped"}
    )
    assert stopped == 4


def test_request_ids_are_the_callers_or_new() -> None:
    assert request_id((("authorization", "x"), ("x-request-id", "r-1"))) == "r-1"
    made = {request_id(m) for m in (None, (("x-request-id", ""),), (("x-request-id", "x" * 129),))}
    assert len(made) == 3 and all(len(m) == 32 for m in made)
    assert request_id((("x-request-id", "tab\there"),)) != "tab\there"

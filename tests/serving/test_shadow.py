"""``serve --shadow``: every answered request scored again by a pinned version off the request
path, its list logged beside the served one (same request id, arm ``shadow``); a stuck shadow
never holds up an answer, and what it cannot take is dropped and counted."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from gnn.checkpoint import current_version
from graphrec.reclog import log_config
from graphstore import open_store
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.logrecord import RECOMMENDATIONS_TOPIC, LoggedRecommendation, decode
from serving.pinned import load_pinned, with_shadow
from serving.recommender import Recommender
from serving.server import ServerConfig
from serving.shadow import Shadow, ShadowConfig
from serving.types import Query, Recommendation
from streaming.log import EventLog
from tests.integration.waiting import wait_until
from tests.serving.conftest import World
from tests.serving.test_service import user_with_most_items

OTHER = "other-version"


def models_with_another_version(world: World, root: Path) -> Path:
    """A copy of the world's models directory that also holds its version as ``OTHER``."""
    models = root / "models"
    shutil.copytree(world.models, models)
    served = current_version(models)
    assert served is not None
    shutil.copytree(models / served, models / OTHER)
    return models


class Running:
    """A service on ``models`` logging to ``log_dir``, with a hook to pin a version."""

    def __init__(self, world: World, models: Path, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.store = open_store(world.store_url)
        self.serving = Serving(
            self.store,
            models,
            config=ServerConfig(address="127.0.0.1:0"),
            recommendation_log=log_config(f"log://{log_dir}"),
        )
        self.other = load_pinned(models, OTHER, 20_000)
        self.channel: grpc.Channel | None = None

    def start(self) -> pb_grpc.RecommenderStub:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.serving.start()}")
        return pb_grpc.RecommenderStub(self.channel)

    def metric(self, name: str, **labels: str) -> float:
        return self.serving.metrics.registry.get_sample_value(name, labels) or 0.0

    def records(self) -> list[LoggedRecommendation]:
        log = EventLog(self.log_dir)
        return [
            decode(r.value)
            for p in range(log.partitions(RECOMMENDATIONS_TOPIC))
            for r in log.read((RECOMMENDATIONS_TOPIC, p), 0, 10_000)
        ]

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.serving.stop()
        self.store.close()


@contextmanager
def running(world: World, tmp_path: Path) -> Iterator[Running]:
    service = Running(world, models_with_another_version(world, tmp_path), tmp_path / "log")
    try:
        yield service
    finally:
        service.close()


def ask(stub: pb_grpc.RecommenderStub, user: str, n: int) -> list[tuple[pb.RecommendResponse, str]]:
    """``n`` Recommend calls answered within a 5 s deadline: (answer, request id) each."""
    out = []
    for i in range(n):
        request = pb.RecommendRequest(subject=pb.Subject(user_id=user), k=5)
        metadata = (("x-request-id", f"req-{i}"),)
        response, _ = stub.Recommend.with_call(request, timeout=5.0, metadata=metadata)
        out.append((response, f"req-{i}"))
    return out


def test_the_shadow_logs_its_list_beside_the_served_one(world: World, tmp_path: Path) -> None:
    with running(world, tmp_path) as service:
        shadow = with_shadow(service.serving, service.other)
        stub = service.start()
        shadow.start()
        try:
            answers = ask(stub, user_with_most_items(world), 6)
            wait_until(
                "12 records logged",
                lambda: service.metric("graphrec_recommendation_log_records_total") == 12,
                15,
            )
        finally:
            shadow.stop()
        records = service.records()
    served = service.serving.registry.version
    by_arm = {(r.request_id, r.arm): r for r in records}
    assert len(by_arm) == 12
    for response, rid in answers:
        primary, scored = by_arm[rid, "primary"], by_arm[rid, "shadow"]
        assert primary.model_version == response.model_version == served
        assert scored.model_version == OTHER
        assert primary.items == tuple(i.item_id for i in response.items)
        # the other version is a copy of the served one: the same list, in the same order
        assert scored.items == primary.items and scored.subject_id == primary.subject_id
        assert scored.ts == pytest.approx(primary.ts, abs=1.0)
    assert service.metric("graphrec_shadow_scored_total") == 6


class Stuck:
    """A recommender whose answers wait until ``release`` is set."""

    def __init__(self, real: Recommender) -> None:
        self.real, self.release, self.taken = real, threading.Event(), 0

    def recommend_many(self, queries: Sequence[Query]) -> list[Recommendation | Exception]:
        self.taken += len(queries)
        self.release.wait()
        return self.real.recommend_many(queries)


def test_a_stuck_shadow_never_holds_up_an_answer_and_counts_its_drops(
    world: World, tmp_path: Path
) -> None:
    with running(world, tmp_path) as service:
        config = ShadowConfig(capacity=3, max_batch=1, linger_s=0.01, max_busy=1.0)
        shadow = with_shadow(service.serving, service.other, config)
        stuck = Stuck(shadow.recommender)
        shadow.recommender = stuck  # type: ignore[assignment]
        stub = service.start()
        shadow.start()
        try:
            answers = ask(stub, user_with_most_items(world), 30)  # each within its deadline
            assert all(len(response.items) == 5 for response, _ in answers)
            # kept: the queue's capacity and the one request the stuck worker holds
            assert service.metric("graphrec_shadow_dropped_total", reason="full") >= 30 - 3 - 1
            assert service.metric("graphrec_shadow_scored_total") == 0
        finally:
            stuck.release.set()
        wait_until(
            "every request the shadow kept scored",
            lambda: (
                service.metric("graphrec_shadow_waiting") == 0
                and service.metric("graphrec_shadow_scored_total") == stuck.taken
            ),
            10,
        )
        shadow.stop()
        dropped = service.metric("graphrec_shadow_dropped_total", reason="full")
        assert stuck.taken + dropped == 30


def test_a_shadow_needs_the_recommendation_log(world: World, tmp_path: Path) -> None:
    models = models_with_another_version(world, tmp_path)
    with open_store(world.store_url) as store:
        serving = Serving(store, models, config=ServerConfig(address="127.0.0.1:0"))
        with pytest.raises(ValueError, match="recommendation log"):
            with_shadow(serving, load_pinned(models, OTHER, 20_000))


def test_what_is_queued_at_stop_is_counted() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    shadow = Shadow(None, None, registry, ShadowConfig(capacity=2))  # type: ignore[arg-type]
    for i in range(3):
        shadow.offer(b"", f"r{i}")
    shadow.stop()
    assert registry.get_sample_value("graphrec_shadow_dropped_total", {"reason": "full"}) == 1
    assert registry.get_sample_value("graphrec_shadow_dropped_total", {"reason": "stopped"}) == 2


class Timed:
    """A recommender taking ``took_s`` a batch, noting when each batch ran."""

    def __init__(self, took_s: float) -> None:
        self.took_s, self.ran = took_s, []  # type: list[tuple[float, float]]

    def recommend_many(self, queries: Sequence[Query]) -> list[Recommendation | Exception]:
        started = time.perf_counter()
        time.sleep(self.took_s)
        self.ran.append((started, time.perf_counter()))
        return [Recommendation([], "v-shadow") for _ in queries]


def test_the_shadow_keeps_to_its_share_of_the_clock_and_drops_the_rest() -> None:
    from prometheus_client import CollectorRegistry

    from serving.reclog import RecommendationLog, RecommendationLogConfig

    registry = CollectorRegistry()
    log = RecommendationLog(RecommendationLogConfig(lambda: lambda records: None), registry)
    timed = Timed(0.02)
    config = ShadowConfig(capacity=10, max_batch=1, linger_s=0.01, max_busy=0.25)
    shadow = Shadow(timed, log, registry, config)  # type: ignore[arg-type]
    request = pb.RecommendRequest(subject=pb.Subject(user_id="u1"), k=3).SerializeToString()
    shadow.start()
    for i in range(30):
        shadow.offer(request, f"r{i}")
    wait_until("five batches scored", lambda: len(timed.ran) >= 5, 10)
    shadow.stop()
    busy = sum(end - start for start, end in timed.ran)
    span = timed.ran[-1][1] - timed.ran[0][0]
    # each batch is followed by a rest three times as long: at most a quarter of the clock
    assert busy / span <= 0.25 * (len(timed.ran) / (len(timed.ran) - 0.75)) + 0.01
    dropped = registry.get_sample_value("graphrec_shadow_dropped_total", {"reason": "full"})
    assert dropped == 30 - 10
    scored = registry.get_sample_value("graphrec_shadow_scored_total")
    waiting = registry.get_sample_value("graphrec_recommendation_log_waiting")
    assert scored == len(timed.ran) == waiting  # each list queued for the log


def test_max_busy_is_a_share() -> None:
    for share in (0.0, 1.5):
        with pytest.raises(ValueError, match="max_busy"):
            ShadowConfig(max_busy=share)

"""``serve --shadow``: every answered request scored again by a pinned version in a process of
its own, its list logged beside the served one (same request id, arm ``shadow``); a stuck
shadow never holds up an answer, what it cannot take is dropped and counted, and a shadow
process that dies is started again."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from gnn.checkpoint import current_version
from graphrec.reclog import log_config
from graphrec.shadowjob import ShadowJob
from graphstore import open_store
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.logrecord import RECOMMENDATIONS_TOPIC, LoggedRecommendation, decode
from serving.loops import LoopMetrics, LoopState
from serving.pinned import load_pinned, with_shadow
from serving.reclog import RecommendationLog, RecommendationLogConfig
from serving.recommender import Recommender
from serving.server import ServerConfig
from serving.shadow import LOOP_NAME, Shadow, ShadowConfig
from serving.shadowproc import Scorer
from serving.types import Query, Recommendation
from streaming.log import EventLog
from tests.integration.waiting import wait_until
from tests.serving.conftest import World
from tests.serving.test_service import user_with_most_items

OTHER = "other-version"
NICE = 0  # the shadow's process at the tests' priority: other work on the machine must not
# starve it (the test of what is dropped at stop checks the default)


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
        self.models = models
        self.other = load_pinned(models, OTHER, 20_000)
        self.channel: grpc.Channel | None = None
        self.shadow: Shadow | None = None

    def with_shadow(self, work: Any = None, config: ShadowConfig | None = None) -> Shadow:
        """A shadow of ``work`` (default: the version ``OTHER`` logging beside the service)."""
        store_url = self.store.url
        work = work or ShadowJob(store_url, self.models, OTHER, f"log://{self.log_dir}")
        self.shadow = with_shadow(self.serving, work, config or ShadowConfig(nice=NICE))
        return self.shadow

    def start(self) -> pb_grpc.RecommenderStub:
        """Start the service, and its shadow (if any) until it is up."""
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.serving.start()}")
        if self.shadow is not None:
            loops, health = self.serving.metrics.loops, self.serving.server.set_health
            self.shadow.start(LoopState(LOOP_NAME, loops, health))
            wait_up(self.shadow)
        return pb_grpc.RecommenderStub(self.channel)

    def metric(self, name: str, **labels: str) -> float:
        return self.serving.metrics.registry.get_sample_value(name, labels) or 0.0

    def records(self) -> list[LoggedRecommendation]:
        log = EventLog(self.log_dir)
        if RECOMMENDATIONS_TOPIC not in log.topics():
            return []  # nothing logged yet
        return [
            decode(r.value)
            for p in range(log.partitions(RECOMMENDATIONS_TOPIC))
            for r in log.read((RECOMMENDATIONS_TOPIC, p), 0, 10_000)
        ]

    def shadow_lists(self) -> dict[str, LoggedRecommendation]:
        return {r.request_id: r for r in self.records() if r.arm == "shadow"}

    def close(self) -> None:
        if self.shadow is not None:
            self.shadow.stop()
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


def wait_up(shadow: Shadow) -> None:
    wait_until("the shadow's process up", lambda: shadow.up, 120)


def ask(
    stub: pb_grpc.RecommenderStub, user: str, n: int, prefix: str = "req"
) -> list[tuple[pb.RecommendResponse, str]]:
    """``n`` Recommend calls answered within a 5 s deadline: (answer, request id) each."""
    out = []
    for i in range(n):
        request = pb.RecommendRequest(subject=pb.Subject(user_id=user), k=5)
        metadata = (("x-request-id", f"{prefix}-{i}"),)
        response, _ = stub.Recommend.with_call(request, timeout=5.0, metadata=metadata)
        out.append((response, f"{prefix}-{i}"))
    return out


def test_the_shadow_logs_its_list_beside_the_served_one(world: World, tmp_path: Path) -> None:
    with running(world, tmp_path) as service:
        shadow = service.with_shadow()
        stub = service.start()
        parent = os.getpid()
        assert shadow.pid is not None and shadow.pid != parent  # it scores in its own process
        answers = ask(stub, user_with_most_items(world), 6)
        wait_until("the shadow's 6 lists logged", lambda: len(service.shadow_lists()) == 6, 15)
        records = service.records()
        assert service.metric("graphrec_shadow_scored_total") == 6
        wait_until(
            "6 counted logged", lambda: service.metric("graphrec_shadow_logged_total") == 6, 5
        )
        assert service.metric("graphrec_background_up", loop="shadow") == 1
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


class Gated:
    """Answers empty lists of ``OTHER`` once ``release`` is set."""

    def __init__(self, release: Any) -> None:
        self.release = release

    def recommend_many(self, queries: Sequence[Query]) -> list[Recommendation | Exception]:
        self.release.wait()
        return [Recommendation([], OTHER) for _ in queries]


@dataclass(frozen=True)
class GatedWork:
    """A shadow whose answers wait for ``release`` (a multiprocessing event), logged nowhere."""

    release: Any
    version: str = OTHER

    @contextmanager
    def open(self, registry: CollectorRegistry) -> Iterator[Scorer]:
        log = RecommendationLog(RecommendationLogConfig(lambda: lambda records: None), registry)
        log.start(LoopState("recommendation-log", LoopMetrics(registry)))
        try:
            yield Scorer(Gated(self.release), log)
        finally:
            log.stop()


def gate() -> Any:
    return multiprocessing.get_context("spawn").Event()


def test_a_stuck_shadow_never_holds_up_an_answer_and_counts_its_drops(
    world: World, tmp_path: Path
) -> None:
    release = gate()
    with running(world, tmp_path) as service:
        config = ShadowConfig(
            capacity=3, max_batch=1, linger_s=0.01, every_s=0.0, max_busy=1.0, nice=NICE
        )
        service.with_shadow(GatedWork(release), config)
        stub = service.start()
        answers = ask(stub, user_with_most_items(world), 30)  # each within its deadline
        assert all(len(response.items) == 5 for response, _ in answers)
        # kept: the queue's capacity and the one request the stuck process holds
        assert service.metric("graphrec_shadow_dropped_total", reason="full") >= 30 - 3 - 1
        assert service.metric("graphrec_shadow_scored_total") == 0
        release.set()
        wait_until(
            "every request the shadow kept scored",
            lambda: (
                service.metric("graphrec_shadow_waiting") == 0
                and service.metric("graphrec_shadow_scored_total")
                + service.metric("graphrec_shadow_dropped_total", reason="full")
                == 30
            ),
            10,
        )
        assert service.metric("graphrec_shadow_dropped_total", reason="down") == 0


def test_what_is_queued_or_held_at_stop_is_counted_and_it_yields_the_cores() -> None:
    registry = CollectorRegistry()
    config = ShadowConfig(capacity=2, max_batch=1, linger_s=0.01, stop_timeout_s=0.5)
    shadow = Shadow(GatedWork(gate()), registry, config)  # never released
    request = pb.RecommendRequest(subject=pb.Subject(user_id="u1"), k=3).SerializeToString()
    shadow.offer(request, "before")  # no process up yet

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    before = os.environ.get("OPENBLAS_NUM_THREADS")
    shadow.start()
    try:
        wait_up(shadow)
        assert shadow.pid is not None  # it yields the cores to the server
        niceness = os.getpriority(os.PRIO_PROCESS, shadow.pid)
        assert niceness == min(19, os.getpriority(os.PRIO_PROCESS, 0) + config.nice)
        environ = Path(f"/proc/{shadow.pid}/environ").read_bytes().split(b"\0")
        assert b"OPENBLAS_NUM_THREADS=1" in environ and b"OMP_NUM_THREADS=1" in environ
        assert os.environ.get("OPENBLAS_NUM_THREADS") == before  # the server's own as it was
        shadow.offer(request, "held")
        wait_until("the request taken", lambda: value("graphrec_shadow_waiting") == 0, 10)
        for i in range(3):
            shadow.offer(request, f"r{i}")
        assert value("graphrec_shadow_waiting") == 2
    finally:
        shadow.stop()  # the process is stuck: killed after stop_timeout_s
    assert value("graphrec_shadow_dropped_total", reason="down") == 1
    assert value("graphrec_shadow_dropped_total", reason="full") == 1
    assert value("graphrec_shadow_dropped_total", reason="stopped") == 3  # queued and held
    assert value("graphrec_shadow_scored_total") == 0
    assert value("graphrec_shadow_dropped_total", reason="failed") == 0
    assert value("graphrec_shadow_waiting") == 0


def test_a_killed_shadow_is_started_again_and_its_lists_resume(
    world: World, tmp_path: Path
) -> None:
    with running(world, tmp_path) as service:
        shadow = service.with_shadow(config=ShadowConfig(first_backoff_s=0.2, nice=NICE))
        stub = service.start()
        user = user_with_most_items(world)
        ask(stub, user, 3, "before")
        wait_until("3 shadow lists", lambda: len(service.shadow_lists()) == 3, 15)
        killed = shadow.pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        asked = []

        def down_counted() -> bool:  # answers go on while the shadow is down
            asked.extend(ask(stub, user, 1, f"down-{len(asked)}"))
            return service.metric("graphrec_shadow_dropped_total", reason="down") >= 1

        wait_until("requests dropped while the shadow is down", down_counted, 20)
        assert all(len(response.items) == 5 for response, _ in asked)
        wait_until("the shadow started again", lambda: shadow.up and shadow.pid != killed, 120)
        assert service.metric("graphrec_background_failures_total", loop="shadow") == 1
        assert service.metric("graphrec_background_up", loop="shadow") == 1
        ask(stub, user, 3, "after")
        wait_until(
            "the lists of the requests after the restart",
            lambda: {f"after-{i}" for i in range(3)} <= set(service.shadow_lists()),
            15,
        )
        assert killed not in (None, shadow.pid)


def test_the_shadow_follows_the_change_stream(world: World, tmp_path: Path) -> None:
    from dataclasses import replace

    from graphstore import ItemRecord
    from tests.serving.test_operations import publish

    shutil.copytree(world.root, tmp_path / "world")
    root = tmp_path / "world"
    own = replace(world, root=root, log_url=f"log://{root / 'log'}", models=root / "models")
    own = replace(own, store_url=f"sqlite://{root / 'graph'}")
    models = models_with_another_version(own, tmp_path / "run")
    job = ShadowJob(own.store_url, models, OTHER, f"log://{tmp_path / 'reclog'}")
    job = replace(job, follow_url=own.log_url)
    registry = CollectorRegistry()
    with job.open(registry) as scorer:
        recommender = scorer.recommender
        assert isinstance(recommender, Recommender)
        table = recommender.engine().table
        assert "brand-new" not in table.index
        template = own.dataset.items[5]
        publish(own, items=[ItemRecord("brand-new", template.category_path, "new serum")])
        wait_until(
            "the shadow's table holds the new item",
            lambda: "brand-new" in table.index and table.index["brand-new"] < table.size,
            15,
        )
        up = registry.get_sample_value("graphrec_background_up", {"loop": "change-feed-shadow"})
        assert up == 1


def test_a_shadow_needs_the_recommendation_log(world: World, tmp_path: Path) -> None:
    models = models_with_another_version(world, tmp_path)
    with open_store(world.store_url) as store:
        serving = Serving(store, models, config=ServerConfig(address="127.0.0.1:0"))
        with pytest.raises(ValueError, match="recommendation log"):
            with_shadow(serving, ShadowJob(world.store_url, models, OTHER, "log://unused"))


def test_max_busy_is_a_share() -> None:
    for share in (0.0, 1.5):
        with pytest.raises(ValueError, match="max_busy"):
            ShadowConfig(max_busy=share)

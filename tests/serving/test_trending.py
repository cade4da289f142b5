"""The trending fallback is read from a cache: a slow or unreachable trending app never
delays a request. The app is a real HTTP server on a local port."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from graphstore import open_store
from serving.app import Serving
from serving.loops import LoopMetrics, LoopState
from serving.recommender import Recommender
from serving.server import ServerConfig
from serving.trending import LOOP_NAME, TrendingCache, http_trending
from serving.types import Query, Subject, SubjectKind
from tests.serving.conftest import Served, World

NOBODY = Query(Subject(SubjectKind.USER, "nobody"), k=5)


class TrendingApp:
    """``/trending/items/`` answering ``ranking``, each answer held until ``release`` is set."""

    def __init__(self, ranking: list[tuple[str, float]]) -> None:
        self.ranking = ranking
        self.release = threading.Event()
        self.asked = threading.Event()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                app.asked.set()
                app.release.wait(30)
                body = json.dumps({"items": app.ranking}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def trending(world: World) -> Iterator[TrendingApp]:
    app = TrendingApp(
        [(i.item_id, float(100 - n)) for n, i in enumerate(world.dataset.items[20:40])]
    )
    yield app
    app.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_requests_read_trending_items_once_fetched(served: Served, trending: TrendingApp) -> None:
    trending.release.set()
    cache = TrendingCache(http_trending(trending.url), period_s=0.1)
    rec = Recommender(served.store, served.serving.registry.current, popular=cache)
    cache.start()
    try:
        wait_for(lambda: "trending items" in rec.recommend(NOBODY).fallback_reason)
        got = rec.recommend(NOBODY)
        assert [i.item_id for i in got.items] == [item for item, _ in trending.ranking[:5]]
    finally:
        cache.stop()


def test_a_trending_app_that_does_not_answer_never_delays_a_request(
    served: Served, trending: TrendingApp
) -> None:
    # the fetch would wait up to 20 s for the app, which holds every answer until released
    cache = TrendingCache(http_trending(trending.url, timeout_s=20.0), period_s=0.1)
    rec = Recommender(served.store, served.serving.registry.current, popular=cache)
    cache.start()
    try:
        wait_for(trending.asked.is_set)  # the refresher is stuck in its fetch
        engine = served.serving.registry.current()
        assert engine is not None
        leaf = next(leaf for leaf in engine.table.leaves if leaf)
        for category in ("", leaf):  # a category not fetched yet, too
            started = time.monotonic()
            got = rec.recommend(Query(NOBODY.subject, 5, category=category))
            assert time.monotonic() - started < 2.0
            assert got.fallback and "store counts" in got.fallback_reason
    finally:
        trending.release.set()
        cache.stop()


def test_an_unreachable_trending_app_falls_back_to_store_counts(served: Served) -> None:
    cache = TrendingCache(http_trending("http://127.0.0.1:9"), period_s=0.1)
    rec = Recommender(served.store, served.serving.registry.current, popular=cache)
    cache.start()
    try:
        with pytest.raises(OSError):
            cache.refresh()  # fails; what requests see after it is the store's counts
        got = rec.recommend(NOBODY)
        assert got.fallback and "store counts" in got.fallback_reason and len(got.items) == 5
    finally:
        cache.stop()


def test_the_refresher_backs_off_while_trending_is_down_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="serving.loops")
    ranking = [("i1", 3.0), ("i2", 1.0)]
    attempts: list[float] = []

    def fetch(k: int, category: str) -> list[tuple[str, float]]:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise ConnectionError("trending is down")
        return ranking

    registry = CollectorRegistry()
    health: list[tuple[str, bool]] = []
    state = LoopState(LOOP_NAME, LoopMetrics(registry), lambda n, ok: health.append((n, ok)))
    cache = TrendingCache(fetch, period_s=0.1)
    cache.start(state)
    try:
        wait_for(lambda: cache(5, "") == ranking)
        waits = [
            float(w) for w in re.findall(r"trending failed .* retrying in ([\d.]+) s", caplog.text)
        ]
        assert len(waits) == 3, caplog.text
        assert waits[0] <= 0.1 and waits[2] >= 0.2  # each failure in a row waits longer
        labels = {"loop": LOOP_NAME}
        assert registry.get_sample_value("graphrec_background_failures_total", labels) == 3
        assert registry.get_sample_value("graphrec_background_up", labels) == 1
        name = "graphrec.v1.Recommender/trending"
        assert health == [(name, False), (name, True)]
    finally:
        cache.stop()


def test_the_server_shows_an_unreachable_trending_app_but_keeps_serving(world: World) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with open_store(world.store_url) as store:
        serving = Serving(
            store,
            world.models,
            config=ServerConfig(address="127.0.0.1:0"),
            trending_url=f"http://127.0.0.1:{closed}",
        )
        port = serving.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)

                def status(service: str) -> int:
                    request = health_pb2.HealthCheckRequest(service=service)
                    return int(health.Check(request, timeout=2).status)

                registry = serving.metrics.registry
                labels = {"loop": LOOP_NAME}
                failures = "graphrec_background_failures_total"
                wait_for(lambda: (registry.get_sample_value(failures, labels) or 0) >= 1)
                assert registry.get_sample_value("graphrec_background_up", labels) == 0
                not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
                assert status("graphrec.v1.Recommender/trending") == not_serving
                wait_for(lambda: status("graphrec.v1.Recommender") == 1)  # SERVING
        finally:
            serving.stop()

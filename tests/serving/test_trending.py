"""The trending fallback is read from a cache: a slow or unreachable trending app never
delays a request. The app is a real HTTP server on a local port."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from serving.recommender import Recommender
from serving.trending import TrendingCache, http_trending
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
        cache.refresh()  # fails; what requests see after it is the store's counts
        got = rec.recommend(NOBODY)
        assert got.fallback and "store counts" in got.fallback_reason and len(got.items) == 5
    finally:
        cache.stop()

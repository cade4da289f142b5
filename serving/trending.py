"""Trending items for the popularity fallback, kept in a cache refreshed off the request path.

``graphrec trending`` answers over HTTP; a request never waits for it. A background thread
fetches, every ``period_s``, the ranking of each category that requests asked for recently
(a category asked for the first time is fetched at once, and answered from the store's
counts until then); requests only read what the last fetch returned.

While trending is unreachable the refresher retries with back-off (``serving.loops``), shown
as the ``trending`` loop in /metrics and in gRPC health (``graphrec.v1.Recommender/trending``);
requests meanwhile fall back to the store's counts once the last ranking is too old.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from serving.loops import LoopMetrics, LoopState, run_forever

Ranking = list[tuple[str, float]]
Fetch = Callable[[int, str], Ranking]  # (k, category) → (item id, count) best first
LOOP_NAME = "trending"


def http_trending(base: str, timeout_s: float = 2.0) -> Fetch:
    """Top items from the faust trending app's ``/trending/items/`` endpoint at ``base``."""

    def fetch(k: int, category: str) -> Ranking:
        query = {"k": str(k), **({"category": category} if category else {})}
        url = f"{base.rstrip('/')}/trending/items/?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return [(str(i), float(c)) for i, c in json.load(response)["items"]]

    return fetch


class TrendingCache:
    """Callable as ``Popular`` (``(k, category) → ranking``), reading only the cache.

    ``depth`` items are kept per category; a ranking older than ``max_age_s`` (trending has
    been unreachable that long) is not served. At most ``max_categories`` categories are
    kept, the least recently asked for dropped first.
    """

    def __init__(
        self,
        fetch: Fetch,
        period_s: float = 5.0,
        depth: int = 1_000,
        max_age_s: float = 60.0,
        max_categories: int = 256,
    ) -> None:
        self._fetch = fetch
        self.period_s = period_s
        self.depth = depth
        self.max_age_s = max_age_s
        self._max_categories = max_categories
        self._rankings: OrderedDict[str, tuple[float, Ranking]] = OrderedDict({"": (0.0, [])})
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state: LoopState | None = None

    def __call__(self, k: int, category: str) -> Ranking:
        with self._lock:
            cached = self._rankings.get(category)
            if cached is None:
                self._rankings[category] = (0.0, [])
                if len(self._rankings) > self._max_categories:
                    self._rankings.popitem(last=False)
                self._wake.set()
            else:
                self._rankings.move_to_end(category)
        if cached is None or time.monotonic() - cached[0] > self.max_age_s:
            return []
        return cached[1][:k]

    def refresh(self) -> None:
        """Fetch every category asked for (on the refresher thread); raises when a fetch
        fails, keeping the rankings fetched before until they are too old."""
        with self._lock:
            categories = list(self._rankings)
        for category in categories:
            ranking = self._fetch(self.depth, category)
            with self._lock:
                if category in self._rankings:
                    self._rankings[category] = (time.monotonic(), ranking)

    def start(self, state: LoopState | None = None) -> None:
        """Start refreshing; ``state`` shows the refresher (default: one of its own, on a
        registry nobody serves)."""
        self.state = state or LoopState(LOOP_NAME, LoopMetrics(CollectorRegistry()))
        self._thread = threading.Thread(target=self._run, name=LOOP_NAME, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        assert self.state is not None
        back_off = max(self.period_s, 30.0)
        run_forever(self._refresh_every_period, self.state, self._stop, self.period_s, back_off)

    def _refresh_every_period(self) -> None:
        assert self.state is not None
        while not self._stop.is_set():
            self._wake.clear()
            self.refresh()
            self.state.succeeded()
            self._wake.wait(self.period_s)

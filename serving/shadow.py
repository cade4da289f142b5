"""``serve --shadow VERSION``: every answered Recommend request is scored again by a second
version, off the request path, and its list logged beside the served one.

On the request path ``offer`` only appends the request's bytes to a bounded queue (a deque,
as the recommendation log's): it never waits, never wakes the worker and never raises; when
the queue is full the request is dropped and counted. One worker thread looks every
``linger_s``, takes up to ``max_batch`` queued requests and answers them together with the
shadow version's recommender (``Recommender.recommend_many``: one graph round trip, one
top-K call); each list goes to the recommendation log with the served answer's request id
and time, arm ``shadow`` and the shadow's version (``latency_ms``: the batch's scoring time).
A shadow that is slow or stuck only fills its queue: the served answers never wait for it.

The shadow runs in the server's process, on the cores and the interpreter lock the served
answers need: scoring every request as well would cost them as much again (``graphrec bench
reclog --shadow`` measured the served p99 1.7-1.85x with it). So the worker is held to
``max_busy`` of the wall clock: after a batch that took t seconds it rests
t * (1 / max_busy - 1) before the next, and what arrives meanwhile waits in the queue or,
when that is full, is dropped (``full``). Under load the shadow scores a sample of the
requests, not all of them; the report compares the ones it scored.

Metrics, on the service's registry: ``graphrec_shadow_scored_total`` (lists logged),
``graphrec_shadow_dropped_total{reason}`` (``full``: the queue was full; ``failed``: the
shadow could not answer it; ``stopped``: still queued when the service stopped) and
``graphrec_shadow_waiting`` (queued now).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from protos import graphrec_pb2 as pb
from serving import convert
from serving.logrecord import SHADOW_ARM
from serving.reclog import RecommendationLog
from serving.recommender import Recommender
from serving.types import Recommendation

log = logging.getLogger(__name__)
THREAD_NAME = "shadow"
Offered = tuple[float, str, bytes]  # (ts, request id, request)


@dataclass(frozen=True)
class ShadowConfig:
    """How many requests may wait for the shadow, and how it takes them."""

    capacity: int = 64  # requests waiting (a bound on how late they are scored); beyond,
    # they are dropped
    max_batch: int = 32  # requests scored together
    linger_s: float = 0.05  # how long the worker sleeps when the queue is empty
    max_busy: float = 0.1  # share of the wall clock the worker may spend scoring

    def __post_init__(self) -> None:
        if not 0.0 < self.max_busy <= 1.0:
            raise ValueError(f"max_busy is a share in (0, 1], got {self.max_busy:g}")


class ShadowMetrics:
    """The shadow's counters on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.scored = Counter(
            "graphrec_shadow_scored",
            "Recommend requests the shadow version scored and logged.",
            registry=registry,
        )
        self.dropped = Counter(
            "graphrec_shadow_dropped",
            "Recommend requests the shadow version did not score, by reason: full (its "
            "queue was full), failed, stopped.",
            ["reason"],
            registry=registry,
        )
        self.waiting = Gauge(
            "graphrec_shadow_waiting",
            "Recommend requests queued for the shadow version.",
            registry=registry,
        )


class Shadow:
    """A bounded queue of answered requests and the thread scoring them with ``recommender``
    (a pinned version's, ``serving.pinned``) into ``recommendations``."""

    def __init__(
        self,
        recommender: Recommender,
        recommendations: RecommendationLog,
        registry: CollectorRegistry,
        config: ShadowConfig | None = None,
    ) -> None:
        self.recommender = recommender
        self.recommendations = recommendations
        self.config = config or ShadowConfig()
        self.metrics = ShadowMetrics(registry)
        self._queue: deque[Offered] = deque()
        self._capacity = max(1, self.config.capacity)
        self.metrics.waiting.set_function(lambda: len(self._queue))
        self._full = self.metrics.dropped.labels(reason="full")
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the request path
    def offer(self, request: bytes, request_id: str) -> None:
        """Queue an answered request for the shadow; drop and count it when the queue is
        full. Never blocks, never raises. Called from the server's event loop."""
        if len(self._queue) >= self._capacity:
            self._full.inc()
        else:
            self._queue.append((time.time(), request_id, request))

    # ------------------------------------------------------------------ the worker
    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the batch in hand (waiting up to ``timeout_s``); what is still queued
        is counted as dropped (``stopped``)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        left = len(self._take(len(self._queue)))
        if left:
            self.metrics.dropped.labels(reason="stopped").inc(left)

    def _work(self) -> None:
        while not self._stopping.is_set():
            batch = self._take(self.config.max_batch)
            if not batch:
                self._stopping.wait(self.config.linger_s)
                continue
            started = time.perf_counter()
            try:
                self._score(batch)
            except Exception:
                log.exception("shadow: a batch of %d requests failed", len(batch))
                self.metrics.dropped.labels(reason="failed").inc(len(batch))
            busy = time.perf_counter() - started
            self._stopping.wait(busy * (1.0 / self.config.max_busy - 1.0))

    def _score(self, batch: Sequence[Offered]) -> None:
        """Answer ``batch`` with the shadow version and log each list."""
        started = time.perf_counter()
        queries, parsed = [], []
        for offered in batch:
            try:
                queries.append(convert.query_of(pb.RecommendRequest.FromString(offered[2])))
                parsed.append(offered)
            except Exception:
                self.metrics.dropped.labels(reason="failed").inc()
        answers = self.recommender.recommend_many(queries) if queries else []
        took = time.perf_counter() - started
        for (ts, request_id, request), answer in zip(parsed, answers, strict=True):
            if not isinstance(answer, Recommendation):
                self.metrics.dropped.labels(reason="failed").inc()
                continue
            response = convert.recommendation_msg(answer).SerializeToString()
            self.recommendations.answered(request, response, request_id, took, SHADOW_ARM, ts)
            self.metrics.scored.inc()

    def _take(self, n: int) -> list[Offered]:
        """Up to ``n`` requests from the old end of the queue."""
        out: list[Offered] = []
        try:
            while len(out) < n:
                out.append(self._queue.popleft())
        except IndexError:
            pass
        return out

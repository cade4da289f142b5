"""The recommendation log: every Recommend answer as a record (``serving.logrecord``) on a log
topic, written by a background thread, never on the request path.

On the request path ``answered`` only appends the answer's bytes to a bounded queue (a deque:
one thread appends, the writer takes from the other end): it never waits, never wakes the
writer and never raises; when the queue is full the answer is dropped and counted. The
writer thread looks every ``linger_s`` and takes what is queued in batches of up to
``max_batch`` (so it takes the GIL a few times a second, not once per answer), builds the
records and sends them with the function ``connect()`` returns
(the log is opened there, off the request path; ``serving`` never imports ``streaming``, so
``graphrec`` passes a ``connect`` over its writers). A failed write is tried again with the same
batch after a back-off (``serving.loops.run_forever``: meanwhile the loop shows down in
/metrics and gRPC health, and the queue fills and drops); after ``attempts`` failures in a row
the batch is dropped and counted and the writer goes on with the next one. A write that failed
after the log had taken the records writes them twice: readers drop repeated request ids.

Metrics, on the service's registry: ``graphrec_recommendation_log_records_total`` (written),
``graphrec_recommendation_log_dropped_total{reason}`` (``full``: the queue was full;
``write_failed``: its batch failed ``attempts`` times; ``unreadable``: not a Recommend
request and answer; ``stopped``: still queued when the service stopped),
``graphrec_recommendation_log_waiting`` (queued now), and the loop's
``graphrec_background_*{loop="recommendation-log"}``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from serving.logrecord import PRIMARY_ARM, encode, logged
from serving.loops import LoopState, run_forever

log = logging.getLogger(__name__)
LOOP_NAME = "recommendation-log"
REQUEST_ID_HEADER = "x-request-id"  # gRPC metadata: the caller's id for the request, if any
MAX_REQUEST_ID_LENGTH = 128
Publish = Callable[[Sequence[tuple[bytes, bytes]]], None]  # (key, value) records; durable on return
Connect = Callable[[], Publish]  # opens the log: may fail, and is called again after a back-off
Answer = tuple[float, str, bytes, bytes, float, str]  # (ts, request id, request, response,
# latency s, arm)


@dataclass(frozen=True)
class RecommendationLogConfig:
    """Where the recommendation log goes and how much of it may wait."""

    connect: Connect
    capacity: int = 10_000  # answers waiting for the writer; beyond, they are dropped
    max_batch: int = 500  # records per write
    linger_s: float = 0.2  # how long the writer sleeps when the queue is empty
    attempts: int = 3  # writes of one batch before it is dropped


class RecommendationLogMetrics:
    """The recommendation log's counters on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.written = Counter(
            "graphrec_recommendation_log_records",
            "Recommend answers written to the recommendation log.",
            registry=registry,
        )
        self.dropped = Counter(
            "graphrec_recommendation_log_dropped",
            "Recommend answers not written to the recommendation log, by reason: full (the "
            "queue was full), write_failed, unreadable, stopped.",
            ["reason"],
            registry=registry,
        )
        self.waiting = Gauge(
            "graphrec_recommendation_log_waiting",
            "Recommend answers queued for the recommendation log's writer.",
            registry=registry,
        )


class RecommendationLog:
    """A bounded queue of answers and the thread writing them to the log."""

    def __init__(self, config: RecommendationLogConfig, registry: CollectorRegistry) -> None:
        self.config = config
        self.metrics = RecommendationLogMetrics(registry)
        self._queue: deque[Answer] = deque()
        self._capacity = max(1, config.capacity)
        self.metrics.waiting.set_function(lambda: len(self._queue))
        self._full = self.metrics.dropped.labels(reason="full")
        self._publish: Publish | None = None
        self._held: list[tuple[bytes, bytes]] = []  # the batch being written
        self._failures = 0  # failed writes of the held batch
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: LoopState  # set by start

    # ------------------------------------------------------------------ the request path
    def answered(
        self,
        request: bytes,
        response: bytes,
        request_id: str,
        latency_s: float,
        arm: str = PRIMARY_ARM,
        ts: float | None = None,
    ) -> None:
        """Queue an answered Recommend call for the log (``ts``: when it was asked, default
        now); drop and count it when the queue is full. Never blocks, never raises. Called
        from the server's event loop, and from the shadow's thread (``serving.shadow``)."""
        if len(self._queue) >= self._capacity:
            self._full.inc()
        else:
            when = time.time() if ts is None else ts
            self._queue.append((when, request_id, request, response, latency_s, arm))

    # ------------------------------------------------------------------ the writer
    def start(self, state: LoopState) -> None:
        """Start the writer thread; ``state`` shows it in /metrics and health."""
        self._state = state
        self._thread = threading.Thread(
            target=run_forever, args=(self._write, state, self._stopping), name=LOOP_NAME
        )
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (for up to ``timeout_s``), then stop; what is left is
        counted as dropped (``stopped``)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        left = len(self._take(len(self._queue)))
        if self._thread is None or not self._thread.is_alive():
            left += len(self._held)  # a stuck write may still finish its batch
            self._held = []
        if left:
            self.metrics.dropped.labels(reason="stopped").inc(left)
            log.warning("recommendation log: %d answers not written at stop", left)

    def _write(self) -> None:
        """Open the log, then write batches until stopped and drained; raises when opening or
        a write fails (``run_forever`` calls it again after a back-off)."""
        if self._publish is None:
            self._publish = self.config.connect()
            self._state.succeeded()
        while True:
            if not self._held:
                batch = self._next_batch()
                if batch is None:
                    return
                self._held = self._records(batch)
                if not self._held:
                    continue
            try:
                self._publish(self._held)
            except Exception:
                self._failures += 1
                if self._failures >= self.config.attempts:
                    self.metrics.dropped.labels(reason="write_failed").inc(len(self._held))
                    self._held, self._failures = [], 0
                raise
            self.metrics.written.inc(len(self._held))
            self._held, self._failures = [], 0
            self._state.succeeded()

    def _next_batch(self) -> list[Answer] | None:
        """Up to ``max_batch`` queued answers, looking every ``linger_s`` while there are none;
        None once stopping and nothing is queued."""
        while True:
            batch = self._take(self.config.max_batch)
            if batch:
                return batch
            if self._stopping.is_set():
                return None
            self._stopping.wait(self.config.linger_s)

    def _take(self, n: int) -> list[Answer]:
        """Up to ``n`` answers from the old end of the queue."""
        out: list[Answer] = []
        try:
            while len(out) < n:
                out.append(self._queue.popleft())
        except IndexError:
            pass
        return out

    def _records(self, batch: list[Answer]) -> list[tuple[bytes, bytes]]:
        """(key, JSON) of each answer; unreadable ones are counted and left out."""
        out = []
        for ts, request_id, request, response, latency_s, arm in batch:
            try:
                record = logged(request, response, request_id, ts, latency_s, arm)
            except Exception as exc:
                self.metrics.dropped.labels(reason="unreadable").inc()
                log.warning("recommendation log: answer %s left out (%s)", request_id, exc)
                continue
            out.append((record.key, encode(record)))
        return out


def request_id(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The caller's ``x-request-id`` (up to 128 printable characters), else a new one."""
    for key, value in metadata or ():
        if key != REQUEST_ID_HEADER or not isinstance(value, str):
            continue
        if 0 < len(value) <= MAX_REQUEST_ID_LENGTH and value.isprintable():
            return value
    return uuid.uuid4().hex

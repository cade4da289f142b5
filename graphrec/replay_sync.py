"""What a replay waits for and measures outside the service's answers: the sink catching up
with the log (``sink_backlog``, ``wait_for_sink``) and the lag from an event being produced
to it showing in the service's answers (``LagProbe``)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np

from protos import graphrec_pb2 as pb
from streaming.log import EventLog
from streaming.urls import parse_log_url

Explain = Callable[[pb.ExplainRequest], pb.ExplainResponse]


class SinkBehind(ValueError):
    """The sink did not commit everything the log holds in time: most likely no sink runs on
    this log with this group (a configuration error, exit code 2, like other ValueErrors)."""


def sink_backlog(log_url: str, group: str) -> int:
    """Records in the log's items and events topics that the sink's consumer ``group`` has
    not committed yet (it commits after the graph transaction that applied them)."""
    address = parse_log_url(log_url)
    topics = list(address.topics)
    if address.scheme == "log":
        log = EventLog(Path(address.location))
        try:
            return sum(
                end - (log.committed(group, (topic, p)) or 0)
                for topic in topics
                if topic in log.topics()
                for p, end in log.end_offsets(topic).items()
            )
        finally:
            log.close()
    return _kafka_backlog(address.location, topics, group)


def _kafka_backlog(bootstrap: str, topics: list[str], group: str) -> int:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaTP

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [KafkaTP(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        ends = consumer.end_offsets(tps) if tps else {}
        return sum(end - (consumer.committed(tp) or 0) for tp, end in ends.items())
    finally:
        consumer.close(autocommit=False)


def wait_for_sink(
    backlog: Callable[[], int],
    timeout_s: float,
    poll_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once ``backlog()`` is 0; ``SinkBehind`` after ``timeout_s``."""
    deadline = clock() + timeout_s
    while (left := backlog()) > 0:
        if clock() >= deadline:
            raise SinkBehind(
                f"the sink still had {left} records to apply after {timeout_s:g} s: is "
                "`graphrec ingest --follow` running on this log with this --group?"
            )
        sleep(poll_s)


def shows(answer: pb.ExplainResponse, item_id: str) -> bool:
    """Whether one of the explanation's paths starts with the subject's edge to ``item_id``
    (the answer was computed from a neighbourhood holding that edge)."""
    return any(
        len(p.nodes) > 1 and p.nodes[1].label == "Item" and p.nodes[1].id == item_id
        for p in answer.paths
    )


class LagProbe:
    """Measures, for events offered to it, the time from the event being produced until an
    Explain of (subject, item) answers with a path through that edge: the service's own
    request path (fetch of the subject's live edges from the graph) shows the event.

    One event at a time on a background thread, polled every ``poll_s``: an event offered
    while one is being probed is not probed (a sample, so the probe's load stays one
    request in flight). An event not seen within ``timeout_s`` counts as a timeout.
    """

    def __init__(self, explain: Explain, timeout_s: float = 30.0, poll_s: float = 0.02) -> None:
        self._explain, self.timeout_s, self.poll_s = explain, timeout_s, poll_s
        self.lags: list[float] = []
        self.timeouts = 0
        self._jobs: queue.Queue[tuple[pb.Subject, str, float] | None] = queue.Queue()
        self._busy = threading.Lock()  # held from an offer taken until its probe ends
        self._thread = threading.Thread(target=self._run, name="lag-probe", daemon=True)
        self._thread.start()

    def offer(self, subject: pb.Subject, item_id: str) -> bool:
        """Probe this just-produced event unless one is being probed; whether it was taken."""
        if not self._busy.acquire(blocking=False):
            return False
        self._jobs.put((subject, item_id, time.monotonic()))
        return True

    def close(self) -> None:
        """Finish the event in hand, then stop."""
        self._jobs.put(None)
        self._thread.join()

    def summary(self) -> dict[str, float]:
        """Probed events, timeouts and lag percentiles in seconds."""
        lags = np.array(self.lags) if self.lags else np.zeros(1)
        return {
            "probed": len(self.lags) + self.timeouts,
            "timeouts": self.timeouts,
            "p50_s": round(float(np.percentile(lags, 50)), 3),
            "p90_s": round(float(np.percentile(lags, 90)), 3),
            "max_s": round(float(lags.max()), 3),
        }

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            lag = self._lag(*job)
            if lag is None:
                self.timeouts += 1
            else:
                self.lags.append(lag)
            self._busy.release()

    def _lag(self, subject: pb.Subject, item_id: str, produced: float) -> float | None:
        request = pb.ExplainRequest(subject=subject, item_id=item_id, max_paths=50)
        while time.monotonic() - produced < self.timeout_s:
            try:
                if shows(self._explain(request), item_id):
                    return time.monotonic() - produced
            except grpc.RpcError:
                pass  # NOT_FOUND until the subject or item is in the graph; retried
            time.sleep(self.poll_s)
        return None

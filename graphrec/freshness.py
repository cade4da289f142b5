"""Freshness: time from producing an event to seeing it in the graph, with the sink running."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from graphrec.pipeline import closing_all, open_sink
from graphstore import Behaviour, GraphStore, Interaction, NodeKind, NodeRef
from streaming.produce import event_record
from streaming.sink import Sink, SinkConfig
from streaming.urls import open_writer, parse_log_url


@contextmanager
def running_sink(
    log_url: str, store: GraphStore, group: str, batch_size: int = 500
) -> Iterator[Sink]:
    """A sink following ``log_url`` in a background thread until the block ends."""
    sink = open_sink(log_url, store, group, SinkConfig(batch_size=batch_size, poll_timeout_s=0.01))
    thread = threading.Thread(target=sink.run, name="sink", daemon=True)
    thread.start()
    with closing_all(sink.source, sink.dead_letters):
        try:
            yield sink
        finally:
            sink.stop()
            thread.join(timeout=30)


def measure_freshness(
    log_url: str, store: GraphStore, trials: int = 100, timeout_s: float = 10.0
) -> dict[str, float]:
    """Produce ``trials`` single events, one at a time; time each until the graph shows it.

    Returns p50/p99/max in milliseconds. The sink runs in this process, reading ``log_url``.
    """
    writer = open_writer(log_url)
    events_topic = parse_log_url(log_url).events

    def one(n: int, limit_s: float) -> float:
        user = NodeRef(NodeKind.USER, f"fresh-{uuid.uuid4().hex[:10]}")
        event = Interaction(f"fresh-{n}", user, "fresh-item", Behaviour.CLICK, time.time())
        started = time.perf_counter()
        writer.send(events_topic, [event_record(event)])
        while not store.neighbourhood([user], [1]).found[0]:
            if time.perf_counter() - started > limit_s:
                raise TimeoutError(f"event {n} not visible after {limit_s} s")
            time.sleep(0.002)
        return (time.perf_counter() - started) * 1000

    with running_sink(log_url, store, group=f"freshness-{uuid.uuid4().hex[:8]}"):
        one(-1, limit_s=300.0)  # warm-up: group join and catching up with the backlog
        latencies = [one(n, timeout_s) for n in range(trials)]
    ms = np.array(latencies)
    return {
        "trials": trials,
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
    }

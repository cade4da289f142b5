"""Freshness: time from producing an event to seeing it in the graph, with the sink running."""

from __future__ import annotations

import time
import uuid

import numpy as np

from graphrec.pipeline import running_sink
from graphstore import Behaviour, GraphStore, Interaction, NodeKind, NodeRef
from streaming.produce import event_record
from streaming.urls import open_writer, parse_log_url


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
        event = Interaction(f"{user.key}-{n}", user, "fresh-item", Behaviour.CLICK, time.time())
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

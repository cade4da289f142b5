"""The change feed outlives a Kafka that is down at start: it reports itself down (metrics,
health), retries with back-off, and keeps at it until stopped. No servers needed: Kafka is
a closed local port here (tests/faults/test_changefeed_kafka.py uses the real one)."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from graphrec.changefeed import LOOP_NAME, ChangeFeed
from graphstore import open_store
from serving.loops import LoopMetrics, LoopState, run_forever
from tests.integration.waiting import wait_until

HEALTH_NAME = "graphrec.v1.Recommender/change-feed"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name, {"loop": LOOP_NAME})


def test_kafka_down_at_start_is_reported_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="serving.loops")
    registry = CollectorRegistry()
    health: list[tuple[str, bool]] = []
    state = LoopState(LOOP_NAME, LoopMetrics(registry), lambda name, ok: health.append((name, ok)))
    with open_store("memory://") as store:
        feed = ChangeFeed(f"kafka://127.0.0.1:{closed_port()}", store, lambda *a: None, state=state)
        feed.start()
        try:
            failures = "graphrec_background_failures_total"
            wait_until("two failed attempts", lambda: (sample(registry, failures) or 0) >= 2, 60)
            assert feed.is_alive(), "the feed must keep retrying, not die"
            assert sample(registry, "graphrec_background_up") == 0
            assert health == [(HEALTH_NAME, False)]
            assert "change-feed failed (NoBrokersAvailable" in caplog.text
            assert "retrying in" in caplog.text
        finally:
            feed.stop()
            feed.join(timeout=30)
        assert not feed.is_alive(), "stop() must end the back-off wait"


def test_a_loop_recovers_and_its_back_off_starts_over() -> None:
    registry = CollectorRegistry()
    health: list[tuple[str, bool]] = []
    state = LoopState("trainer", LoopMetrics(registry), lambda name, ok: health.append((name, ok)))
    stopping = threading.Event()
    calls = iter(range(100))
    seen: list[int] = []

    def work() -> None:
        n = next(calls)
        if n in (0, 1, 3):  # down, down, up, down again, up
            raise ConnectionError(f"attempt {n}")
        state.succeeded()
        seen.append(state.failures_in_a_row)
        if n == 4:
            stopping.set()
            return
        raise ConnectionError("lost it after working")

    started = time.monotonic()
    run_forever(work, state, stopping, first_wait_s=0.01, max_wait_s=0.05)
    assert time.monotonic() - started < 5
    assert seen == [0, 0]  # a success resets the failures in a row
    labels = {"loop": "trainer"}
    assert registry.get_sample_value("graphrec_background_failures_total", labels) == 4
    assert registry.get_sample_value("graphrec_background_up", labels) == 1
    assert registry.get_sample_value(
        "graphrec_background_last_success_timestamp_seconds", labels
    ) == pytest.approx(time.time(), abs=5)
    name = "graphrec.v1.Recommender/trainer"
    assert health == [(name, False), (name, True), (name, False), (name, True)]

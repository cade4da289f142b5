"""The change feed against the real Kafka going down and coming back: `graphrec serve`'s
feed reports itself down in /metrics and gRPC health while Kafka is down, and recovers by
itself when it returns, without a restart.

Stops the shared Kafka with deploy/services.sh: run it only under the servers' lock, as all
integration tests (`flock /tmp/graphrec-servers.lock python -m pytest -m integration ...`).
Kafka is started again whatever happens.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from graphrec.changefeed import LOOP_NAME
from graphrec.serving_cli import _feed
from graphstore import open_store
from serving.app import Serving
from serving.server import ServerConfig
from tests.integration.servers import Servers, services
from tests.integration.waiting import wait_until

HEALTH_NAME = f"graphrec.v1.Recommender/{LOOP_NAME}"


@pytest.fixture
def kafka_down(servers: Servers) -> Iterator[str]:
    services("down", "kafka")
    try:
        yield servers.kafka
    finally:
        services("up", "kafka")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_feed_started_with_kafka_down_recovers_when_it_returns(
    kafka_down: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    config = ServerConfig(address="127.0.0.1:0", metrics_port=metrics_port)
    with open_store("memory://") as graph:
        serving = Serving(graph, tmp_path / "models", config=config)
        port = serving.start()
        feed = _feed(f"kafka://{kafka_down}/faults-feed-{port}", graph, serving)
        feed.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)

                def status() -> int:
                    request = health_pb2.HealthCheckRequest(service=HEALTH_NAME)
                    return int(health.Check(request, timeout=5).status)

                def up() -> float | None:
                    return serving.metrics.registry.get_sample_value(
                        "graphrec_background_up", {"loop": LOOP_NAME}
                    )

                failures = {"loop": LOOP_NAME}
                wait_until(
                    "the feed to fail twice",
                    lambda: (
                        (
                            serving.metrics.registry.get_sample_value(
                                "graphrec_background_failures_total", failures
                            )
                            or 0
                        )
                        >= 2
                    ),
                    60,
                )
                assert feed.is_alive() and up() == 0
                assert status() == health_pb2.HealthCheckResponse.NOT_SERVING
                page = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read()
                assert b'graphrec_background_up{loop="change-feed"} 0.0' in page

                services("up", "kafka")
                wait_until("the feed to reconnect", lambda: up() == 1, 180)
                assert status() == health_pb2.HealthCheckResponse.SERVING
        finally:
            feed.stop()
            feed.join(timeout=30)
            serving.stop()

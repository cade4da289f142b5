"""The recommendation log on the real Kafka while Kafka goes down and comes back: Recommend
answers every request meanwhile, the drop counter rises in /metrics and the log's loop shows
itself down there within a minute (a write waits ten seconds at most, not the producer's
two-minute delivery timeout), and answers given after the broker returns are in the topic
again, without a restart.

Stops the shared Kafka with deploy/services.sh: run it only under the servers' lock, as all
integration tests (`flock /tmp/graphrec-servers.lock python -m pytest -m integration ...`).
Kafka is started again whatever happens.
"""

from __future__ import annotations

import socket
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from graphrec.reclog import log_config
from graphstore import open_store
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.logrecord import decode
from serving.server import ServerConfig
from streaming.topicread import read_topic
from tests.integration.servers import Servers, services
from tests.integration.waiting import wait_until
from tests.serving.conftest import World, world  # noqa: F401  (the trained world fixture)
from tests.serving.test_service import user_with_most_items

DROPPED = 'graphrec_recommendation_log_dropped_total{reason="full"}'
UP = 'graphrec_background_up{loop="recommendation-log"}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def on_the_page(port: int, sample: str) -> float:
    """The value of ``sample`` on the service's /metrics page (0 when it is not there)."""
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    line = next((x for x in page.splitlines() if x.startswith(sample + " ")), f"{sample} 0")
    return float(line.split()[-1])


@pytest.mark.integration
def test_answers_go_on_while_kafka_is_down_and_the_log_resumes(
    servers: Servers,
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    topic = f"recommendations-test-{uuid.uuid4().hex[:8]}"
    url = f"kafka://{servers.kafka}?recommendations={topic}"
    reclog = replace(log_config(url), capacity=20, max_batch=10, linger_s=0.0)
    metrics_port = free_port()
    config = ServerConfig(address="127.0.0.1:0", metrics_port=metrics_port)
    store = open_store(world.store_url)
    serving = Serving(store, world.models, config=config, recommendation_log=reclog)
    channel = grpc.insecure_channel(f"127.0.0.1:{serving.start()}")
    stub = pb_grpc.RecommenderStub(channel)
    request = pb.RecommendRequest(subject=pb.Subject(user_id=user_with_most_items(world)), k=5)

    def ask(*ids: str) -> set[str]:
        for rid in ids:  # each answered within its deadline, or the test fails
            assert stub.Recommend(request, timeout=5.0, metadata=(("x-request-id", rid),)).items
        return set(ids)

    logged: set[str] = set()

    def logged_now() -> set[str]:
        logged.update(decode(r.value).request_id for r in read_topic(url, topic))
        return logged

    after: set[str] = set()

    def answered_and_logged() -> bool:
        """One more answer; has any answer given since Kafka returned reached the topic?"""
        after.update(ask(f"after-{len(after)}"))
        return bool(after & logged_now())

    try:
        before = ask(*(f"before-{i}" for i in range(5)))
        wait_until("the first answers in the topic", lambda: before <= logged_now(), 60)
        services("down", "kafka")
        try:
            ask(*(f"down-{i}" for i in range(100)))
            assert on_the_page(metrics_port, DROPPED) >= 100 - 20 - 10  # queue + a stuck batch
            wait_until("the log down in /metrics", lambda: on_the_page(metrics_port, UP) == 0, 60)
        finally:
            services("up", "kafka")
        wait_until("an answer given after Kafka returned in the topic", answered_and_logged, 240)
        wait_until("the log up in /metrics", lambda: on_the_page(metrics_port, UP) == 1, 10)
    finally:
        channel.close()
        serving.stop()
        store.close()

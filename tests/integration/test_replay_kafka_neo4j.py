"""graphrec replay on the real servers: the last 2% of ML-100K through fresh Kafka topics into
an emptied Neo4j, against a live service with its change feed, a sink following Kafka and the
periodic trainer retraining as the replayed events arrive."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from gnn.datasets import load_ml100k
from gnn.train import TrainConfig
from gnn.trainer import PeriodicTrainer, Schedule, train_once
from graphrec.changecount import ChangeCount
from graphrec.changefeed import ChangeFeed
from graphrec.pipeline import running_sink
from graphrec.replay import ReplaySettings, Source, split_index
from graphrec.replay_cli import Server, load_past, run
from graphrec.replay_sync import sink_backlog
from graphstore.neo4j import Neo4jGraphStore
from serving.app import Serving
from serving.server import ServerConfig
from tests.integration.servers import Servers

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Live:
    source: Source
    log_url: str
    group: str
    models: Path
    address: str


@pytest.fixture(scope="module")
def live(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tag = uuid.uuid4().hex[:8]
    log_url = (
        f"kafka://{servers.kafka}/replay-{tag}-events?items=replay-{tag}-items"
        f"&changes=replay-{tag}-changes"
    )
    data = load_ml100k()
    cut = split_index(data.interactions, 0.98)
    source = Source(data.name, data.items, data.interactions[:cut], data.interactions[cut:])
    models = tmp_path_factory.mktemp("models")
    store = Neo4jGraphStore.from_url(servers.neo4j)
    store.reset()
    group = f"sink-{tag}"
    with closing(store), running_sink(log_url, store, group, batch_size=2_000):
        load_past(source, log_url, group, timeout_s=600)
        train_once(store.snapshot(), TrainConfig(epochs=3, seed=0), models)
        serving = Serving(store, models, config=ServerConfig("127.0.0.1:0"), reload_every_s=0.5)
        port = serving.start()
        feed = ChangeFeed(log_url, store, serving.items_changed)
        feed.start()
        stopping = threading.Event()
        trainer = PeriodicTrainer(
            lambda: Neo4jGraphStore.from_url(servers.neo4j),
            TrainConfig(epochs=2, seed=1),
            models,
            Schedule(every_events=1_000),
            new_events=ChangeCount(log_url),
            warm=True,
        )
        thread = threading.Thread(target=trainer.run, args=(stopping,), daemon=True)
        thread.start()
        try:
            yield Live(source, log_url, group, models, f"127.0.0.1:{port}")
        finally:
            stopping.set()
            thread.join(timeout=300)
            trainer.close()
            feed.stop()
            serving.stop()


def test_replay_of_ml100k_through_kafka_and_neo4j(live: Live) -> None:
    assert sink_backlog(live.log_url, live.group) == 0  # load_past waited for the sink
    settings = ReplaySettings(k=20, probe_every=25)
    report = run(live.source, live.log_url, Server(live.address), settings, live.models)
    outcome = report.outcome
    assert outcome.produced == len(live.source.after)
    assert len(outcome.scored) + outcome.repeats == outcome.produced
    figures = report.as_dict()
    online, offline = figures["online"], figures["offline"]
    assert isinstance(online, dict) and isinstance(offline, dict)
    assert online["all"]["n"] == offline["all"]["n"] == len(outcome.scored) > 1_000
    assert {"view", "known users"} <= set(online)
    # Liked ratings follow their view on the same item: produced, not scored.
    assert outcome.repeats > 0
    # A model that learned anything beats chance (20 of 1,682 movies) by far, online and not.
    assert online["all"]["hit_rate"] > 0.05 and offline["all"]["hit_rate"] > 0.05
    lag = report.lag
    assert lag is not None and lag["probed"] >= 5 and lag["timeouts"] == 0

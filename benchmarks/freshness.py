"""Freshness: time from producing a change to seeing it in the graph (``measure_freshness``,
the sink alone), and to seeing it in Recommend answers through the sink, its change stream
and the service's change feed (``bench_freshness``)."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from gnn.datasets import Dataset, SyntheticConfig, generate
from gnn.train import TrainConfig
from gnn.trainer import train_once
from graphrec.changefeed import serving_feed
from graphrec.pipeline import ingest, produce_dataset, running_sink
from graphstore import Behaviour, GraphStore, Interaction, ItemRecord, NodeKind, NodeRef, open_store
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.server import ServerConfig
from streaming.codec import encode_item
from streaming.produce import event_record
from streaming.records import OutRecord
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


def bench_freshness(
    trials: int = 100,
    store_url: str | None = None,
    kafka: str | None = None,
    epochs: int = 5,
    timeout_s: float = 10.0,
) -> dict[str, object]:
    """Freshness through the change stream (``graphrec bench freshness``): a trained service
    with its change feed and a sink following the log; per trial, a change produced to the
    log until a Recommend answer reflects it. ``new_item``: a catalogue upsert and a click on
    the item, until it is ranked in its category; ``reembed``: a click on a known item, until
    its score for a user changes (it was re-embedded). Beside them, the same run's produce →
    visible in the graph (``measure_freshness``), which every served change waits for.

    ``store_url`` (emptied!) and ``kafka`` (new topics) put it on the real servers; by
    default a fresh embedded store and log. Figures in milliseconds."""
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="graphrec-bench-fresh-") as work:
        root = Path(work)
        log_url = (
            f"kafka://{kafka}/fresh-{run}-events?items=fresh-{run}-items&changes=fresh-{run}-changes"
            f"&changes=fresh-{run}-changes"
            if kafka
            else f"log://{root / 'log'}"
        )
        dataset = generate(SyntheticConfig(seed=4, events=6_000, users=300, items=400))
        produce_dataset(log_url, dataset)
        with open_store(store_url or f"sqlite://{root / 'graph'}") as store:
            if store_url:
                store.reset()
            ingest(log_url, store, group=f"fresh-{run}", idle_exit_s=2.0 if kafka else 0.3)
            train_once(store.snapshot(), TrainConfig(epochs=epochs, seed=0), root / "models")
            graph = measure_freshness(log_url, store, trials, timeout_s)
            served = _served(log_url, store, dataset, root / "models", trials, timeout_s)
    return {
        "bench": "freshness",
        "backend": "kafka+neo4j" if kafka else "embedded",
        "trials": trials,
        "graph": graph,
        **served,
        "goal": "p99 < 1000 ms through the change stream",
    }


def _served(
    log_url: str,
    store: GraphStore,
    dataset: Dataset,
    models: Path,
    trials: int,
    timeout_s: float,
) -> dict[str, dict[str, float]]:
    """The served trials, with a service, its feed and a sink running."""
    serving = Serving(store, models, config=ServerConfig("127.0.0.1:0"))
    port = serving.start()
    feed = serving_feed(log_url, store, serving)
    feed.start()
    try:
        with (
            running_sink(log_url, store, group=f"fresh-{uuid.uuid4().hex[:8]}"),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            trial = _Trials(stub=pb_grpc.RecommenderStub(channel), log_url=log_url, dataset=dataset)
            trial.new_item(-1, 300.0)  # warm-up: the group joins, the feed reads the stream
            new_item = [trial.new_item(n, timeout_s) for n in range(trials)]
            reembed = [trial.reembed(n, timeout_s) for n in range(trials)]
    finally:
        feed.stop()
        feed.join(timeout=30)
        serving.stop()
    return {"new_item": _figures(new_item), "reembed": _figures(reembed)}


@dataclass
class _Trials:
    stub: pb_grpc.RecommenderStub
    log_url: str
    dataset: Dataset

    def __post_init__(self) -> None:
        self.writer = open_writer(self.log_url)
        self.address = parse_log_url(self.log_url)
        actors = Counter(
            i.actor.key for i in self.dataset.interactions if i.actor.kind is NodeKind.USER
        )
        self.user = pb.Subject(user_id=actors.most_common(1)[0][0])

    def new_item(self, n: int, timeout_s: float) -> float:
        """A new item and a click on it → ranked in its category (ms)."""
        template = self.dataset.items[abs(n) % len(self.dataset.items)]
        item = ItemRecord(
            f"fresh-new-{uuid.uuid4().hex[:10]}",
            template.category_path,
            "fresh",
            template.numeric_features,
        )
        request = pb.RecommendRequest(
            subject=self.user, k=1_000, category="/".join(item.category_path), include_seen=True
        )
        started = time.perf_counter()
        self.writer.send(self.address.items, [OutRecord(encode_item(item), item.item_id.encode())])
        self._click(item.item_id)
        return self._until(
            lambda: item.item_id in [i.item_id for i in self.stub.Recommend(request).items],
            started,
            timeout_s,
        )

    def reembed(self, n: int, timeout_s: float) -> float:
        """A click on a known item → its score for the user changes (ms)."""
        item = self.dataset.items[(n * 7) % len(self.dataset.items)].item_id
        request = pb.ScoreItemsRequest(subject=self.user, item_ids=[item])
        before = self.stub.ScoreItems(request).items[0].score
        started = time.perf_counter()
        self._click(item)
        return self._until(
            lambda: self.stub.ScoreItems(request).items[0].score != before, started, timeout_s
        )

    def _click(self, item: str) -> None:
        session = NodeRef(NodeKind.SESSION, f"fresh-{uuid.uuid4().hex[:10]}")
        click = Interaction(f"{session.key}-0", session, item, Behaviour.CLICK, time.time())
        self.writer.send(self.address.events, [event_record(click)])

    @staticmethod
    def _until(reflected: Callable[[], bool], started: float, timeout_s: float) -> float:
        while not reflected():
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"a change was not reflected in {timeout_s} s")
            time.sleep(0.002)
        return (time.perf_counter() - started) * 1000


def _figures(latencies: list[float]) -> dict[str, float]:
    ms = np.array(latencies)
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
    }

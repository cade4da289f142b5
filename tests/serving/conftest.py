"""A small trained world for the service tests: a synthetic shop ingested through the embedded
log and sink, a model trained on it, and a live server on port 0 over a real channel."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from gnn.datasets import Dataset, SyntheticConfig, generate
from gnn.train import TrainConfig
from gnn.trainer import train_once
from graphrec.pipeline import ingest, produce_dataset
from graphstore import GraphStore, open_store
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.server import ServerConfig


@dataclass
class World:
    root: Path
    log_url: str
    store_url: str
    models: Path
    dataset: Dataset


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    dataset = generate(SyntheticConfig(seed=3, events=6_000, users=300, items=400))
    w = World(root, f"log://{root / 'log'}", f"sqlite://{root / 'graph'}", root / "models", dataset)
    produce_dataset(w.log_url, dataset)
    with open_store(w.store_url) as store:
        ingest(w.log_url, store, group="sink", idle_exit_s=0.3)
        train_once(store.snapshot(), TrainConfig(epochs=20, seed=0), w.models)
    return w


@dataclass
class Served:
    serving: Serving
    store: GraphStore
    channel: grpc.Channel
    stub: pb_grpc.RecommenderStub


def serve(world: World, config: ServerConfig | None = None, models: Path | None = None) -> Served:
    store = open_store(world.store_url)
    serving = Serving(
        store,
        models or world.models,
        config=config or ServerConfig(address="127.0.0.1:0"),
        reload_every_s=0.2,
    )
    port = serving.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return Served(serving, store, channel, pb_grpc.RecommenderStub(channel))


def close(served: Served) -> None:
    served.channel.close()
    served.serving.stop()
    served.store.close()


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[Served]:
    s = serve(world)
    yield s
    close(s)

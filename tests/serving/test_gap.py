"""Nothing between training and serving is missed: events the sink applied after the
training snapshot, before and while the server starts, reach the item table once the change
feed (started from the loaded version's watermarks, following the sink's change stream)
catches up; an item created in that window is recommendable and has similar items. Embedded
backend here; tests/integration/test_gap_kafka_neo4j.py runs the same on Kafka and Neo4j."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from gnn.checkpoint import current_version, set_current
from gnn.datasets import Dataset
from gnn.train import TrainConfig
from gnn.trainer import train_once
from gnn.version import load_version
from graphrec.changefeed import ChangeFeed, serving_feed
from graphstore import GraphStore, Interaction, ItemRecord, open_store
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.server import ServerConfig
from tests.serving.conftest import Served, World, close, serve
from tests.serving.test_operations import click, own_world, publish, wait_for

__all__ = ["own_world"]  # the fixture this module uses
STALENESS = "graphrec_change_feed_staleness_seconds"


@dataclass
class GapWorld:
    """A trained world on one backend: its log, models, dataset, a way to open its store,
    and ``publish(events, items)``: write to the log and run the sink until it is idle."""

    log_url: str
    models: Path
    dataset: Dataset
    open_graph: Callable[[], GraphStore]
    publish: Callable[[list[Interaction], list[ItemRecord]], None]


def following(world: World, served: Served) -> ChangeFeed:
    """A started change feed for ``served``, from its loaded version's watermarks."""
    feed = serving_feed(world.log_url, served.store, served.serving)
    feed.start()
    return feed


def check_the_gap_is_closed(world: GapWorld) -> None:
    """Changes after the training snapshot, before and during the server's start, are all
    re-embedded once the feed catches up, and nothing else is."""
    name = current_version(world.models)
    assert name is not None
    trained = load_version(world.models / name)
    rows = {k: r for r, k in enumerate(trained.index.items)}
    known = [i.item_id for i in world.dataset.items[20:23]]
    template = world.dataset.items[5]
    new = ItemRecord("gap-new", template.category_path, "gap item", template.numeric_features)
    # after the training snapshot, before the server starts
    before = [click(f"s-gap-{n}", item, n) for n, item in enumerate([known[0], "gap-new"] * 3)]
    before += [click(f"s-gap-b-{n}", known[1], n) for n in range(3)]
    world.publish(before, [new])

    store = world.open_graph()
    serving = Serving(store, world.models, config=ServerConfig("127.0.0.1:0"), reload_every_s=0.2)
    channel = grpc.insecure_channel(f"127.0.0.1:{serving.start()}")
    # while it starts: the sink applies more before the feed has caught up
    late = [click(f"s-late-{n}", known[2], n) for n in range(3)]
    during = threading.Thread(target=world.publish, args=(late, []))
    during.start()
    feed = serving_feed(world.log_url, store, serving)
    feed.start()
    try:
        during.join(timeout=120)
        assert not during.is_alive()

        def table_caught_up() -> bool:
            table = serving.registry.current().table  # type: ignore[union-attr]
            vectors = table.embeddings.vectors()
            if not 0 <= table.index.get("gap-new", -1) < table.size:
                return False
            return all(
                not np.array_equal(vectors[rows[k]], trained.items.embeddings[rows[k]])
                for k in known
            )

        wait_for(table_caught_up, timeout_s=60)
        staleness = lambda: serving.metrics.registry.get_sample_value(STALENESS)  # noqa: E731
        wait_for(lambda: staleness() == 0.0, timeout_s=30)
        table = serving.registry.current().table  # type: ignore[union-attr]
        untouched = rows[world.dataset.items[0].item_id]
        assert np.array_equal(
            table.embeddings.vectors()[untouched], trained.items.embeddings[untouched]
        )
        stub = pb_grpc.RecommenderStub(channel)
        similar = stub.Recommend(pb.RecommendRequest(subject=pb.Subject(item_id="gap-new"), k=5))
        assert len(similar.items) == 5 and not similar.fallback
        assert "gap-new" not in [i.item_id for i in similar.items]
        someone = pb.Subject(session=pb.SessionContext(session_id="s-gap-0"))
        ranked = stub.Recommend(
            pb.RecommendRequest(
                subject=someone, k=1_000, category="/".join(new.category_path), include_seen=True
            )
        )
        assert "gap-new" in [i.item_id for i in ranked.items]
    finally:
        feed.stop()
        feed.join(timeout=10)
        channel.close()
        serving.stop()
        store.close()


def test_changes_after_the_training_snapshot_reach_the_item_table(own_world: World) -> None:
    check_the_gap_is_closed(
        GapWorld(
            own_world.log_url,
            own_world.models,
            own_world.dataset,
            lambda: open_store(own_world.store_url),
            lambda events, items: publish(own_world, events, items),
        )
    )


def test_a_hot_reloaded_version_gets_the_changes_since_its_snapshot(own_world: World) -> None:
    served = serve(own_world)
    feed = following(own_world, served)
    try:
        snapshot = served.store.snapshot()  # the next version trains on the graph as of now
        known = own_world.dataset.items[30].item_id
        first = served.serving.registry.current()
        assert first is not None
        row = first.table.index[known]
        trained_row = first.table.embeddings.vectors()[row].copy()
        publish(own_world, events=[click(f"s-reload-{n}", known, n) for n in range(3)])

        def reembedded_on_first() -> bool:
            engine = served.serving.registry.current()
            assert engine is not None
            return not np.array_equal(engine.table.embeddings.vectors()[row], trained_row)

        wait_for(reembedded_on_first, timeout_s=30)

        result = train_once(snapshot, TrainConfig(epochs=5, seed=1), own_world.models)
        second = str(result["version"])
        set_current(own_world.models, second)
        wait_for(lambda: served.serving.registry.version == second, timeout_s=30)
        reloaded = load_version(own_world.models / second)
        saved_row = reloaded.items.embeddings[list(reloaded.index.items).index(known)]

        def reembedded_on_second() -> bool:
            engine = served.serving.registry.current()
            assert engine is not None
            return not np.array_equal(
                engine.table.embeddings.vectors()[engine.table.index[known]], saved_row
            )

        wait_for(reembedded_on_second, timeout_s=30)  # the clicks after its snapshot count
    finally:
        feed.stop()
        feed.join(timeout=10)
        close(served)

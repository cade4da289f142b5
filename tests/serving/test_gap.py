"""Nothing between training and serving is missed: events the sink applied after the
training snapshot, before and while the server starts, reach the item table once the change
feed (started from the loaded version's watermarks) catches up. Embedded backend."""

from __future__ import annotations

import threading

import numpy as np

from gnn.checkpoint import current_version, set_current
from gnn.train import TrainConfig
from gnn.trainer import train_once
from gnn.version import load_version
from graphrec.changefeed import ChangeFeed
from graphstore import ItemRecord
from protos import graphrec_pb2 as pb
from tests.serving.conftest import Served, World, close, serve
from tests.serving.test_operations import click, own_world, publish, wait_for

__all__ = ["own_world"]  # the fixture this module uses


def following(world: World, served: Served) -> ChangeFeed:
    """A started change feed for ``served``, from its loaded version's watermarks."""
    feed = ChangeFeed(
        world.log_url,
        served.store,
        served.serving.items_changed,
        start_from=served.serving.watermarks,
    )
    feed.start()
    return feed


def test_changes_after_the_training_snapshot_reach_the_item_table(own_world: World) -> None:
    name = current_version(own_world.models)
    assert name is not None
    trained = load_version(own_world.models / name)
    rows = {k: r for r, k in enumerate(trained.index.items)}
    known = [i.item_id for i in own_world.dataset.items[20:23]]
    template = own_world.dataset.items[5]
    new = ItemRecord("gap-new", template.category_path, "gap item", template.numeric_features)
    # after the training snapshot, before the server starts
    before = [click(f"s-gap-{n}", item, n) for n, item in enumerate([known[0], "gap-new"] * 3)]
    before += [click(f"s-gap-b-{n}", known[1], n) for n in range(3)]
    publish(own_world, events=before, items=[new])

    served = serve(own_world)
    # while it starts: the sink applies more before the feed has caught up
    during = threading.Thread(
        target=publish,
        args=(own_world, [click(f"s-late-{n}", known[2], n) for n in range(3)]),
    )
    during.start()
    feed = following(own_world, served)
    try:
        during.join(timeout=30)
        assert not during.is_alive()

        def table_caught_up() -> bool:
            table = served.serving.registry.current().table  # type: ignore[union-attr]
            vectors = table.embeddings.vectors()
            if not 0 <= table.index.get("gap-new", -1) < table.size:
                return False
            return all(
                not np.array_equal(vectors[rows[k]], trained.items.embeddings[rows[k]])
                for k in known
            )

        wait_for(table_caught_up, timeout_s=30)
        response = served.stub.Recommend(
            pb.RecommendRequest(subject=pb.Subject(item_id="gap-new"), k=5)
        )
        assert len(response.items) == 5 and not response.fallback
        assert "gap-new" not in [i.item_id for i in response.items]
        untouched = rows[own_world.dataset.items[0].item_id]
        table = served.serving.registry.current().table  # type: ignore[union-attr]
        assert np.array_equal(
            table.embeddings.vectors()[untouched], trained.items.embeddings[untouched]
        )
    finally:
        feed.stop()
        feed.join(timeout=10)
        close(served)


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

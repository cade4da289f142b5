"""The service in operation: live updates, cold-start items, hot reload, shedding, auth, TLS."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from gnn.train import TrainConfig
from gnn.trainer import train_once
from graphrec.changefeed import ChangeFeed
from graphrec.pipeline import ingest
from graphstore import (
    Behaviour,
    GraphStore,
    Interaction,
    ItemRecord,
    Neighbourhood,
    NodeKind,
    NodeRef,
    open_store,
)
from protos import graphrec_pb2 as pb
from serving.recommender import Recommender
from serving.server import ServerConfig
from serving.types import Subject, SubjectKind
from streaming.codec import encode_event, encode_item
from streaming.records import OutRecord
from streaming.urls import open_writer
from tests.serving.conftest import Served, World, close, serve


@pytest.fixture
def own_world(world: World, tmp_path: Path) -> World:
    """A copy of the trained world that a test may change."""
    return copy_of(world, tmp_path / "world")


def copy_of(world: World, root: Path) -> World:
    """``world`` copied to ``root`` (its log, graph and models), to change at will."""
    shutil.copytree(world.root, root)
    return replace(
        world,
        root=root,
        log_url=f"log://{root / 'log'}",
        store_url=f"sqlite://{root / 'graph'}",
        models=root / "models",
    )


@pytest.fixture
def live(own_world: World) -> Iterator[Served]:
    """A server on the copied world with its change feed following the log."""
    served = serve(own_world)
    feed = ChangeFeed(own_world.log_url, served.store, served.serving.items_changed)
    feed.start()
    yield served
    feed.stop()
    feed.join(timeout=10)
    close(served)


def publish(world: World, events: list[Interaction] = (), items: list[ItemRecord] = ()) -> None:
    """Write to the log and run the sink until it is idle (what `graphrec ingest` does)."""
    writer = open_writer(world.log_url)
    if items:
        writer.send("items", [OutRecord(encode_item(i), i.item_id.encode()) for i in items])
    if events:
        writer.send("events", [OutRecord(encode_event(e), e.actor.key.encode()) for e in events])
    with open_store(world.store_url) as store:
        ingest(world.log_url, store, group="sink", idle_exit_s=0.2)


def wait_for(condition, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def click(session: str, item: str, n: int = 0) -> Interaction:
    return Interaction(
        f"{session}-{n}", NodeRef(NodeKind.SESSION, session), item, Behaviour.CLICK, time.time()
    )


def test_a_click_in_the_log_changes_the_next_recommendation(live: Served, own_world: World) -> None:
    def ask() -> pb.RecommendResponse:
        return live.stub.Recommend(
            pb.RecommendRequest(subject=pb.Subject(session=pb.SessionContext(session_id="s-live")))
        )

    before = ask()
    assert before.fallback
    item = own_world.dataset.items[11].item_id
    publish(own_world, events=[click("s-live", item)])
    after = ask()
    assert not after.fallback
    assert [i.item_id for i in after.items] != [i.item_id for i in before.items]
    assert item not in [i.item_id for i in after.items]  # seen


def test_new_interactions_re_embed_the_items_they_touch(live: Served, own_world: World) -> None:
    engine = live.serving.registry.current()
    assert engine is not None
    quiet = Counter(i.item_id for i in own_world.dataset.interactions)
    item = min((i.item_id for i in own_world.dataset.items), key=lambda k: quiet[k])
    row = engine.table.index[item]
    before = engine.table.embeddings.vectors()[row].copy()
    untouched = engine.table.embeddings.vectors()[engine.table.index["p0"]].copy()
    publish(own_world, events=[click(f"s-re-{n}", item, n) for n in range(5)])
    wait_for(lambda: not np.array_equal(engine.table.embeddings.vectors()[row], before))
    assert np.array_equal(engine.table.embeddings.vectors()[engine.table.index["p0"]], untouched)
    refreshed = live.serving.metrics.registry.get_sample_value("graphrec_items_refreshed_total")
    assert refreshed and refreshed >= 1


def test_an_item_upserted_after_training_is_recommendable(live: Served, own_world: World) -> None:
    template = own_world.dataset.items[5]
    leaf = "/".join(template.category_path)
    new = ItemRecord("brand-new", template.category_path, "new serum", template.numeric_features)
    publish(own_world, items=[new])
    table = lambda: live.serving.registry.current().table  # noqa: E731
    wait_for(lambda: "brand-new" in table().index and table().index["brand-new"] < table().size)

    # a session browsing its category scores it well above items of other categories
    same = [i.item_id for i in own_world.dataset.items if i.category_path == template.category_path]
    others = [
        i.item_id
        for i in own_world.dataset.items
        if i.category_path[0] != template.category_path[0]
    ]
    subject = pb.Subject(
        session=pb.SessionContext(
            session_id="s-cold", events=[pb.Event(item_id=i, type=pb.CLICK) for i in same[:3]]
        )
    )
    scored = live.stub.ScoreItems(
        pb.ScoreItemsRequest(subject=subject, item_ids=["brand-new", *others[:50]])
    )
    scores = {s.item_id: s.score for s in scored.items}
    assert np.isfinite(scores["brand-new"])
    assert scores["brand-new"] > np.median([scores[i] for i in others[:50]])
    # recommendable: it shows up among its category's recommendations
    response = live.stub.Recommend(
        pb.RecommendRequest(subject=subject, k=len(same) + 1, category=leaf)
    )
    assert "brand-new" in [i.item_id for i in response.items]
    # and its similar items come from its own part of the tree
    similar = live.stub.Recommend(
        pb.RecommendRequest(subject=pb.Subject(item_id="brand-new"), k=10)
    )
    roots = Counter(i.category_path[0] for i in similar.items)
    assert roots.most_common(1)[0][0] == template.category_path[0]


def test_hot_reload_under_load_fails_no_request(own_world: World) -> None:
    served = serve(own_world)
    try:
        first = served.serving.registry.version
        users = [
            i.actor.key
            for i in own_world.dataset.interactions[:200]
            if i.actor.kind is NodeKind.USER
        ]
        failures: list[BaseException] = []
        versions: Counter[str] = Counter()
        stop = threading.Event()

        def hammer(n: int) -> None:
            while not stop.is_set():
                try:
                    r = served.stub.Recommend(
                        pb.RecommendRequest(
                            subject=pb.Subject(user_id=users[n % len(users)]), k=10
                        ),
                        timeout=10,
                    )
                    versions[r.model_version] += 1
                except grpc.RpcError as exc:
                    failures.append(exc)
                n += 1

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: versions[first] >= 20)  # under load on the first version
            with open_store(own_world.store_url) as store:
                # a second version, published with the same validation metric gate
                snapshot = store.snapshot()
            result = train_once(snapshot, TrainConfig(epochs=20, seed=0), own_world.models)
            assert result["published"]
            wait_for(lambda: served.serving.registry.version == result["version"], 30)
            wait_for(lambda: versions[str(result["version"])] >= 20)  # and on the new one
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not failures, failures[:3]
    finally:
        close(served)


def test_full_queue_sheds_with_resource_exhausted_only(world: World) -> None:
    served = serve(world, ServerConfig(address="127.0.0.1:0", workers=1, max_inflight=2))
    try:
        users = [
            i.actor.key for i in world.dataset.interactions[:100] if i.actor.kind is NodeKind.USER
        ]
        calls = [
            served.stub.Recommend.future(pb.RecommendRequest(subject=pb.Subject(user_id=u), k=20))
            for u in users * 2
        ]
        codes = Counter()
        for call in calls:
            try:
                call.result()
                codes[grpc.StatusCode.OK] += 1
            except grpc.RpcError as exc:
                codes[exc.code()] += 1
        assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert (
            served.serving.metrics.registry.get_sample_value("graphrec_requests_shed_total")
            == codes[grpc.StatusCode.RESOURCE_EXHAUSTED]
        )
    finally:
        close(served)


def test_requests_arriving_together_are_answered_in_batches_as_if_alone(world: World) -> None:
    served = serve(world, ServerConfig(address="127.0.0.1:0", workers=1, max_batch=8))
    users = sorted(
        {i.actor.key for i in world.dataset.interactions if i.actor.kind is NodeKind.USER}
    )[:24]
    requests = [pb.RecommendRequest(subject=pb.Subject(user_id=u), k=10) for u in users]
    requests += [pb.RecommendRequest(subject=pb.Subject(user_id=" "), k=10)]  # refused alone
    try:
        alone = [served.stub.Recommend(r) for r in requests[:-1]]
        metrics = served.serving.metrics.registry
        before = metrics.get_sample_value("graphrec_recommend_batch_size_count") or 0.0
        calls = [served.stub.Recommend.future(r) for r in requests]
        together = [call.result() for call in calls[:-1]]
        with pytest.raises(grpc.RpcError) as refused:
            calls[-1].result()
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        batches = metrics.get_sample_value("graphrec_recommend_batch_size_count") - before
        assert batches < len(requests)  # some waited and went together
        within = metrics.get_sample_value("graphrec_recommend_batch_size_bucket", {"le": "8.0"})
        assert within == metrics.get_sample_value("graphrec_recommend_batch_size_count")  # ≤ 8
        for one, batched in zip(alone, together, strict=True):
            assert [i.item_id for i in batched.items] == [i.item_id for i in one.items]
            assert [i.score for i in batched.items] == pytest.approx([i.score for i in one.items])
    finally:
        close(served)


def test_requests_that_would_outwait_their_deadline_in_the_queue_are_shed_before_it(
    world: World,
) -> None:
    served = serve(world, ServerConfig(address="127.0.0.1:0", workers=1))
    recommender = served.serving.recommender
    real = recommender.recommend_many
    release = threading.Event()

    holding = threading.Event()

    def slow_first(queries: list) -> list:  # holds the only worker until released
        holding.set()
        release.wait(10)
        return real(queries)

    request = pb.RecommendRequest(subject=pb.Subject(user_id="nobody"), k=3)
    try:
        recommender.recommend_many = slow_first  # type: ignore[method-assign]
        busy = served.stub.Recommend.future(request)
        wait_for(holding.is_set)  # the worker holds the first batch
        asked = time.monotonic()
        with pytest.raises(grpc.RpcError) as late:
            served.stub.Recommend(request, timeout=0.3)
        assert late.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # not the deadline
        assert time.monotonic() - asked < 0.3
        recommender.recommend_many = real  # type: ignore[method-assign]
        release.set()
        assert len(busy.result(timeout=10).items) == 3
        assert len(served.stub.Recommend(request, timeout=10).items) == 3
        assert served.serving.server.servicer.admission.inflight == 0
    finally:
        release.set()
        close(served)


def test_concurrent_requests_agree_with_sequential_ones(served: Served, world: World) -> None:
    users = sorted(
        {i.actor.key for i in world.dataset.interactions if i.actor.kind is NodeKind.USER}
    )[:20]

    def top(u: str) -> list[str]:
        r = served.stub.Recommend(pb.RecommendRequest(subject=pb.Subject(user_id=u), k=5))
        return [i.item_id for i in r.items]

    sequential = [top(u) for u in users]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(top, users)) == sequential


class CountingStore:
    """The served graph store, counting the neighbourhood round trips made through it."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self.neighbourhood_calls = 0

    def neighbourhood(self, *args: Any, **kwargs: Any) -> Neighbourhood:
        self.neighbourhood_calls += 1
        return self.store.neighbourhood(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_score_items_looks_up_all_ids_the_table_lacks_in_one_round_trip(
    own_world: World,
) -> None:
    served = serve(own_world)
    try:
        template = own_world.dataset.items[5]
        added = [ItemRecord(f"graph-only-{n}", template.category_path) for n in range(3)]
        served.store.upsert_items(added)  # in the graph, not yet in the item table
        counting = CountingStore(served.store)
        recommender = Recommender(counting, served.serving.registry.current)  # type: ignore[arg-type]
        user = next(
            i.actor for i in own_world.dataset.interactions if i.actor.kind is NodeKind.USER
        )
        unknown = [f"no-such-{n}" for n in range(2_000)]
        known = [i.item_id for i in own_world.dataset.items[:10]]
        ids = [*known, *unknown, *(r.item_id for r in added)]
        scored = recommender.score_items(Subject(SubjectKind.USER, user.key), ids)
        assert scored.unknown_item_ids == unknown
        assert [s.item_id for s in scored.items] == [*known, *(r.item_id for r in added)]
        assert all(np.isfinite(s.score) for s in scored.items)
        # the subject's edges, the ids the table lacks, the re-embedding of the three found
        assert counting.neighbourhood_calls == 3
    finally:
        close(served)

"""The GraphStore contract: one suite, run against every backend (see conftest.BACKENDS)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gnn.datasets import SyntheticConfig, generate, ledger_of
from graphstore import (
    Batch,
    Behaviour,
    CsrSnapshot,
    GraphStore,
    Interaction,
    InvalidInput,
    ItemRecord,
    NodeKind,
    NodeRef,
    Position,
    Positioned,
)
from tests.conftest import Backend

U = NodeKind.USER
T0 = 1_790_000_000.0


def ev(n: int, user: str, item: str, b: Behaviour = Behaviour.VIEW, dt: float = 0.0) -> Interaction:
    return Interaction(f"e{n}", NodeRef(U, user), item, b, T0 + dt)


def positioned(
    events: list[Interaction], topic: str = "events", partition: int = 0, first: int = 0
) -> Batch:
    return Batch(
        interactions=[
            Positioned(e, Position(topic, partition, first + k)) for k, e in enumerate(events)
        ]
    )


def edge_table(snap: CsrSnapshot) -> dict[tuple[str, str, str, str], tuple[int, float, float]]:
    """(src kind, src key, rel, dst key) → (count, first_ts, last_ts) for every edge."""
    out = {}
    for (sk, rel, dk), r in snap.relations.items():
        for s, d, c, f, t in zip(r.rows(), r.indices, r.count, r.first_ts, r.last_ts, strict=True):
            out[(sk.value, snap.keys[sk][s], rel, snap.keys[dk][d])] = (int(c), float(f), float(t))
    return out


def assert_same_graph(a: CsrSnapshot, b: CsrSnapshot) -> None:
    assert a.keys == b.keys
    assert edge_table(a) == edge_table(b)


def test_aggregates_match_ledger(store: GraphStore) -> None:
    data = generate(SyntheticConfig(seed=3, events=3_000, users=50, items=200))
    store.upsert_items(data.items)
    store.add_interactions(data.interactions)
    table = edge_table(store.snapshot())
    expected = {
        (a.kind.value, a.key, rel, item): (agg.count, agg.first_ts, agg.last_ts)
        for (a, rel, item), agg in ledger_of(data.interactions).items()
    }
    interactions = {k: v for k, v in table.items() if k[0] in ("User", "Session")}
    assert interactions == expected


def test_order_of_events_does_not_matter(backend: Backend) -> None:
    events = [
        ev(n, f"u{n % 7}", f"i{n % 11}", Behaviour(1 + n % 4), dt=n * 13 % 97) for n in range(300)
    ]
    shuffled = events[:]
    random.Random(1).shuffle(shuffled)
    with backend.make() as a:  # one store at a time: a server backend may have one database
        a.add_interactions(events)
        in_order = a.snapshot()
    with backend.make() as b:
        for k in range(0, 300, 37):
            b.add_interactions(shuffled[k : k + 37])
        assert_same_graph(in_order, b.snapshot())


def test_replayed_batch_is_skipped(store: GraphStore) -> None:
    batch = positioned([ev(n, "u1", f"i{n % 3}") for n in range(10)])
    first = store.apply(batch)
    before = store.snapshot()
    again = store.apply(batch)
    assert (first.applied, first.skipped_replayed) == (10, 0)
    assert (again.applied, again.skipped_replayed) == (0, 10)
    assert_same_graph(before, store.snapshot())


def test_partially_replayed_batch_applies_only_new_positions(store: GraphStore) -> None:
    events = [ev(n, "u1", "i1", dt=n) for n in range(15)]
    store.apply(positioned(events[:10]))
    result = store.apply(positioned(events[5:], first=5))
    assert (result.applied, result.skipped_replayed) == (5, 5)
    (count, first_ts, last_ts) = edge_table(store.snapshot())[("User", "u1", "VIEWED", "i1")]
    assert (count, first_ts, last_ts) == (15, T0, T0 + 14)


def test_watermark_is_per_partition_and_only_moves_forward(store: GraphStore) -> None:
    store.apply(positioned([ev(1, "u1", "i1")], partition=0, first=7))
    store.apply(positioned([ev(2, "u2", "i1")], partition=1, first=3))
    store.apply(Batch(consumed={("events", 1): 9}))  # e.g. a dead-lettered record
    store.apply(positioned([ev(3, "u3", "i1")], partition=0, first=2))  # old: skipped
    assert store.watermarks() == {("events", 0): 7, ("events", 1): 9}
    assert store.stats().interactions == 2


def test_invalid_batch_is_rejected_whole(store: GraphStore) -> None:
    good = ev(1, "u1", "i1")
    bad = Interaction("e2", NodeRef(U, ""), "i2", Behaviour.VIEW, T0)
    with pytest.raises(InvalidInput, match="empty"):
        store.apply(positioned([good, bad]))
    assert store.stats().interactions == 0
    assert store.watermarks() == {}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.neighbourhood([], [5]), "at least one seed"),
        (lambda s: s.neighbourhood([NodeRef(U, "u")], []), "fanouts"),
        (lambda s: s.neighbourhood([NodeRef(U, "u")], [0]), "fan-out"),
        (lambda s: s.neighbourhood([NodeRef(U, "u")], [5], ["LIKES"]), "unknown relationship"),
        (lambda s: s.add_interactions([ev(1, "u", "i", dt=float("nan"))]), "finite"),
        (lambda s: s.upsert_items([ItemRecord("i", ("a/b",))]), "contains '/'"),
        (lambda s: s.snapshot(before=float("inf")), "finite"),
    ],
)
def test_bad_arguments_raise_invalid_input(store: GraphStore, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match=message):
        call(store)


def test_khop_respects_fanout_caps_most_recent_first(store: GraphStore) -> None:
    store.add_interactions([ev(n, "hub", f"i{n}", dt=n) for n in range(50)])
    store.add_interactions([ev(100 + n, f"u{n}", "i49", dt=n) for n in range(30)])
    hood = store.neighbourhood([NodeRef(U, "hub")], [10, 4])
    first_hop = [k for k, h in zip(hood.edge_keys_list(), hood.hop, strict=True) if h == 1]
    assert {d.key for _, _, d in first_hop} == {f"i{n}" for n in range(40, 50)}
    second = [k for k, h in zip(hood.edge_keys_list(), hood.hop, strict=True) if h == 2]
    # each of the 10 items may add at most 4 new edges; only i49 has other users
    assert 1 <= len(second) <= 4
    assert all(d.key == "i49" for _, _, d in second)
    assert hood.found == (True,)
    assert hood.nodes[0] == NodeRef(U, "hub")


def test_an_edge_seen_again_is_the_most_recent(store: GraphStore) -> None:
    store.add_interactions([ev(n, f"u{n}", "hub", dt=n) for n in range(30)])
    store.add_interactions([ev(100, "u0", "hub", dt=500)])  # the oldest edge, touched again
    hood = store.neighbourhood([NodeRef(NodeKind.ITEM, "hub")], [3])
    assert {s.key for s, _, _ in hood.edge_keys()} == {"u0", "u29", "u28"}
    newest = int(np.argmax(hood.last_ts))
    assert hood.nodes[hood.src[newest]].key == "u0" and hood.count[newest] == 2


def test_khop_filters_types_and_time_and_reports_missing_seeds(store: GraphStore) -> None:
    store.upsert_items([ItemRecord("i1", ("a", "b"), ts=T0)])
    store.add_interactions(
        [ev(1, "u1", "i1", Behaviour.VIEW, 0), ev(2, "u1", "i2", Behaviour.PURCHASE, 100)]
    )
    seeds = [NodeRef(U, "u1"), NodeRef(U, "nobody")]
    hood = store.neighbourhood(seeds, [5, 5], relationships=["VIEWED", "IN_CATEGORY"])
    assert hood.edge_keys() == {
        (NodeRef(U, "u1"), "VIEWED", NodeRef(NodeKind.ITEM, "i1")),
        (NodeRef(NodeKind.ITEM, "i1"), "IN_CATEGORY", NodeRef(NodeKind.CATEGORY, "a/b")),
    }
    assert hood.found == (True, False)
    early = store.neighbourhood(seeds[:1], [5], before=T0 + 50)
    assert {d.key for _, _, d in early.edge_keys()} == {"i1"}


def test_csr_export_is_consistent_and_cut_off_in_time(store: GraphStore) -> None:
    events = [ev(n, f"u{n % 5}", f"i{n % 9}", Behaviour(1 + n % 4), dt=n) for n in range(200)]
    store.add_interactions(events)
    snap = store.snapshot()
    for rel in snap.relations.values():
        assert rel.indptr[0] == 0 and rel.indptr[-1] == rel.num_edges
        assert np.all(np.diff(rel.indptr) >= 0)
        for i in range(len(rel.indptr) - 1):
            row = rel.indices[rel.indptr[i] : rel.indptr[i + 1]]
            assert np.all(np.diff(row) > 0)  # sorted, no duplicates
    assert list(snap.keys[U]) == sorted(snap.keys[U])
    assert sum(int(r.count.sum()) for r in snap.relations.values()) == 200
    cut = store.snapshot(before=T0 + 100)
    assert cut.cutoff == T0 + 100
    assert all(float(r.first_ts.max()) < T0 + 100 for r in cut.relations.values() if r.num_edges)
    expected = {(e.actor.key, e.behaviour.relationship, e.item_id) for e in events[:100]}
    assert {(k[1], k[2], k[3]) for k in edge_table(cut)} == expected


def test_items_build_category_tree_last_writer_wins(store: GraphStore) -> None:
    store.upsert_items(
        [
            ItemRecord("i1", ("beauty", "lips"), "Red", (("price", 9.5),), ts=T0 + 10),
            ItemRecord("i1", ("beauty", "eyes"), "Old", ts=T0),  # older: ignored
            ItemRecord("i2", ("beauty", "eyes"), "Blue", ts=T0),
        ]
    )
    store.upsert_items([ItemRecord("i2", ("hair",), "Moved", removed=True, ts=T0 + 1)])
    snap = store.snapshot()
    table = edge_table(snap)
    assert ("Item", "i1", "IN_CATEGORY", "beauty/lips") in table
    assert ("Item", "i2", "IN_CATEGORY", "hair") in table
    assert ("Item", "i2", "IN_CATEGORY", "beauty/eyes") not in table
    assert ("Category", "beauty/lips", "SUBCATEGORY_OF", "beauty") in table
    items = snap.index(NodeKind.ITEM)
    assert snap.item_titles[items["i1"]] == "Red"
    assert snap.item_features[items["i1"], snap.feature_names.index("price")] == 9.5
    assert bool(snap.item_removed[items["i2"]]) and not bool(snap.item_removed[items["i1"]])


def test_stats_count_nodes_edges_and_events(store: GraphStore) -> None:
    store.upsert_items([ItemRecord("i1", ("a",), ts=T0)])
    store.add_interactions(
        [ev(1, "u1", "i1"), ev(2, "u1", "i1"), ev(3, "u2", "i2", Behaviour.CART)]
    )
    stats = store.stats()
    assert stats.nodes == {"User": 2, "Item": 2, "Category": 1}
    assert stats.edges == {"VIEWED": 1, "CARTED": 1, "IN_CATEGORY": 1}
    assert stats.interactions == 3


def test_acknowledged_writes_survive_reopen(backend: Backend) -> None:
    store = backend.make()
    store.apply(positioned([ev(n, "u1", f"i{n}") for n in range(20)], first=100))
    before = store.snapshot()
    store = backend.reopen(store)
    assert_same_graph(before, store.snapshot())
    assert store.watermarks() == {("events", 0): 119}
    store.close()


def test_reset_empties_the_store_and_leaves_it_usable(store: GraphStore) -> None:
    hub = [ev(n, "hub", f"i{n}", dt=n) for n in range(12_000)]  # more than one delete batch
    store.upsert_items([ItemRecord("i0", ("a", "b"), "t", ts=T0)])
    store.apply(positioned(hub))
    store.reset()
    stats = store.stats()
    assert (stats.nodes, stats.edges, stats.interactions) == ({}, {}, 0)
    assert store.watermarks() == {}
    snap = store.snapshot()
    assert all(not keys for keys in snap.keys.values()) and not edge_table(snap)
    # a batch applied before the reset is new again: its watermark went with the graph
    result = store.apply(positioned(hub[:3]))
    assert (result.applied, result.skipped_replayed) == (3, 0)
    assert edge_table(store.snapshot()) == {
        ("User", "hub", "VIEWED", f"i{n}"): (1, T0 + n, T0 + n) for n in range(3)
    }

"""The dedup window of the GraphStore contract, run against every backend."""

from __future__ import annotations

import pytest

from graphstore import (
    Batch,
    Behaviour,
    DedupWindow,
    GraphStore,
    Interaction,
    InvalidInput,
    NodeKind,
    NodeRef,
    Position,
    Positioned,
)
from tests.conftest import Backend
from tests.contract.test_graphstore_contract import edge_table

T0 = 1_790_000_000.0
WINDOW = DedupWindow(max_age_s=3600.0, max_ids=1_000)


def event(event_id: str, item: str = "i1", dt: float = 0.0) -> Interaction:
    return Interaction(event_id, NodeRef(NodeKind.USER, "u1"), item, Behaviour.VIEW, T0 + dt)


def batch(
    events: list[Interaction],
    first: int = 0,
    window: DedupWindow | None = WINDOW,
    at: float = T0,
    partition: int = 0,
) -> Batch:
    return Batch(
        interactions=[
            Positioned(e, Position("events", partition, first + k)) for k, e in enumerate(events)
        ],
        dedup=window,
        ingested_at=at,
    )


def counts(store: GraphStore) -> dict[str, int]:
    """Item id → count of u1's VIEWED edge to it."""
    table = edge_table(store.snapshot())
    return {k[3]: v[0] for k, v in table.items() if k[:3] == ("User", "u1", "VIEWED")}


def test_five_records_with_one_event_id_count_once(store: GraphStore) -> None:
    result = store.apply(batch([event("e1", dt=k) for k in range(5)]))
    assert (result.applied, result.skipped_duplicate, result.skipped_replayed) == (1, 4, 0)
    assert counts(store) == {"i1": 1}
    edge = edge_table(store.snapshot())[("User", "u1", "VIEWED", "i1")]
    assert edge == (1, T0, T0)  # the first sighting wins, its timestamp kept


def test_resent_event_in_a_later_batch_is_dropped(store: GraphStore) -> None:
    store.apply(batch([event("e1"), event("e2", "i2")]))
    result = store.apply(batch([event("e2", "i2"), event("e3", "i2")], first=2, at=T0 + 10))
    assert (result.applied, result.skipped_duplicate) == (1, 1)
    assert counts(store) == {"i1": 1, "i2": 2}


def test_without_a_window_every_event_counts(store: GraphStore) -> None:
    result = store.apply(batch([event("e1")] * 5, window=None))
    assert (result.applied, result.skipped_duplicate) == (5, 0)
    assert counts(store) == {"i1": 5}


def test_empty_event_ids_are_never_deduplicated(store: GraphStore) -> None:
    result = store.apply(batch([event(""), event(""), event("e1"), event("e1")]))
    assert (result.applied, result.skipped_duplicate) == (3, 1)
    assert counts(store) == {"i1": 3}


def test_replayed_positions_are_replays_not_duplicates(store: GraphStore) -> None:
    store.apply(batch([event("e1"), event("e2")]))
    result = store.apply(batch([event("e1"), event("e2"), event("e1")]))  # offsets 0, 1, 2
    assert (result.applied, result.skipped_replayed, result.skipped_duplicate) == (0, 2, 1)
    assert store.watermarks() == {("events", 0): 2}
    assert counts(store) == {"i1": 2}


def test_the_window_survives_a_restart(backend: Backend) -> None:
    store = backend.make()
    store.apply(batch([event("e1")]))
    store = backend.reopen(store)
    with store:
        result = store.apply(batch([event("e1")], first=1, at=T0 + 60))
        assert result.skipped_duplicate == 1
        assert counts(store) == {"i1": 1}


def test_ids_older_than_the_time_bound_are_forgotten(store: GraphStore) -> None:
    store.apply(batch([event("e1"), event("e2")]))
    store.apply(batch([event("e3")], first=2, at=T0 + 3000))
    late = T0 + WINDOW.max_age_s + 1  # e1 and e2 expired, e3 (accepted at +3000 s) not
    result = store.apply(batch([event("e1"), event("e3")], first=3, at=late))
    assert (result.applied, result.skipped_duplicate) == (1, 1)
    assert counts(store) == {"i1": 4}


def test_the_size_bound_forgets_the_oldest_ids_first(store: GraphStore) -> None:
    small = DedupWindow(max_age_s=3600.0, max_ids=3)
    for k in range(5):  # e0 .. e4, one batch each; e2, e3, e4 are the newest three
        store.apply(batch([event(f"e{k}")], first=k, window=small, at=T0 + k))
    resent = [event(f"e{k}") for k in range(5)]
    result = store.apply(batch(resent, first=5, window=small, at=T0 + 10))
    assert (result.applied, result.skipped_duplicate) == (2, 3)
    # Newest three now: e4, then e0 and e1 (within a batch, acceptance order is batch order).
    result = store.apply(batch([event("e3"), event("e0")], first=10, window=small, at=T0 + 11))
    assert (result.applied, result.skipped_duplicate) == (1, 1)


@pytest.mark.parametrize(
    "window", [DedupWindow(max_age_s=0.0), DedupWindow(max_ids=0)], ids=["age", "size"]
)
def test_a_window_needs_positive_bounds(store: GraphStore, window: DedupWindow) -> None:
    with pytest.raises(InvalidInput, match="positive"):
        store.apply(batch([event("e1")], window=window))

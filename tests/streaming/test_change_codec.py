"""The change record's codec: what is encoded decodes back, and the sink's fast encoding of a
commit gives the same bytes as encoding its changes one by one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphstore import (
    Behaviour,
    Interaction,
    ItemRecord,
    NodeKind,
    NodeRef,
    Position,
    Positioned,
)
from streaming.changes import (
    BadChange,
    changes_of,
    decode_change,
    encode_change,
    encode_commit,
)
from streaming.records import LogRecord

ids = st.text(min_size=1, max_size=8).filter(str.strip)
actors = st.builds(NodeRef, st.sampled_from([NodeKind.USER, NodeKind.SESSION]), ids)


def as_read(value: bytes, key: bytes | None = None, offset: int = 7) -> LogRecord:
    return LogRecord("changes", 0, offset, key, value)


@given(
    events=st.lists(st.tuples(actors, ids), max_size=30),
    catalogue=st.lists(ids, max_size=5, unique=True),
    committed_at=st.floats(0, 2e9),
)
def test_a_commit_encodes_as_its_changes_do_and_decodes_back(
    events: list[tuple[NodeRef, str]], catalogue: list[str], committed_at: float
) -> None:
    interactions = [
        Positioned(Interaction(f"e{k}", a, i, Behaviour.VIEW, 1.0), Position("events", 1, k))
        for k, (a, i) in enumerate(events)
    ]
    items = [
        Positioned(ItemRecord(i, ("a", i), f"t {i}", (("p", 2.5),), k % 2 == 1, 3.0), None)
        for k, i in enumerate(catalogue)
    ]
    positions = {("events", 1): len(events) - 1, ("items", 0): 4}
    changes = changes_of(interactions, items, positions, committed_at)
    encoded = encode_commit(interactions, items, positions, committed_at)
    assert encoded == [encode_change(c) for c in changes]
    decoded = [decode_change(as_read(r.value, r.key, k)) for k, r in enumerate(encoded)]
    assert decoded == changes
    assert [c.offset for c in decoded] == list(range(len(changes)))
    assert all(r.partition == 0 for r in encoded)


def test_a_change_is_covered_by_watermarks_at_or_past_its_positions() -> None:
    event = Positioned(
        Interaction("e", NodeRef(NodeKind.USER, "u"), "i", Behaviour.CLICK, 1.0),
        Position("events", 0, 9),
    )
    (item, _) = changes_of([event], [], {("events", 0): 9, ("items", 2): 3}, 5.0)
    assert item.covered_by({("events", 0): 9, ("items", 2): 3})
    assert not item.covered_by({("events", 0): 8, ("items", 2): 3})
    assert not item.covered_by({("events", 0): 9})


@pytest.mark.parametrize(
    "value",
    [b"", b"not json", b"{}", b'{"kind": "Planet", "id": "x", "positions": [], "events": 0}'],
)
def test_what_graphrec_did_not_write_is_a_bad_change(value: bytes) -> None:
    with pytest.raises(BadChange, match=r"changes\[0\]@7 is not a change"):
        decode_change(as_read(value))

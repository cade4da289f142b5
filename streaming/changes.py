"""The change stream: what each graph commit changed, as the sink publishes it after the commit.

One record per node a commit touched, keyed by the node (``Item:ID``, ``User:ID``,
``Session:ID``) on a topic of one partition that Kafka compacts: reading it from any offset
gives every node changed since, each at least once, so followers (the serving feed, the
trainer's schedule) never decode the event topics again. Each record carries the commit's
positions (the highest applied offset per event-log partition, as of the commit): a follower
that holds a graph snapshot up to some watermarks skips the changes those watermarks already
cover (``Change.covered_by``).

Publishing is at least once: the sink publishes after the graph commit and before it commits
its offsets, and a sink that restarts re-reads from what the change stream last covered, so
a crash in between publishes the batch again (``streaming.publish``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphstore import (
    Interaction,
    ItemRecord,
    NodeKind,
    NodeRef,
    Positioned,
    TopicPartition,
)
from streaming.records import LogRecord, OutRecord

_string = json.encoder.encode_basestring_ascii  # json.dumps's string encoder, in C

log = logging.getLogger(__name__)
CHANGES_TOPIC = "changes"
CHANGES_PARTITION = 0  # one partition: the stream's order is the commits' order
# Kafka keeps the newest record per key: every node changed since any offset, each at least once.
CHANGES_TOPIC_CONFIGS: Mapping[str, str] = {"cleanup.policy": "compact"}
Positions = Mapping[TopicPartition, int]


class BadChange(ValueError):
    """A change-stream record graphrec did not write (or wrote in another format)."""


@dataclass(frozen=True)
class Change:
    """One node a commit touched.

    ``positions``: per event-log partition, the highest offset the graph held and the stream
    covered once the commit was published (the commit's consumed offsets over what its
    publisher covered before: see ``streaming.publish``); ``events``: the interactions of the
    commit on this node; ``record``: the catalogue record the commit upserted, for an item that
    had one; ``committed_at``: when the commit was applied (unix seconds)."""

    node: NodeRef
    positions: dict[TopicPartition, int]
    events: int = 0
    record: ItemRecord | None = None
    committed_at: float = 0.0
    offset: int = field(default=-1, compare=False)  # where it was read from; -1 before that

    def covered_by(self, watermarks: Positions) -> bool:
        """True when a graph at ``watermarks`` already holds this change."""
        return all(watermarks.get(tp, -1) >= offset for tp, offset in self.positions.items())


def changes_of(
    interactions: Iterable[Positioned[Interaction]],
    items: Iterable[Positioned[ItemRecord]],
    positions: Positions,
    committed_at: float,
) -> list[Change]:
    """The changes of one commit: its interactions' items and actors, and its catalogue
    records, one ``Change`` per node (items first, in first-seen order)."""
    records, item_events, actor_events = _touched(interactions, items)
    marks = dict(positions)
    touched = [
        Change(NodeRef(NodeKind.ITEM, i), marks, item_events[i], records.get(i), committed_at)
        for i in {**records, **item_events}
    ]
    touched += [
        Change(NodeRef(kind, key), marks, n, None, committed_at)
        for (kind, key), n in actor_events.items()
    ]
    return touched


def _touched(
    interactions: Iterable[Positioned[Interaction]], items: Iterable[Positioned[ItemRecord]]
) -> tuple[dict[str, ItemRecord], Counter[str], Counter[tuple[NodeKind, str]]]:
    """Catalogue records by item id; interactions per item id and per (actor kind, key)."""
    records = {r.value.item_id: r.value for r in items}
    events = [e.value for e in interactions]
    # Counted by plain strings and tuples (hashed in C), not by NodeRef.
    item_events = Counter(e.item_id for e in events)
    actor_events = Counter((e.actor.kind, e.actor.key) for e in events)
    return records, item_events, actor_events


def encode_change(change: Change) -> OutRecord:
    """A change as the record the sink appends (JSON, keyed by its node)."""
    body: dict[str, Any] = {
        "kind": change.node.kind.value,
        "id": change.node.key,
        "positions": [[t, p, o] for (t, p), o in sorted(change.positions.items())],
        "events": change.events,
        "committed_at": change.committed_at,
    }
    if change.record is not None:
        r = change.record
        body["record"] = {
            "category_path": list(r.category_path),
            "title": r.title,
            "numeric_features": [list(f) for f in r.numeric_features],
            "removed": r.removed,
            "ts": r.ts,
        }
    key = f"{change.node.kind.value}:{change.node.key}".encode()
    return OutRecord(json.dumps(body).encode(), key=key, partition=CHANGES_PARTITION)


def encode_commit(
    interactions: Iterable[Positioned[Interaction]],
    items: Iterable[Positioned[ItemRecord]],
    positions: Positions,
    committed_at: float,
) -> list[OutRecord]:
    """``[encode_change(c) for c in changes_of(...)]`` of the same arguments (the same
    bytes), several times faster: no ``Change`` per node, positions encoded once."""
    records, item_events, actor_events = _touched(interactions, items)
    marks = json.dumps([[t, p, o] for (t, p), o in sorted(positions.items())])
    before = f', "positions": {marks}, "events": '
    after = f', "committed_at": {json.dumps(committed_at)}}}'
    out = []
    for item_id in {**records, **item_events}:
        record = records.get(item_id)
        if record is None:
            out.append(_bare(NodeKind.ITEM, item_id, f"{before}{item_events[item_id]}{after}"))
        else:
            node = NodeRef(NodeKind.ITEM, item_id)
            change = Change(node, dict(positions), item_events[item_id], record, committed_at)
            out.append(encode_change(change))
    out += [_bare(kind, key, f"{before}{n}{after}") for (kind, key), n in actor_events.items()]
    return out


def _bare(kind: NodeKind, key: str, rest: str) -> OutRecord:
    """The record of a change without a catalogue record; ``rest`` follows its id."""
    value = f'{{"kind": {_string(kind.value)}, "id": {_string(key)}{rest}'
    return OutRecord(value.encode(), f"{kind.value}:{key}".encode(), (), CHANGES_PARTITION)


def decode_change(record: LogRecord) -> Change:
    """The change a record of the change stream carries; ``BadChange`` if it is not one."""
    try:
        body = json.loads(record.value)
        node = NodeRef(NodeKind(body["kind"]), str(body["id"]))
        positions = {(str(t), int(p)): int(o) for t, p, o in body["positions"]}
        raw = body.get("record")
        item = None
        if raw is not None:
            item = ItemRecord(
                node.key,
                tuple(raw["category_path"]),
                raw["title"],
                tuple((str(n), float(v)) for n, v in raw["numeric_features"]),
                bool(raw["removed"]),
                float(raw["ts"]),
            )
        return Change(
            node,
            positions,
            int(body["events"]),
            item,
            float(body["committed_at"]),
            record.offset,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BadChange(
            f"{record.topic}[{record.partition}]@{record.offset} is not a change: {exc}"
        ) from exc


def newest_positions(changes: Sequence[Change]) -> dict[TopicPartition, int]:
    """The highest offset per partition that ``changes`` cover."""
    marks: dict[TopicPartition, int] = {}
    for change in changes:
        for tp, offset in change.positions.items():
            if offset > marks.get(tp, -1):
                marks[tp] = offset
    return marks


def read_changes(
    records: Iterable[LogRecord], read_next: dict[TopicPartition, int], reader: str
) -> Iterator[Change]:
    """The changes ``records`` carry, noting in ``read_next`` the next offset to read per
    partition; a record that is not a change is logged (as ``reader``'s) and skipped."""
    for record in records:
        read_next[record.tp] = record.offset + 1
        try:
            yield decode_change(record)
        except BadChange as exc:
            log.warning("%s: skipping a record of the change stream: %s", reader, exc)

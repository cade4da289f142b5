"""Reading the change stream of an embedded log back, and what a dataset says it must hold."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from graphrec.pipeline import open_sink
from graphstore import GraphStore, Interaction, ItemRecord, NodeKind, NodeRef, TopicPartition
from streaming.changes import CHANGES_TOPIC, Change, decode_change
from streaming.codec import BadRecord, decode_event, decode_item
from streaming.log import EventLog
from streaming.sink import Sink, SinkConfig

TOPIC = (CHANGES_TOPIC, 0)


def stream(log: EventLog, start: int = 0) -> list[Change]:
    """The change records from offset ``start`` on."""
    return [decode_change(r) for r in log.read(TOPIC, start, 10_000_000)]


def stream_end(log: EventLog) -> int:
    return log.end_offsets(CHANGES_TOPIC)[0] if CHANGES_TOPIC in log.topics() else 0


def events_per_node(changes: Iterable[Change]) -> Counter[NodeRef]:
    counts: Counter[NodeRef] = Counter()
    for change in changes:
        counts[change.node] += change.events
    return counts


def ledger(
    interactions: Iterable[Interaction], items: Iterable[ItemRecord] = ()
) -> Counter[NodeRef]:
    """Interactions per node (items and actors), and every catalogue item (maybe at 0)."""
    counts: Counter[NodeRef] = Counter({NodeRef(NodeKind.ITEM, i.item_id): 0 for i in items})
    for event in interactions:
        counts[NodeRef(NodeKind.ITEM, event.item_id)] += 1
        counts[event.actor] += 1
    return counts


def records_between(
    log: EventLog, after: dict[TopicPartition, int], upto: dict[TopicPartition, int]
) -> tuple[list[Interaction], list[ItemRecord]]:
    """The good events and items at offsets in ``(after, upto]`` per partition."""
    events: list[Interaction] = []
    items: list[ItemRecord] = []
    for tp, last in upto.items():
        first = after.get(tp, -1) + 1
        for record in log.read(tp, first, last - first + 1):
            try:
                if tp[0] == "items":
                    items.append(decode_item(record.value))
                else:
                    events.append(decode_event(record.value))
            except BadRecord:
                pass
    return events, items


def drain(sink: Sink) -> None:
    """Step the sink until a poll finds nothing."""
    while sink.step():
        pass


def publishing_sink(path: Path, store: GraphStore, group: str, batch_size: int) -> Sink:
    """A sink as graphrec builds it (publishing), stepped by hand."""
    config = SinkConfig(batch_size=batch_size, poll_timeout_s=0.05, retry_initial_s=0.01)
    return open_sink(f"log://{path}", store, group, config)


def close(sink: Sink) -> None:
    for thing in (sink.source, sink.dead_letters, sink.changes):
        getattr(thing, "close", lambda: None)()


def nodes(changes: Sequence[Change]) -> set[NodeRef]:
    return {c.node for c in changes}

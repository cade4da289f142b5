"""The change stream the sink publishes after each graph commit, on the embedded log: one
record per touched node and commit, keyed by the node, with the graph's positions, the events
count and the catalogue record; nothing for dead letters; replays published again."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import produce_dataset
from graphstore import Behaviour, Interaction, NodeKind, NodeRef, open_store
from streaming.changes import CHANGES_TOPIC
from streaming.log import EventLog, LogConsumer, partition_for
from streaming.malformed import malformed_event
from streaming.produce import event_record
from streaming.records import OutRecord
from streaming.sink import Sink, SinkConfig
from tests.streaming.changestream import (
    TOPIC,
    close,
    drain,
    events_per_node,
    ledger,
    publishing_sink,
    stream,
    stream_end,
)


def test_one_record_per_node_and_commit_with_the_graphs_positions(tmp_path: Path) -> None:
    data = generate(SyntheticConfig(seed=3, events=3_000, users=80, items=150))
    produce_dataset(f"log://{tmp_path}", data, malformed=40, seed=3)
    log = EventLog(tmp_path)
    with open_store("memory://") as store:
        sink = publishing_sink(tmp_path, store, "sink", batch_size=250)
        commits, start = [], 0
        while sink.step():
            commits.append(stream(log, start))
            start = stream_end(log)
            marks = store.watermarks()
            for change in commits[-1]:  # every record of a commit: the graph right after it
                assert change.positions == marks
                assert change.committed_at == commits[-1][0].committed_at
            assert len(commits[-1]) == len({c.node for c in commits[-1]})
        close(sink)
        assert sink.stats.dead_lettered == 40
        assert sink.stats.changes_published == stream_end(log) == sum(map(len, commits))
    assert len(commits) == sink.stats.batches > 10
    assert all(commits)  # every commit had good records
    published = stream(log)
    assert events_per_node(published) == ledger(data.interactions, data.items)
    catalogue = {c.node.key: c.record for c in published if c.record is not None}
    assert catalogue == {i.item_id: i for i in data.items}
    assert {c.node.kind for c in published} == {NodeKind.ITEM, NodeKind.USER, NodeKind.SESSION}
    for record, change in zip(log.read(TOPIC, 0, 10_000_000), published, strict=True):
        assert record.key == f"{change.node.kind.value}:{change.node.key}".encode()
    assert log.partitions(CHANGES_TOPIC) == 1


def test_dead_letters_are_not_changes(tmp_path: Path) -> None:
    """A batch of bad records publishes nothing; the next commit's positions pass them."""
    log = EventLog(tmp_path)
    rng = np.random.default_rng(0)
    log.send("events", [OutRecord(malformed_event(rng, k), b"bad") for k in range(9)])
    with open_store("memory://") as store:
        sink = publishing_sink(tmp_path, store, "sink", batch_size=1_000)
        drain(sink)
        assert (sink.stats.dead_lettered, stream_end(log)) == (9, 0)
        user = NodeRef(NodeKind.USER, "u1")
        log.send("events", [event_record(Interaction("e1", user, "i1", Behaviour.VIEW, 1e9))])
        drain(sink)
        close(sink)
        marks = store.watermarks()
    assert {(c.node, c.events) for c in stream(log)} == {
        (NodeRef(NodeKind.ITEM, "i1"), 1),
        (user, 1),
    }
    bad = ("events", partition_for(b"bad", log.partitions("events")))
    assert stream(log)[0].positions == marks and marks[bad] >= 8


def test_replayed_records_publish_their_changes_again(tmp_path: Path) -> None:
    """Records read again are skipped by the store (applied once) and published again."""
    data = generate(SyntheticConfig(seed=4, events=1_000, users=30, items=50))
    produce_dataset(f"log://{tmp_path}", data)
    log = EventLog(tmp_path)
    with open_store("memory://") as store:
        first = publishing_sink(tmp_path, store, "sink", batch_size=300)
        drain(first)
        close(first)
        once = stream_end(log)
        again = publishing_sink(tmp_path, store, "sink", batch_size=300)
        for tp in again.source.assignment():
            again.source.seek(tp, 0)
        drain(again)
        close(again)
        assert store.stats().interactions == 1_000
    assert (again.stats.applied, again.stats.skipped_replayed) == (0, 1_000 + len(data.items))
    assert events_per_node(stream(log, once)) == ledger(data.interactions, data.items)


def test_a_sink_built_without_a_publisher_publishes_nothing(tmp_path: Path) -> None:
    data = generate(SyntheticConfig(seed=4, events=500, users=30, items=50))
    produce_dataset(f"log://{tmp_path}", data)
    log = EventLog(tmp_path)
    with open_store("memory://") as store:
        sink = Sink(LogConsumer(log, "g", ["items", "events"]), store, log, SinkConfig())
        drain(sink)
        assert store.stats().interactions == 500
    assert sink.changes is None and sink.stats.changes_published == 0
    assert CHANGES_TOPIC not in log.topics()


def test_events_count_per_commit_matches_its_records(tmp_path: Path) -> None:
    """Per commit: an item's events, an actor's events (the commit's interactions on them)."""
    data = generate(SyntheticConfig(seed=6, events=600, users=20, items=40))
    produce_dataset(f"log://{tmp_path}", data)
    log = EventLog(tmp_path)
    with open_store("memory://") as store:
        sink = publishing_sink(tmp_path, store, "sink", batch_size=200)
        drain(sink)
        close(sink)
    by_commit: dict[float, Counter[str]] = {}
    for change in stream(log):
        by_commit.setdefault(change.committed_at, Counter())[change.node.kind] += change.events
    for counts in by_commit.values():  # each event counts once on its item, once on its actor
        assert counts[NodeKind.ITEM] == counts[NodeKind.USER] + counts[NodeKind.SESSION]
    assert sum(c[NodeKind.ITEM] for c in by_commit.values()) == 600

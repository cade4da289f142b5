"""At least once across a crash between the graph commit and the publish: a new sink reads
again what the change stream does not cover, the store skips it as replays (nothing applied
twice) and the sink publishes its changes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import produce_dataset
from graphstore import open_store
from streaming.changes import CHANGES_TOPIC
from streaming.log import EventLog, LogConsumer
from streaming.records import OutRecord, RecordWriter
from streaming.sink import Sink, SinkConfig
from tests.streaming.changestream import (
    close,
    drain,
    events_per_node,
    ledger,
    nodes,
    publishing_sink,
    records_between,
    stream,
    stream_end,
)


class Killed(BaseException):
    """The process dies here (not an error the sink retries)."""


class DiesAtSend:
    """A writer that dies on its ``at``-th send (counting from 1), before writing anything."""

    def __init__(self, inner: RecordWriter, at: int) -> None:
        self.inner, self.at, self.sends = inner, at, 0

    def send(self, topic: str, records: Sequence[OutRecord]) -> None:
        self.sends += 1
        if self.sends == self.at:
            raise Killed(f"killed before publishing commit {self.at}")
        self.inner.send(topic, records)


@pytest.mark.parametrize("threaded", [False, True])
def test_changes_of_a_batch_applied_before_a_crash_are_published_by_the_next_sink(
    tmp_path: Path, threaded: bool
) -> None:
    data = generate(SyntheticConfig(seed=8, events=4_000, users=60, items=120))
    produce_dataset(f"log://{tmp_path}", data)
    log = EventLog(tmp_path)
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        first = publishing_sink(tmp_path, store, "sink", batch_size=400)
        assert first.changes is not None
        first.changes.writer = DiesAtSend(first.changes.writer, at=4)
        with pytest.raises(Killed):
            first.run(idle_exit_s=1.0) if threaded else drain(first)
        close(first)
        applied, covered = store.watermarks(), stream(log)[-1].positions
        assert applied != covered, "the crash must land between the graph commit and the publish"
        lost = set(ledger(*records_between(log, covered, applied)))
        before = stream_end(log)

        second = publishing_sink(tmp_path, store, "sink", batch_size=400)
        drain(second)
        close(second)
        assert store.stats().interactions == len(data.interactions)  # nothing applied twice
        total = len(data.interactions) + len(data.items)
        assert first.stats.applied + second.stats.applied == total
        replayed = sum(o - covered.get(tp, -1) for tp, o in applied.items())
        assert second.stats.skipped_replayed == replayed > 0
        republished = stream(log, before)
        assert lost <= nodes(republished)
        assert republished[-1].positions == store.watermarks()
    # the lost commit was never written, so every event's change is in the stream exactly once
    assert events_per_node(stream(log)) == ledger(data.interactions, data.items)


def test_a_graph_built_without_publishing_is_published_once_by_a_new_group(
    tmp_path: Path,
) -> None:
    """The stream covers nothing of it: a publishing sink in a new group reads it all again,
    applies nothing and publishes every node; a later one reads nothing again."""
    data = generate(SyntheticConfig(seed=9, events=1_500, users=40, items=80))
    produce_dataset(f"log://{tmp_path}", data)
    log = EventLog(tmp_path)
    with open_store("memory://") as store:
        silent = Sink(LogConsumer(log, "old", ["items", "events"]), store, log, SinkConfig())
        drain(silent)
        assert stream_end(log) == 0
        first = publishing_sink(tmp_path, store, "new", batch_size=500)
        drain(first)
        close(first)
        later = publishing_sink(tmp_path, store, "newer", batch_size=500)
        drain(later)
        close(later)
        assert store.stats().interactions == 1_500
    assert (first.stats.applied, first.stats.skipped_replayed) == (0, 1_500 + len(data.items))
    assert events_per_node(stream(log)) == ledger(data.interactions, data.items)
    assert (later.stats.skipped_replayed, later.stats.changes_published) == (0, 0)


def test_an_unreadable_last_record_covers_nothing(tmp_path: Path) -> None:
    """The sink then resumes from its committed offsets (reads again, never skips)."""
    data = generate(SyntheticConfig(seed=9, events=600, users=40, items=80))
    produce_dataset(f"log://{tmp_path}", data)
    log = EventLog(tmp_path)
    with open_store("memory://") as store:
        first = publishing_sink(tmp_path, store, "sink", batch_size=250)
        first.step()
        close(first)
        garbage = stream_end(log)
        log.send(CHANGES_TOPIC, [OutRecord(b"not a change", b"Item:x", partition=0)])
        second = publishing_sink(tmp_path, store, "sink", batch_size=250)
        drain(second)
        assert second.changes is not None
        assert second.changes.covered() == stream(log, garbage + 1)[-1].positions
        close(second)
        assert store.stats().interactions == 600
    assert (second.stats.skipped_replayed, first.stats.applied + second.stats.applied) == (
        0,
        600 + len(data.items),
    )

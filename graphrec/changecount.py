"""The trainer's schedule by events, counted from the sink's change stream: how many
interactions the graph applied after the snapshot the trainer last trained on."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from graphstore import NodeKind, TopicPartition
from streaming.changes import Change, read_changes
from streaming.records import RecordSource
from streaming.urls import open_changes

POLL_RECORDS = 5_000


class ChangeCount:
    """``gnn.trainer.NewEvents`` over the change stream of the log at ``log_url``.

    Reads the stream once, from its start, with a consumer of its own, and keeps the changes
    of items with interactions until a snapshot's watermarks cover them: the count is the sum
    of their ``events``. A change is kept per commit and item, so one published twice (the
    sink publishes at least once) counts once. When the log fails it raises, and the next
    call reconnects after the last change it read."""

    def __init__(self, log_url: str) -> None:
        self.log_url = log_url
        self._source: RecordSource | None = None
        self._read_next: dict[TopicPartition, int] = {}
        self._uncovered: dict[tuple[tuple[tuple[TopicPartition, int], ...], str], Change] = {}

    def count(self, watermarks: Mapping[str, int], wait_s: float) -> int:
        """Interactions on items past ``watermarks`` (``"topic:partition"`` → offset), after
        waiting up to ``wait_s`` for more changes."""
        marks = positions(watermarks)
        try:
            records = self._open().poll(POLL_RECORDS, wait_s)
        except Exception:
            self.close()
            raise
        for change in read_changes(records, self._read_next, "trainer"):
            if change.node.kind is NodeKind.ITEM and change.events > 0:
                commit = tuple(sorted(change.positions.items()))
                self._uncovered[(commit, change.node.key)] = change
        self._uncovered = {
            key: change for key, change in self._uncovered.items() if not change.covered_by(marks)
        }
        return sum(change.events for change in self._uncovered.values())

    def close(self) -> None:
        source, self._source = self._source, None
        close = getattr(source, "close", None)
        if close is not None:
            close()

    def _open(self) -> RecordSource:
        if self._source is None:
            source = open_changes(self.log_url, f"graphrec-trainer-{uuid.uuid4().hex[:8]}")
            source.on_assign(lambda tps: self._position(source, tps))
            self._source = source
        return self._source

    def _position(self, source: RecordSource, tps: Sequence[TopicPartition]) -> None:
        for tp in tps:
            source.seek(tp, self._read_next.get(tp, 0))


def positions(watermarks: Mapping[str, int]) -> dict[TopicPartition, int]:
    """A version's or a snapshot's watermarks (``"topic:partition"`` → offset) by partition."""
    out: dict[TopicPartition, int] = {}
    for key, offset in watermarks.items():
        topic, _, partition = key.rpartition(":")
        out[(topic, int(partition))] = int(offset)
    return out

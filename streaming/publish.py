"""The sink's side of the change stream (``streaming.changes``): what it publishes, and where a
restarted sink resumes so that no commit's changes are lost.

After each graph commit the sink publishes the changes of the batch's decoded good records,
replays included (the store skipped them, but a crash may have kept their changes out of the
stream), in one ``send``, and only then commits its offsets. Events the store dropped as
resent (same event id) are counted too: the store reports how many, not which.

**Positions are cumulative.** A record's positions are the batch's consumed offsets merged into
everything this publisher covered before (earlier batches, and the points its partitions
resumed from): per partition, the highest offset whose changes the stream holds. So the
stream's last record alone says how far the stream covers every partition the sink owns, and
``covered_by(watermarks)`` still means "a graph at these watermarks holds this commit".

**Resume rule.** A sink that publishes seeks each newly assigned partition to
``max(committed, min(watermark, covered) + 1)`` (``covered`` from the stream's last record;
nothing for an empty stream):

* offsets are committed only after the publish, so ``committed`` never passes what the stream
  covers;
* the records between ``covered`` and the graph's watermark were applied but their changes
  not published (a crash in between): they are read again, the store skips them as replays
  (nothing is applied twice) and the sink publishes their changes.

A graph built while nothing published (or before the stream existed) is read again once from
the committed offsets, and its changes published. The rule reads the last record as this
graph's: one change stream per graph. Several sinks of one group may share it (a partition
another member last published is covered at least as far as that record says).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from graphstore import Interaction, ItemRecord, Positioned, TopicPartition
from streaming.changes import CHANGES_TOPIC, BadChange, decode_change, encode_commit
from streaming.records import LogRecord, OutRecord, RecordWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Publication:
    """The change records of one commit, and how far the stream covers once they are sent."""

    records: list[OutRecord]
    covers: dict[TopicPartition, int]


class ChangePublisher:
    """Writes each commit's changes to ``topic`` through ``writer``; ``last_record`` reads the
    stream's newest record (``None`` when empty) for the resume rule."""

    def __init__(
        self,
        writer: RecordWriter,
        topic: str = CHANGES_TOPIC,
        last_record: Callable[[], LogRecord | None] | None = None,
    ) -> None:
        self.writer = writer
        self.topic = topic
        self._last_record = last_record or (lambda: None)
        self._covers: dict[TopicPartition, int] = {}
        self._lock = threading.Lock()  # the sink's reader resumes while its writer publishes

    def covered(self) -> dict[TopicPartition, int]:
        """Per partition, the highest offset whose changes the stream holds, as its last
        record says ({} when it holds none, or the record is not a change)."""
        record = self._last_record()
        if record is None:
            return {}
        try:
            return dict(decode_change(record).positions)
        except BadChange as exc:
            log.warning("the change stream's last record is unreadable (%s): covers nothing", exc)
            return {}

    def resumed(self, tp: TopicPartition, start: int) -> None:
        """Partition ``tp`` is read from ``start``: the changes before it are in the stream."""
        with self._lock:
            _raise(self._covers, {tp: start - 1})

    def prepare(
        self,
        interactions: Iterable[Positioned[Interaction]],
        items: Iterable[Positioned[ItemRecord]],
        consumed: Mapping[TopicPartition, int],
        committed_at: float,
    ) -> Publication:
        """The records of one commit that consumed ``consumed`` (the highest offset per
        partition), read ``interactions`` and ``items`` and was applied at ``committed_at``."""
        with self._lock:
            covers = dict(self._covers)
        _raise(covers, consumed)
        return Publication(encode_commit(interactions, items, covers, committed_at), covers)

    def send(self, publication: Publication) -> None:
        """Write the records (durable on return), then count their positions as covered."""
        if publication.records:
            self.writer.send(self.topic, publication.records)
        with self._lock:
            _raise(self._covers, publication.covers)

    def close(self) -> None:
        close = getattr(self.writer, "close", None)
        if close is not None:
            close()


def _raise(marks: dict[TopicPartition, int], to: Mapping[TopicPartition, int]) -> None:
    for tp, offset in to.items():
        if offset > marks.get(tp, -1):
            marks[tp] = offset

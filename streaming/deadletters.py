"""The sink's dead-letter queue: ``<topic>.dlq``, partition for partition, so that a record read
again (after a crash or a rebalance) is not dead-lettered twice.

The dead letters of source partition ``p`` go to partition ``p`` of the DLQ topic, in offset
order, so the last record of DLQ partition ``p`` says (in its ``source.*`` headers) how far
source partition ``p`` is dead-lettered. When a partition is assigned, the sink reads that
record; bad records at or below its offset were dead-lettered before and are not sent again.
A sink dead-letters a batch before the graph commit that covers it, so a crash in between
reads the batch again: this rule is what keeps the DLQ at one copy per bad record.

The rule needs a writer that is a ``PartitionedLog`` (the embedded log and ``KafkaWriter``
are) and a DLQ topic with at least as many partitions as its source; it is created so. For a
partition beyond an older, smaller DLQ topic, records are spread by key and may be repeated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from graphstore import TopicPartition
from streaming.codec import BadRecord
from streaming.records import (
    DLQ_SUFFIX,
    LogRecord,
    OutRecord,
    RecordWriter,
    dead_letter,
    header,
)

log = logging.getLogger(__name__)


@runtime_checkable
class PartitionedLog(Protocol):
    """A writer that can also say how a topic is partitioned and read its newest records."""

    def send(self, topic: str, records: Sequence[OutRecord]) -> None: ...

    def partitions(self, topic: str) -> int: ...

    def create_topic(self, name: str, partitions: int) -> int: ...

    def last_records(self, topic: str, partitions: Sequence[int]) -> dict[int, LogRecord]: ...


class DeadLetterQueue:
    """Sends bad records to ``<topic>.dlq`` through ``writer``, each once (see the module)."""

    def __init__(self, writer: RecordWriter) -> None:
        self.writer = writer
        self._log = writer if isinstance(writer, PartitionedLog) else None
        self._done: dict[TopicPartition, int] = {}  # highest source offset dead-lettered
        self._dlq_partitions: dict[str, int] = {}
        self._lock = threading.Lock()  # the sink's reader resumes while its writer sends

    def resumed(self, partitions: Sequence[TopicPartition]) -> None:
        """``partitions`` are (re)assigned: learn from the DLQ how far each is dead-lettered
        (one read of the DLQ topic per source topic)."""
        if self._log is None:
            return
        by_topic: dict[str, list[int]] = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, []).append(partition)
        for topic, numbers in by_topic.items():
            for partition, last in self._log.last_records(topic + DLQ_SUFFIX, numbers).items():
                self._learn((topic, partition), last)

    def _learn(self, tp: TopicPartition, last: LogRecord) -> None:
        topic, partition = tp
        origin = (header(last.headers, "source.topic"), header(last.headers, "source.partition"))
        offset = header(last.headers, "source.offset")
        if origin != (topic.encode(), str(partition).encode()) or offset is None:
            return  # spread by key (a smaller, older DLQ topic): nothing known
        with self._lock:
            self._done[tp] = max(self._done.get(tp, -1), int(offset))

    def fresh(
        self, bad: Sequence[tuple[LogRecord, BadRecord]]
    ) -> list[tuple[LogRecord, BadRecord]]:
        """The bad records not dead-lettered before."""
        with self._lock:
            done = dict(self._done)
        return [(r, e) for r, e in bad if r.offset > done.get(r.tp, -1)]

    def letters(self, bad: Sequence[tuple[LogRecord, BadRecord]]) -> dict[str, list[OutRecord]]:
        """The dead letters of ``bad`` per DLQ topic, each pinned to its source's partition."""
        by_topic: dict[str, list[OutRecord]] = {}
        for record, error in bad:
            topic = record.topic + DLQ_SUFFIX
            letter = dead_letter(record, str(error))
            if record.partition < self._partitions(topic, record.topic):
                letter = OutRecord(letter.value, letter.key, letter.headers, record.partition)
            by_topic.setdefault(topic, []).append(letter)
        return by_topic

    def sent(self, bad: Sequence[tuple[LogRecord, BadRecord]]) -> None:
        """The dead letters of ``bad`` are durable in the DLQ: their positions are done."""
        with self._lock:
            for record, _ in bad:
                self._done[record.tp] = max(self._done.get(record.tp, -1), record.offset)

    def _partitions(self, dlq: str, source: str) -> int:
        """Partitions of the DLQ topic, created with as many as its source if missing."""
        if self._log is None:
            return 0
        if dlq not in self._dlq_partitions:
            self._dlq_partitions[dlq] = self._log.create_topic(dlq, self._log.partitions(source))
        return self._dlq_partitions[dlq]

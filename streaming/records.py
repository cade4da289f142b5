"""Record types and the two seams the sink depends on: a record source and a DLQ writer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from graphstore import TopicPartition

Headers = tuple[tuple[str, bytes], ...]

EVENTS_TOPIC = "events"
ITEMS_TOPIC = "items"
DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record as read from a log: Kafka's or the embedded one."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()
    ts: float = 0.0

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to append: partitioned by ``key`` (a stable hash) unless ``partition`` is set."""

    value: bytes
    key: bytes | None = None
    headers: Headers = ()
    partition: int | None = None


class RecordSource(Protocol):
    """What the sink reads from: a consumer with manual offset commits."""

    def assignment(self) -> Sequence[TopicPartition]: ...

    def on_assign(self, callback: Callable[[Sequence[TopicPartition]], None]) -> None:
        """Have ``callback`` called with newly assigned partitions (before records flow)."""
        ...

    def committed(self, tp: TopicPartition) -> int | None:
        """Next offset to read as last committed by this consumer group, if any."""
        ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]: ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Record, durably, the next offset to read per partition."""
        ...


class RecordWriter(Protocol):
    """Where the sink's dead letters (and producers' records) go; ``send`` is durable on return."""

    def send(self, topic: str, records: Sequence[OutRecord]) -> None: ...


def dead_letter(record: LogRecord, reason: str) -> OutRecord:
    """Dead-letter copy of a bad record: original key and bytes; reason and origin in headers."""
    headers: Headers = (
        *record.headers,
        ("error", reason.encode()),
        ("source.topic", record.topic.encode()),
        ("source.partition", str(record.partition).encode()),
        ("source.offset", str(record.offset).encode()),
    )
    return OutRecord(value=record.value, key=record.key, headers=headers)


def header(headers: Headers, name: str) -> bytes | None:
    """The last value of header ``name``, if present."""
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return found

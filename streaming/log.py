"""The embedded event log: topics, partitions and offsets with Kafka's semantics, in SQLite.

Used by default (``log://PATH``) so that ``graphrec demo`` and most tests run without a
broker. Offsets are dense per partition and start at 0; a consumer group's committed offset
is the next offset to read, as in Kafka. Several processes may share one log file.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from graphstore import TopicPartition
from streaming.records import Headers, LogRecord, OutRecord

LOG_FILENAME = "log.sqlite"
DEFAULT_PARTITIONS = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    key BLOB, value BLOB NOT NULL, headers TEXT NOT NULL, ts REAL NOT NULL,
    PRIMARY KEY (topic, partition, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
);
"""
_INSERT_TOPIC = "INSERT OR IGNORE INTO topics (name, partitions) VALUES (?, ?)"
_SELECT_TOPIC = "SELECT partitions FROM topics WHERE name = ?"
_SELECT_TOPICS = "SELECT name, partitions FROM topics ORDER BY name"
# One index seek per partition (a GROUP BY over the topic would read all of its records).
_END_OFFSET = "SELECT MAX(offset) + 1 FROM records WHERE topic = ? AND partition = ?"
_INSERT_RECORD = "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)"
_READ = """
SELECT offset, key, value, headers, ts FROM records
WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?
"""
_COMMITTED = "SELECT offset FROM group_offsets WHERE grp = ? AND topic = ? AND partition = ?"
_COMMIT = "INSERT OR REPLACE INTO group_offsets VALUES (?, ?, ?, ?)"


class EventLog:
    """A durable, partitioned, append-only log in one SQLite file (``path=None``: in memory)."""

    def __init__(self, path: Path | None = None, *, durable: bool = True) -> None:
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        target = ":memory:" if path is None else str(path / LOG_FILENAME)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            target, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(_SCHEMA)

    def create_topic(self, name: str, partitions: int = DEFAULT_PARTITIONS) -> int:
        """Create ``name`` if missing; returns its partition count (existing topics keep theirs)."""
        if not name or partitions < 1:
            raise ValueError(f"invalid topic {name!r} with {partitions} partitions")
        with self._lock:
            self._db.execute(_INSERT_TOPIC, (name, partitions))
            return self.partitions(name)

    def partitions(self, topic: str) -> int:
        """Partition count of ``topic``; ``KeyError`` if it does not exist."""
        with self._lock:
            row = self._db.execute(_SELECT_TOPIC, (topic,)).fetchone()
        if row is None:
            raise KeyError(f"no topic {topic!r} in the event log")
        return int(row[0])

    def topics(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute(_SELECT_TOPICS).fetchall())

    def send(self, topic: str, records: Sequence[OutRecord]) -> None:
        """Append records durably (creating the topic if needed); see ``append``."""
        self.append(topic, records)

    def append(self, topic: str, records: Sequence[OutRecord]) -> list[tuple[int, int]]:
        """Append in one transaction; returns ``(partition, offset)`` of each record."""
        n = self.create_topic(topic)
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ends = self._end_offsets(topic, n)
                placed, rows = [], []
                for r in records:
                    p = r.partition if r.partition is not None else partition_for(r.key, n)
                    if not 0 <= p < n:
                        raise ValueError(f"partition {p} out of range for {topic!r} ({n})")
                    offset = ends.get(p, 0)
                    ends[p] = offset + 1
                    placed.append((p, offset))
                    rows.append((topic, p, offset, r.key, r.value, _dump(r.headers), now))
                self._db.executemany(_INSERT_RECORD, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return placed

    def read(self, tp: TopicPartition, offset: int, max_records: int) -> list[LogRecord]:
        """Records of one partition from ``offset`` on, at most ``max_records``."""
        topic, partition = tp
        with self._lock:
            rows = self._db.execute(_READ, (topic, partition, offset, max_records)).fetchall()
        return [
            LogRecord(topic, partition, o, k, v, _load(h) if h else (), ts)
            for o, k, v, h, ts in rows
        ]

    def last_record(self, tp: TopicPartition) -> LogRecord | None:
        """The newest record of one partition (``None`` when it holds none or its topic does
        not exist)."""
        if tp[0] not in self.topics():
            return None
        end = self.end_offsets(tp[0]).get(tp[1], 0)
        found = self.read(tp, end - 1, 1) if end else []
        return found[0] if found else None

    def last_records(self, topic: str, partitions: Sequence[int]) -> dict[int, LogRecord]:
        """The newest record of each of ``partitions`` of ``topic`` that holds one."""
        found = {p: self.last_record((topic, p)) for p in partitions}
        return {p: r for p, r in found.items() if r is not None}

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Next offset to be written, per partition of ``topic``."""
        n = self.partitions(topic)
        with self._lock:
            return self._end_offsets(topic, n)

    def _end_offsets(self, topic: str, partitions: int) -> dict[int, int]:
        ends = {}
        for p in range(partitions):
            (end,) = self._db.execute(_END_OFFSET, (topic, p)).fetchone()
            ends[p] = 0 if end is None else int(end)
        return ends

    def committed(self, group: str, tp: TopicPartition) -> int | None:
        with self._lock:
            row = self._db.execute(_COMMITTED, (group, tp[0], tp[1])).fetchone()
        return None if row is None else int(row[0])

    def commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        with self._lock:
            rows = [(group, t, p, o) for (t, p), o in offsets.items()]
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(_COMMIT, rows)
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class LogConsumer:
    """A single consumer in ``group`` assigned every partition of ``topics`` (a RecordSource)."""

    def __init__(self, log: EventLog, group: str, topics: Sequence[str]) -> None:
        self._log = log
        self._group = group
        self._positions: dict[TopicPartition, int] = {}
        self._turn = 0  # rotates the partition polled first, so none starves
        for topic in topics:
            for p in range(log.create_topic(topic)):
                tp = (topic, p)
                self._positions[tp] = log.committed(group, tp) or 0

    def assignment(self) -> list[TopicPartition]:
        return list(self._positions)

    def on_assign(self, callback: Callable[[Sequence[TopicPartition]], None]) -> None:
        """The assignment is static (every partition), so the callback runs at once."""
        callback(self.assignment())

    def committed(self, tp: TopicPartition) -> int | None:
        return self._log.committed(self._group, tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset

    def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
        deadline = time.monotonic() + timeout_s
        while True:
            out: list[LogRecord] = []
            tps = list(self._positions)
            self._turn = (self._turn + 1) % max(1, len(tps))
            for tp in tps[self._turn :] + tps[: self._turn]:
                if len(out) >= max_records:
                    break
                got = self._log.read(tp, self._positions[tp], max_records - len(out))
                if got:
                    self._positions[tp] = got[-1].offset + 1
                    out.extend(got)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._log.commit(self._group, offsets)

    def lag(self) -> int:
        """Records not yet read by this consumer, over all assigned partitions."""
        total = 0
        for topic in {t for t, _ in self._positions}:
            for p, end in self._log.end_offsets(topic).items():
                total += max(0, end - self._positions.get((topic, p), 0))
        return total


def partition_for(key: bytes | None, partitions: int) -> int:
    """Stable partition of a key (CRC-32); keyless records go to partition 0."""
    return 0 if key is None else zlib.crc32(key) % partitions


def _dump(headers: Headers) -> str:
    if not headers:
        return ""
    return json.dumps([[k, base64.b64encode(v).decode()] for k, v in headers])


def _load(text: str) -> Headers:
    if not text:
        return ()
    return tuple((k, base64.b64decode(v)) for k, v in json.loads(text))

"""The sink: decode ▸ validate ▸ batch ▸ GraphStore.apply ▸ commit offsets.

Order of effects per batch, which is what makes a crash at any point safe:

1. bad records are written to the dead-letter topic (durable on return);
2. good records and the consumed positions are applied to the graph in one transaction;
3. the source's offsets are committed.

A crash after 1 re-dead-letters at most one batch; after 2 the graph's watermark makes the
replayed batch a no-op. On start the sink seeks every partition to
``max(committed, watermark + 1)``, so nothing the graph already holds is read again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from graphstore.base import Batch, GraphStore, InvalidInput, Positioned
from graphstore.types import Interaction, ItemRecord, Position
from streaming.codec import BadRecord, decode_event, decode_item
from streaming.records import (
    DLQ_SUFFIX,
    ITEMS_TOPIC,
    LogRecord,
    RecordSource,
    RecordWriter,
    TopicPartition,
    dead_letter,
)

log = logging.getLogger(__name__)
R = TypeVar("R")


@dataclass(frozen=True)
class SinkConfig:
    batch_size: int = 2_000  # records per graph transaction
    poll_timeout_s: float = 0.05  # how long one poll waits for records
    item_topics: Collection[str] = (ITEMS_TOPIC,)  # topics carrying ItemUpsert, not Event
    retry_initial_s: float = 0.2  # first back-off after a failed graph write
    retry_max_s: float = 5.0  # back-off ceiling; the sink retries until stopped


@dataclass
class SinkStats:
    applied: int = 0
    skipped_replayed: int = 0
    dead_lettered: int = 0
    batches: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return (self.applied + self.skipped_replayed) / self.elapsed_s if self.elapsed_s else 0.0


@dataclass(frozen=True)
class Decoded:
    interactions: list[Positioned[Interaction]]
    items: list[Positioned[ItemRecord]]
    bad: list[tuple[LogRecord, BadRecord]]
    consumed: dict[TopicPartition, int]


def decode_batch(records: list[LogRecord], item_topics: Collection[str]) -> Decoded:
    """Split polled records into good interactions, good items and (record, reason) pairs."""
    out = Decoded([], [], [], {})
    now = time.time()
    for r in records:
        position = Position(r.topic, r.partition, r.offset)
        out.consumed[r.tp] = max(out.consumed.get(r.tp, -1), r.offset)
        try:
            if r.topic in item_topics:
                out.items.append(Positioned(decode_item(r.value, now), position))
            else:
                out.interactions.append(Positioned(decode_event(r.value, now), position))
        except BadRecord as exc:
            out.bad.append((r, exc))
    return out


class Sink:
    """Moves records from a source into a graph store, dead-lettering bad ones."""

    def __init__(
        self,
        source: RecordSource,
        store: GraphStore,
        dead_letters: RecordWriter,
        config: SinkConfig | None = None,
        on_batch: Callable[[SinkStats], None] | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.dead_letters = dead_letters
        self.config = config or SinkConfig()
        self.stats = SinkStats()
        self._on_batch = on_batch
        self._stop = threading.Event()
        source.on_assign(self._resume_from_watermarks)

    def _resume_from_watermarks(self, partitions: Sequence[TopicPartition]) -> None:
        """Seek each newly assigned partition past everything the graph already holds."""
        marks = self.store.watermarks()
        for tp in partitions:
            start = max(self.source.committed(tp) or 0, marks.get(tp, -1) + 1)
            self.source.seek(tp, start)

    def stop(self) -> None:
        """Ask ``run`` to return after the batch in hand is committed."""
        self._stop.set()

    def run(self, idle_exit_s: float | None = None) -> SinkStats:
        """Process until ``stop()``, or until no record arrived for ``idle_exit_s`` seconds."""
        started = time.monotonic()
        last_record = started
        while not self._stop.is_set():
            n = self.step()
            now = time.monotonic()
            if n:
                last_record = now
                self.stats.elapsed_s = now - started  # busy time: trailing idle wait excluded
            elif idle_exit_s is not None and now - last_record >= idle_exit_s:
                break
        return self.stats

    def step(self) -> int:
        """Poll one batch and carry it through to the offset commit; returns records handled."""
        records = self.source.poll(self.config.batch_size, self.config.poll_timeout_s)
        if not records:
            return 0
        decoded = decode_batch(records, self.config.item_topics)
        self._dead_letter(decoded.bad)
        batch = Batch(decoded.interactions, decoded.items, decoded.consumed)
        result = self._with_retries(lambda: self.store.apply(batch))
        self._with_retries(
            lambda: self.source.commit({tp: o + 1 for tp, o in decoded.consumed.items()})
        )
        self.stats.applied += result.applied
        self.stats.skipped_replayed += result.skipped_replayed
        self.stats.batches += 1
        if self._on_batch is not None:
            self._on_batch(self.stats)
        return len(records)

    def _dead_letter(self, bad: list[tuple[LogRecord, BadRecord]]) -> None:
        if not bad:
            return
        by_topic: dict[str, list[tuple[LogRecord, BadRecord]]] = {}
        reasons = self.stats.dead_letter_reasons
        for record, error in bad:
            by_topic.setdefault(record.topic + DLQ_SUFFIX, []).append((record, error))
            reasons[error.kind] = reasons.get(error.kind, 0) + 1
        for topic, group in by_topic.items():
            letters = [dead_letter(r, str(error)) for r, error in group]
            self._with_retries(lambda t=topic, ls=letters: self.dead_letters.send(t, ls))  # type: ignore[misc]
        self.stats.dead_lettered += len(bad)
        log.info("dead-lettered %d records", len(bad))

    def _with_retries(self, action: Callable[[], R]) -> R:
        delay = self.config.retry_initial_s
        while True:
            try:
                return action()
            except InvalidInput:
                raise  # a bug in decode/validate, not a transient fault: surface it
            except Exception as exc:
                if self._stop.is_set():
                    raise
                self.stats.retries += 1
                log.warning(
                    "write failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, self.config.retry_max_s)

"""The sink: decode ▸ validate ▸ batch ▸ GraphStore.apply ▸ publish changes ▸ commit offsets.

Order of effects per batch, which is what makes a crash at any point safe:

1. bad records are written to the dead-letter topic (durable on return);
2. good records and the consumed positions are applied to the graph in one transaction;
3. the changes of the batch are published to the change stream (when the sink has a
   ``ChangePublisher``: every sink graphrec builds does);
4. the source's offsets are committed.

A crash after 1 re-dead-letters at most one batch; after 2 the graph's watermark makes the
replayed batch a no-op. On start the sink seeks every partition to
``max(committed, watermark + 1)``, so nothing the graph already holds is read again; a sink
that publishes seeks to ``max(committed, min(watermark, covered) + 1)`` instead, so what was
applied but not yet published (a crash between 2 and 3) is read again and published, the
store skipping it as a replay (see ``streaming.publish``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import TypeVar

import tenacity

from graphstore import (
    Batch,
    DedupWindow,
    GraphStore,
    Interaction,
    InvalidInput,
    ItemRecord,
    Position,
    Positioned,
    TopicPartition,
)
from streaming.codec import BadRecord, decode_event, decode_item
from streaming.deadletters import DeadLetterQueue
from streaming.publish import ChangePublisher
from streaming.records import ITEMS_TOPIC, LogRecord, RecordSource, RecordWriter

log = logging.getLogger(__name__)
R = TypeVar("R")
T = TypeVar("T", Interaction, ItemRecord)
_TOPIC_PARTITION = attrgetter("topic", "partition")


@dataclass(frozen=True)
class SinkConfig:
    batch_size: int = 2_000  # records per graph transaction
    poll_timeout_s: float = 0.05  # how long one poll waits for records
    item_topics: Collection[str] = (ITEMS_TOPIC,)  # topics carrying ItemUpsert, not Event
    retry_initial_s: float = 0.2  # first back-off after a failed graph write
    retry_max_s: float = 5.0  # back-off ceiling; the sink retries until stopped
    # Events whose event_id was accepted within this window are dropped (None: keep all).
    dedup: DedupWindow | None = field(default_factory=DedupWindow)


@dataclass
class SinkStats:
    applied: int = 0
    skipped_replayed: int = 0
    skipped_duplicate: int = 0
    dead_lettered: int = 0
    changes_published: int = 0
    batches: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        handled = self.applied + self.skipped_replayed + self.skipped_duplicate
        return handled / self.elapsed_s if self.elapsed_s else 0.0


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
    # Sources hand out runs of consecutive records from one partition: the topic's decoder,
    # the output list and the partition's highest offset are settled once per run.
    for (topic, partition), run in groupby(records, _TOPIC_PARTITION):
        tp = (topic, partition)
        if topic in item_topics:
            highest = _decode_run(run, topic, partition, decode_item, now, out.items, out.bad)
        else:
            highest = _decode_run(
                run, topic, partition, decode_event, now, out.interactions, out.bad
            )
        out.consumed[tp] = max(out.consumed.get(tp, -1), highest)
    return out


def _decode_run(
    run: Iterable[LogRecord],
    topic: str,
    partition: int,
    decode: Callable[[bytes, float], T],
    now: float,
    good: list[Positioned[T]],
    bad: list[tuple[LogRecord, BadRecord]],
) -> int:
    """Decode records of one partition into ``good`` or ``bad``; returns the highest offset."""
    highest = -1
    for r in run:
        offset = r.offset
        if offset > highest:
            highest = offset
        try:
            good.append(Positioned(decode(r.value, now), Position(topic, partition, offset)))
        except BadRecord as exc:
            bad.append((r, exc))
    return highest


class Sink:
    """Moves records from a source into a graph store, dead-lettering bad ones."""

    def __init__(
        self,
        source: RecordSource,
        store: GraphStore,
        dead_letters: RecordWriter,
        config: SinkConfig | None = None,
        on_batch: Callable[[SinkStats], None] | None = None,
        changes: ChangePublisher | None = None,
    ) -> None:
        """``changes``: where each commit's changes are published (``None``: nowhere)."""
        self.source = source
        self.store = store
        self.dead_letters = dead_letters
        self.changes = changes
        self.config = config or SinkConfig()
        self.stats = SinkStats()
        self._on_batch = on_batch
        self._stop = threading.Event()
        # Next offset per partition after the records decoded and handed to the writer: on a
        # rebalance that gives a partition back, those are in hand and not read again.
        self._in_hand: dict[TopicPartition, int] = {}
        self._dlq = DeadLetterQueue(dead_letters)
        self.assigned_at = 0.0  # monotonic time of the last assignment (an idle clock restart)
        # Batches handed to the writer and not yet written: a revocation waits for them.
        self._in_flight = 0
        self._settled = threading.Condition()
        source.on_assign(self._resume_from_watermarks)
        on_revoke = getattr(source, "on_revoke", None)
        if on_revoke is not None:
            on_revoke(self._drain)

    def _resume_from_watermarks(self, partitions: Sequence[TopicPartition]) -> None:
        """Seek each newly assigned partition past everything the graph already holds (and,
        when publishing, the change stream covers) and everything this sink has decoded but
        not yet written (it will be)."""
        marks = self.store.watermarks()
        covered = None if self.changes is None else self.changes.covered()
        for tp in partitions:
            applied = marks.get(tp, -1)
            held = applied if covered is None else min(applied, covered.get(tp, -1))
            start = max(self.source.committed(tp) or 0, held + 1)
            if self.changes is not None:
                self.changes.resumed(tp, min(start, applied + 1))
            self.source.seek(tp, max(start, self._in_hand.get(tp, 0)))
        self._dlq.resumed(partitions)
        self.assigned_at = time.monotonic()

    def _hand_over(self, records: list[LogRecord]) -> Decoded:
        """Decode polled records for the writer, noting them as in hand."""
        decoded = decode_batch(records, self.config.item_topics)
        for tp, offset in decoded.consumed.items():
            self._in_hand[tp] = max(self._in_hand.get(tp, 0), offset + 1)
        with self._settled:
            self._in_flight += 1
        return decoded

    def _finished(self) -> None:
        """One batch handed over is written (and its offsets passed on to be committed)."""
        with self._settled:
            self._in_flight -= 1
            self._settled.notify_all()

    def _drain(self, revoked: Sequence[TopicPartition]) -> None:
        """Partitions are being revoked: return once every batch in hand is written, so the
        new owners do not write (or dead-letter) them a second time. Stopping cuts it short."""
        with self._settled:
            while self._in_flight and not self._stop.is_set():
                self._settled.wait(0.1)

    def stop(self) -> None:
        """Ask ``run`` to return after the batches in hand are written and committed."""
        self._stop.set()

    def run(self, idle_exit_s: float | None = None) -> SinkStats:
        """Process until ``stop()``, or until no record arrived for ``idle_exit_s`` seconds
        (counted from the last record or partition assignment, whichever is later).

        Two threads overlap the work: a reader polls and decodes the next batch while this
        thread writes the current one to the graph. The reader owns the consumer (Kafka
        consumers are not thread-safe), so it also commits the offsets of batches this thread
        has finished writing.
        """
        batches: queue.Queue[Decoded | None] = queue.Queue(maxsize=2)
        written: queue.SimpleQueue[dict[TopicPartition, int]] = queue.SimpleQueue()
        writer_done = threading.Event()
        reader = _Reader(self, batches, written, writer_done, idle_exit_s)
        reader.start()
        try:
            while (batch := batches.get()) is not None:
                self._write(batch)
                written.put({tp: o + 1 for tp, o in batch.consumed.items()})
                self._finished()
                self.stats.elapsed_s = time.monotonic() - reader.first_record_at
        except BaseException:
            self._stop.set()
            raise
        finally:
            writer_done.set()
            reader.join()
        if reader.error is not None:
            raise reader.error
        return self.stats

    def step(self) -> int:
        """Poll, write and commit one batch on this thread; returns records handled."""
        records = self.source.poll(self.config.batch_size, self.config.poll_timeout_s)
        if records:
            batch = self._hand_over(records)
            self._write(batch)
            self.commit({tp: o + 1 for tp, o in batch.consumed.items()})
            self._finished()
        return len(records)

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit next-to-read offsets (only ever after the graph commit that covers them)."""
        self._with_retries(lambda: self.source.commit(offsets))

    def _write(self, decoded: Decoded) -> None:
        self._dead_letter(decoded.bad)
        batch = Batch(
            decoded.interactions,
            decoded.items,
            decoded.consumed,
            dedup=self.config.dedup,
            ingested_at=time.time(),
        )
        result = self._with_retries(lambda: self.store.apply(batch))
        committed_at = time.time()
        self.stats.applied += result.applied
        self.stats.skipped_replayed += result.skipped_replayed
        self.stats.skipped_duplicate += result.skipped_duplicate
        if result.skipped_duplicate:
            log.info("dropped %d resent events (event id seen before)", result.skipped_duplicate)
        self._publish(decoded, committed_at)
        self.stats.batches += 1
        if self._on_batch is not None:
            self._on_batch(self.stats)

    def _publish(self, decoded: Decoded, committed_at: float) -> None:
        """Publish the changes of a committed batch: every good record, replays included."""
        if self.changes is None:
            return
        changes = self.changes
        publication = changes.prepare(
            decoded.interactions, decoded.items, decoded.consumed, committed_at
        )
        self._with_retries(lambda: changes.send(publication))
        self.stats.changes_published += len(publication.records)

    def _dead_letter(self, bad: list[tuple[LogRecord, BadRecord]]) -> None:
        fresh = self._dlq.fresh(bad)
        if len(fresh) < len(bad):
            log.info("%d bad records read again were dead-lettered before", len(bad) - len(fresh))
        if not fresh:
            return
        reasons = self.stats.dead_letter_reasons
        for _, error in fresh:
            reasons[error.kind] = reasons.get(error.kind, 0) + 1
        for topic, letters in self._dlq.letters(fresh).items():
            self._with_retries(lambda t=topic, ls=letters: self.dead_letters.send(t, ls))  # type: ignore[misc]
        self._dlq.sent(fresh)
        self.stats.dead_lettered += len(fresh)
        log.info("dead-lettered %d records", len(fresh))

    def _with_retries(self, action: Callable[[], R]) -> R:
        """Run ``action``, retrying transient failures with exponential back-off until it
        succeeds or the sink is stopped; ``InvalidInput`` is a bug in decode/validate, not a
        transient fault, and is raised at once."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(self._is_transient),
            wait=tenacity.wait_exponential(
                multiplier=self.config.retry_initial_s, max=self.config.retry_max_s
            ),
            sleep=self._back_off,
            before_sleep=self._count_retry,
            reraise=True,
        )
        return retrying(action)

    def _back_off(self, seconds: float) -> None:
        self._stop.wait(seconds)  # stop() cuts a back-off short

    def _is_transient(self, exc: BaseException) -> bool:
        return (
            isinstance(exc, Exception)
            and not isinstance(exc, InvalidInput)
            and not self._stop.is_set()
        )

    def _count_retry(self, state: tenacity.RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        delay = state.upcoming_sleep
        log.warning("write failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)


class _Reader(threading.Thread):
    """Polls and decodes ahead of the writer, and commits what the writer has finished."""

    def __init__(
        self,
        sink: Sink,
        out: queue.Queue[Decoded | None],
        written: queue.SimpleQueue[dict[TopicPartition, int]],
        writer_done: threading.Event,
        idle_exit_s: float | None,
    ) -> None:
        super().__init__(name="sink-reader", daemon=True)
        self.sink, self.out, self.written = sink, out, written
        self.writer_done, self.idle_exit_s = writer_done, idle_exit_s
        self.first_record_at = time.monotonic()
        self.error: BaseException | None = None

    def run(self) -> None:
        sink, config = self.sink, self.sink.config
        seen_records, last_record = False, time.monotonic()
        try:
            while not sink._stop.is_set() and not self.writer_done.is_set():
                self._commit_written()
                records = sink.source.poll(config.batch_size, config.poll_timeout_s)
                now = time.monotonic()
                if records:
                    if not seen_records:
                        seen_records, self.first_record_at = True, now
                    last_record = now
                    self._put(sink._hand_over(records))
                elif (
                    self.idle_exit_s is not None
                    and now - max(last_record, sink.assigned_at) >= self.idle_exit_s
                ):
                    break
        except BaseException as exc:
            self.error = exc
        finally:
            self._put(None)
            self.writer_done.wait()
            self._commit_written()

    def _put(self, item: Decoded | None) -> None:
        # Block while the writer is behind (back-pressure), but never past its end.
        while not self.writer_done.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _commit_written(self) -> None:
        offsets: dict[TopicPartition, int] = {}
        while True:
            try:
                done = self.written.get_nowait()
            except queue.Empty:
                break
            for tp, offset in done.items():
                offsets[tp] = max(offsets.get(tp, 0), offset)
        if offsets:
            try:
                self.sink.commit(offsets)
            except Exception as exc:  # the graph holds the batch; a replay would be a no-op
                log.warning("offset commit failed (%s); the next commit covers it", exc)

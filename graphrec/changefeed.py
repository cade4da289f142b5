"""Follow the change stream for the service: re-embed the items each graph commit touched.

The sink publishes, after each graph commit, one record per node the commit touched
(``streaming.changes``), so a change read here is already in the graph: the feed neither
decodes the event topics nor waits for the store's watermarks. It reads the stream from its
start with a consumer of its own and skips the changes the loaded model version's watermarks
cover (``start_from``): what the sink applied between the training snapshot and now is
re-embedded, and nothing the version already holds. Without a version it skips what the
store held when the feed started.

Changed items collect in a pending set and go to ``notify`` in batches: as soon as
``batch_items`` wait, or when the oldest of them is ``max_staleness_s`` past its commit
(``staleness_s`` tells how far behind the table is now). Catalogue records in the changes
add or update rows; actors' changes are skipped (requests read actors' live edges).

A hot reload swaps in a version built from another snapshot: the feed then goes back to the
stream's start and filters with that version's watermarks, so what the sink applied since
its snapshot is re-embedded on it too.

The feed outlives its log and its store: when either fails (Kafka down at start, the store
unreachable while re-embedding) it reports the loop down, waits and reconnects
(``serving.loops``), going on after the last change it read; a batch that failed stays
pending and is tried again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from graphstore import MAX_SEEDS, GraphStore, ItemRecord, NodeKind
from serving.app import Serving
from serving.loops import LoopMetrics, LoopState, SetHealth, run_forever
from streaming.changes import Change, read_changes
from streaming.records import LogRecord, RecordSource, TopicPartition
from streaming.urls import open_changes

log = logging.getLogger(__name__)
LOOP_NAME = "change-feed"
MAX_STALENESS_S = 0.2  # default bound on how long a change waits for its batch
IDLE_POLL_S = 0.1  # longest poll, so a stop or a hot reload is seen soon
POLL_RECORDS = 5_000
Notify = Callable[[list[str], list[ItemRecord]], object]
Positions = Mapping[TopicPartition, int]


@dataclass
class Pending:
    """Changed items not yet handed on: ids to re-embed, catalogue records to upsert."""

    ids: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    records: dict[str, ItemRecord] = field(default_factory=dict)
    oldest_commit: float | None = None  # committed_at of the oldest change waiting
    due: float = float("inf")  # time.monotonic() by which they are handed on

    def add(self, change: Change, max_staleness_s: float) -> None:
        """Take an item's change; it is due ``max_staleness_s`` after its commit (at most
        that long from now, whatever the clocks of the sink and this host say)."""
        key = change.node.key
        self.ids[key] = None
        if change.record is not None:
            self.records[key] = change.record
        if self.oldest_commit is None or change.committed_at < self.oldest_commit:
            self.oldest_commit = change.committed_at
        age = max(0.0, time.time() - change.committed_at)
        self.due = min(self.due, time.monotonic() + max(0.0, max_staleness_s - age))

    def __len__(self) -> int:
        return len(self.ids)


class ChangeFeed(threading.Thread):
    """A daemon thread calling ``notify(item_ids, item_records)`` for batches of changed items.

    ``start_from()`` gives the positions the item table reflects (the loaded version's
    watermarks), or None without a version (the feed then skips what the store holds when it
    starts). It gives the same mapping object while the same version is loaded
    (``serving.app.Serving.watermarks`` does); another object means a newly loaded version,
    and the feed goes back to the stream's start.

    ``state`` shows whether it can follow the stream (metrics, health); by default one of
    its own, on a registry nobody serves."""

    def __init__(
        self,
        log_url: str,
        store: GraphStore,
        notify: Notify,
        state: LoopState | None = None,
        start_from: Callable[[], Positions | None] | None = None,
        max_staleness_s: float = MAX_STALENESS_S,
        batch_items: int = MAX_SEEDS,
    ) -> None:
        super().__init__(name=LOOP_NAME, daemon=True)
        self.log_url, self.store, self.notify = log_url, store, notify
        self.state = state or LoopState(LOOP_NAME, LoopMetrics(CollectorRegistry()))
        self.start_from = start_from or (lambda: None)
        self.max_staleness_s, self.batch_items = max_staleness_s, batch_items
        self.pending = Pending()
        self.batches = 0  # batches handed on
        self._filter: Positions | None = None  # changes these positions cover are skipped
        self._version_marks: Positions | None = None  # start_from()'s answer in use
        self._read_next: dict[TopicPartition, int] = {}  # next offset of the stream to read
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        run_forever(self._follow, self.state, self._stopping)

    def staleness_s(self) -> float:
        """Age of the oldest change read but not yet in the item table; 0 when caught up."""
        oldest = self.pending.oldest_commit
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def _follow(self) -> None:
        """Follow the stream until stopped; raises when the log or the store fails."""
        source = open_changes(self.log_url, f"graphrec-serving-{uuid.uuid4().hex[:8]}")
        source.on_assign(lambda tps: self._position(source, tps))
        try:
            while not self._stopping.is_set():
                self._rewind_to_a_new_version(source)
                records = source.poll(POLL_RECORDS, self._poll_wait())
                self.state.succeeded()
                self._take(records)
                if self.pending and (
                    len(self.pending) >= self.batch_items or time.monotonic() >= self.pending.due
                ):
                    self._hand_on()
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _poll_wait(self) -> float:
        if not self.pending:
            return IDLE_POLL_S
        return max(0.0, min(IDLE_POLL_S, self.pending.due - time.monotonic()))

    def _take(self, records: Sequence[LogRecord]) -> None:
        """Add the items of the changes the table does not reflect yet to the pending set."""
        for change in read_changes(records, self._read_next, "change feed"):
            if change.node.kind is not NodeKind.ITEM:
                continue
            if self._filter is not None and change.covered_by(self._filter):
                continue
            self.pending.add(change, self.max_staleness_s)

    def _hand_on(self) -> None:
        """Re-embed the pending items; they stay pending if that fails (and it raises)."""
        batch = self.pending
        self.notify(list(batch.ids), list(batch.records.values()))
        self.pending = Pending()
        self.batches += 1

    def _position(self, source: RecordSource, tps: Sequence[TopicPartition]) -> None:
        """Where a (re)assigned stream is read from: its start, or after what was read."""
        start = self.start_from()
        if start is not None and start is not self._version_marks:
            self._use_version(start)
        elif self._filter is None:
            self._filter = self.store.watermarks()
        for tp in tps:
            source.seek(tp, self._read_next.get(tp, 0))

    def _rewind_to_a_new_version(self, source: RecordSource) -> None:
        start = self.start_from()
        if start is None or start is self._version_marks:
            return
        self._use_version(start)
        for tp in source.assignment():
            source.seek(tp, 0)
        log.info("change feed: re-reading the change stream for the new version's watermarks")

    def _use_version(self, start: Positions) -> None:
        self._version_marks = start
        self._filter = dict(start)
        self._read_next.clear()


def serving_feed(
    log_url: str, store: GraphStore, serving: Serving, set_health: SetHealth | None = None
) -> ChangeFeed:
    """A change feed for ``serving``: from its loaded version's watermarks, re-embedding
    through ``Serving.items_changed``; its loop state and staleness on the service's
    metrics (``graphrec_change_feed_staleness_seconds``)."""
    state = LoopState(LOOP_NAME, serving.metrics.loops, set_health)
    feed = ChangeFeed(
        log_url, store, serving.items_changed, state=state, start_from=serving.watermarks
    )
    serving.metrics.feed_staleness.set_function(feed.staleness_s)
    return feed

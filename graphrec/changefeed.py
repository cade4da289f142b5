"""Follow the event log for the service: which items changed, once the graph holds the change.

The serving process reads the same topics as the sink with a consumer group of its own,
starting right after what the graph held when the item table was built (``start_from``: the
loaded model version's watermarks, so what the sink applied between the training snapshot
and now is re-embedded; the store's watermark without one), and waits for the store's
watermark to pass each batch before asking the service to re-embed the items it touched.
Bad records are skipped here (the sink dead-letters them).

A hot reload swaps in a version built from an older snapshot than what the feed has handed
on: the feed then goes back to that version's watermarks, so what the sink applied since is
re-embedded on the new version too.

The feed outlives its event log and its store: when either fails (Kafka down at start, the
store unreachable) it reports the loop down, waits and reconnects (``serving.loops``),
starting again after the last batch it handed on.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

from prometheus_client import CollectorRegistry

from graphstore import GraphStore, ItemRecord
from serving.loops import LoopMetrics, LoopState, run_forever
from streaming.codec import BadRecord, decode_event, decode_item
from streaming.records import TopicPartition
from streaming.urls import open_source, parse_log_url

log = logging.getLogger(__name__)
LOOP_NAME = "change-feed"
Notify = Callable[[list[str], list[ItemRecord]], object]
Positions = Mapping[TopicPartition, int]


class ChangeFeed(threading.Thread):
    """A daemon thread calling ``notify(item_ids, item_records)`` for each applied batch.

    It starts after the positions ``start_from()`` returns (the applied offset per
    partition; a partition it leaves out is read from its start), or after the store's
    watermarks when that returns None. ``start_from`` gives the same mapping object while the
    same version is loaded (``serving.app.Serving.watermarks`` does); another object means a
    newly loaded version, and the feed goes back to its positions.

    ``state`` shows whether it can follow the log (metrics, health); by default one of its
    own, on a registry nobody serves."""

    def __init__(
        self,
        log_url: str,
        store: GraphStore,
        notify: Notify,
        wait_for_graph_s: float = 10.0,
        state: LoopState | None = None,
        start_from: Callable[[], Positions | None] | None = None,
    ) -> None:
        super().__init__(name=LOOP_NAME, daemon=True)
        self.log_url, self.store, self.notify = log_url, store, notify
        self.wait_for_graph_s = wait_for_graph_s
        self.items_topic = parse_log_url(log_url).items
        self.state = state or LoopState(LOOP_NAME, LoopMetrics(CollectorRegistry()))
        self.start_from = start_from or (lambda: None)
        self._handed_on: dict[TopicPartition, int] = {}  # newest offset notified, per partition
        self._version_marks: Positions | None = None  # what start_from gave when it last started
        self._stopping = threading.Event()
        self.batches = 0

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        run_forever(self._follow, self.state, self._stopping)

    def _follow(self) -> None:
        """Follow the log until stopped; raises when the log or the store fails."""
        source = open_source(self.log_url, f"graphrec-serving-{uuid.uuid4().hex[:8]}")
        source.on_assign(lambda tps: self._start_after_graph(source, tps))
        try:
            while not self._stopping.is_set():
                self._rewind_to_a_new_version(source)
                records = source.poll(5_000, 0.1)
                self.state.succeeded()
                if not records:
                    continue
                ids: dict[str, None] = {}
                items: list[ItemRecord] = []
                newest: dict[TopicPartition, int] = {}
                for r in records:
                    newest[r.tp] = max(newest.get(r.tp, -1), r.offset)
                    try:
                        if r.topic == self.items_topic:
                            items.append(decode_item(r.value))
                        else:
                            ids[decode_event(r.value).item_id] = None
                    except BadRecord:
                        continue
                self._wait_until_applied(newest)
                try:
                    self.notify(list(ids), items)
                    self.batches += 1
                except Exception:
                    log.exception("refreshing %d changed items failed", len(ids) + len(items))
                self._handed_on.update(newest)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _rewind_to_a_new_version(self, source: object) -> None:
        start = self.start_from()
        if start is None or start is self._version_marks:
            return
        self._version_marks = start
        for tp in source.assignment():  # type: ignore[attr-defined]
            source.seek(tp, start.get(tp, -1) + 1)  # type: ignore[attr-defined]
            self._handed_on[tp] = start.get(tp, -1)
        log.info("change feed: re-reading the log after the new version's watermarks")

    def _start_after_graph(self, source: object, tps: Sequence[TopicPartition]) -> None:
        start = self.start_from()
        self._version_marks = start
        marks = dict(self.store.watermarks() if start is None else start)
        marks.update(self._handed_on)  # a reconnect goes on after what it handed on
        for tp in tps:
            source.seek(tp, marks.get(tp, -1) + 1)  # type: ignore[attr-defined]

    def _wait_until_applied(self, newest: dict[TopicPartition, int]) -> None:
        deadline = time.monotonic() + self.wait_for_graph_s
        while not self._stopping.is_set():
            marks = self.store.watermarks()
            if all(marks.get(tp, -1) >= offset for tp, offset in newest.items()):
                return
            if time.monotonic() > deadline:
                log.warning(
                    "graph has not caught up with the log after %.0f s; refreshing anyway",
                    self.wait_for_graph_s,
                )
                return
            time.sleep(0.02)

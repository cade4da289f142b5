"""Freshness: event time → the first response that reflects the event, per subject."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from graphstore import NodeRef
from serving.subgraph import LocalGraph
from serving.types import Subject


class FreshnessTracker:
    """Remembers each subject's newest edge time seen in a response (the most recent
    ``capacity`` subjects) and reports the delay of every newer one to ``on_fresh``."""

    def __init__(self, on_fresh: Callable[[float], None], capacity: int = 100_000) -> None:
        self._on_fresh = on_fresh
        self._capacity = capacity
        self._newest_seen: OrderedDict[NodeRef, float] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, subjects: Sequence[Subject], graph: LocalGraph) -> None:
        """Subject ``i`` of ``subjects`` is actor ``i`` of ``graph``."""
        for slot, subject in enumerate(subjects):
            if subject.key:
                self._observe(subject.node, graph.newest_ts_of(slot))

    def _observe(self, subject: NodeRef, newest: float | None) -> None:
        if newest is None:
            return
        with self._lock:
            before = self._newest_seen.get(subject)
            self._newest_seen[subject] = newest
            self._newest_seen.move_to_end(subject)
            if len(self._newest_seen) > self._capacity:
                self._newest_seen.popitem(last=False)
        if before is None or newest > before:
            self._on_fresh(max(0.0, time.time() - newest))

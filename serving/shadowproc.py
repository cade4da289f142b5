"""The shadow's process (``serving.shadow``): it opens what it scores with, takes the requests
the server hands it in batches, scores them and logs each list; its counts go back to the
server through shared counters.

``ShadowWork`` is what the process opens (picklable; ``graphrec.shadowjob`` opens a store, the
pinned version, a change feed and a recommendation log writer of its own). The process runs
at a lower priority (``os.nice``), with one torch thread, takes a batch at most every
``every_s``, rests after each so as to score at most ``max_busy`` of the wall clock, and stops
when the server sets ``STOP`` or when the server's process is gone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from prometheus_client import CollectorRegistry

from protos import graphrec_pb2 as pb
from serving import convert
from serving.logrecord import SHADOW_ARM
from serving.reclog import RecommendationLog
from serving.types import Query, Recommendation

if TYPE_CHECKING:
    from serving.shadow import ShadowConfig

log = logging.getLogger(__name__)
Offered = tuple[float, str, bytes]  # (ts, request id, request)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Shared with the server, written by the shadow's process only, without locks (a process
# killed while holding a lock would leave the server waiting on it): the counters, over all of
# the shadow's processes, and the state of one process.
SCORED, FAILED, LOGGED = range(3)  # counters
READY, HOLDING, STOP = range(3)  # one process's state (STOP: written by the server)
COUNTERS = STATE = 3
Counters: TypeAlias = "ctypes.Array[ctypes.c_int64]"


class Batched(Protocol):
    """Answers several queries at once (``serving.recommender.Recommender``)."""

    def recommend_many(self, queries: Sequence[Query]) -> list[Recommendation | Exception]: ...


@dataclass(frozen=True)
class Scorer:
    """What the shadow scores with and where its lists go."""

    recommender: Batched
    recommendations: RecommendationLog


class ShadowWork(Protocol):
    """What the shadow's process opens: picklable (it is handed to a spawned process)."""

    @property
    def version(self) -> str: ...

    def open(self, registry: CollectorRegistry) -> AbstractContextManager[Scorer]:
        """The scorer, its metrics on ``registry``; closed when the process stops."""
        ...


def shadow_main(
    work: ShadowWork,
    channel: Any,  # a multiprocessing queue of Offered
    counters: Counters,
    state: Counters,
    config: ShadowConfig,
    parent_pid: int,
    log_level: int,
) -> None:
    """The shadow's process: lower its priority, open ``work``, mark itself ``READY``, score
    what comes on ``channel`` until the server sets ``STOP`` or is gone."""
    logging.basicConfig(level=log_level, format=LOG_FORMAT)
    _lower_priority(config.nice)
    import torch

    torch.set_num_threads(1)  # one core's worth at most, and at a lower priority
    registry = CollectorRegistry()
    with work.open(registry) as scorer:
        worker = _Worker(scorer, channel, counters, state, config, registry)
        state[READY] = 1
        while not state[STOP] and os.getppid() == parent_pid:
            worker.step()
    worker.note_logged()  # the log's writer is stopped: its last writes are counted


class _Worker:
    def __init__(
        self,
        scorer: Scorer,
        channel: Any,
        counters: Counters,
        state: Counters,
        config: ShadowConfig,
        registry: CollectorRegistry,
    ) -> None:
        self.scorer, self.channel, self.counters, self.state = scorer, channel, counters, state
        self.config, self.registry = config, registry
        self.logged_before = counters[LOGGED]  # by the shadow's earlier processes

    def step(self) -> None:
        """Take up to ``max_batch`` requests (waiting up to ``linger_s`` for the first),
        score them, then rest: to ``max_busy`` of the clock, and ``every_s`` from the start
        of the batch."""
        batch = self._take()
        self.note_logged()
        if not batch:
            return
        self.state[HOLDING] = len(batch)
        started = time.perf_counter()
        try:
            self._score(batch)
        except Exception:
            log.exception("shadow: a batch of %d requests failed", len(batch))
            self._count(FAILED, self.state[HOLDING])
        self.state[HOLDING] = 0
        busy = time.perf_counter() - started
        rest = max(busy * (1.0 / self.config.max_busy - 1.0), self.config.every_s - busy)
        until = time.monotonic() + rest
        while not self.state[STOP] and time.monotonic() < until:
            time.sleep(max(0.0, min(self.config.linger_s, until - time.monotonic())))

    def note_logged(self) -> None:
        """Copy the shadow log's written count into the shared counters."""
        written = self.registry.get_sample_value("graphrec_recommendation_log_records_total")
        self.counters[LOGGED] = self.logged_before + int(written or 0)

    def _take(self) -> list[Offered]:
        try:
            out = [self.channel.get(timeout=self.config.linger_s)]
        except queue.Empty:
            return []
        try:
            while len(out) < self.config.max_batch:
                out.append(self.channel.get_nowait())
        except queue.Empty:
            pass
        return out

    def _score(self, batch: Sequence[Offered]) -> None:
        """Answer ``batch`` with the shadow version and log each list."""
        started = time.perf_counter()
        queries, parsed = [], []
        for offered in batch:
            try:
                queries.append(convert.query_of(pb.RecommendRequest.FromString(offered[2])))
                parsed.append(offered)
            except Exception:
                self._count(FAILED, 1)
        answers = self.scorer.recommender.recommend_many(queries) if queries else []
        took = time.perf_counter() - started
        log_answer = self.scorer.recommendations.answered
        for (ts, request_id, request), answer in zip(parsed, answers, strict=True):
            if not isinstance(answer, Recommendation):
                self._count(FAILED, 1)
                continue
            response = convert.recommendation_msg(answer).SerializeToString()
            log_answer(request, response, request_id, took, SHADOW_ARM, ts)
            self._count(SCORED, 1)

    def _count(self, counter: int, n: int) -> None:
        """``n`` requests in hand scored or failed: counted, and no longer in hand."""
        self.counters[counter] += n
        self.state[HOLDING] = max(0, self.state[HOLDING] - n)


def _lower_priority(nice: int) -> None:
    try:
        os.nice(nice)
    except OSError as exc:  # not allowed here: it scores at the server's priority
        log.warning("shadow: could not lower its priority (%s)", exc)

"""Recommend requests that arrive while the workers are busy wait together and are answered
as one batch (one graph round trip, one output-layer pass, one top-K call: see
``Recommender.recommend_many``), so the cost of a request falls as load rises instead of the
queue growing.

A waiting request that could no longer be answered before its deadline (one batch's expected
time before it, or when a worker takes it up) gets RESOURCE_EXHAUSTED at once instead of
running out its deadline in the queue."""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import Executor
from dataclasses import dataclass

from prometheus_client import Histogram

from protos import graphrec_pb2 as pb
from serving import convert
from serving.admission import Admission
from serving.recommender import Recommender
from serving.status import parse
from serving.types import BadRequest, NotReady

Answer = bytes | Exception


@dataclass
class WaitingRecommend:
    """A Recommend request waiting for its batch."""

    raw: bytes
    deadline: float | None  # the caller's, on the monotonic clock (the event loop's time)
    future: asyncio.Future[bytes]  # the answer, set on the event loop
    timer: asyncio.TimerHandle | None = None  # sheds it if it is still waiting too late

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now > self.deadline

    def too_late(self, now: float, batch_s: float) -> bool:
        """Would a batch taking ``batch_s`` started ``now`` end after the deadline?"""
        return self.deadline is not None and now + batch_s > self.deadline


class RecommendBatcher:
    """Queues Recommend requests on the event loop; each idle worker takes up to
    ``max_batch`` of them at a time. Request expiry is checked before the work and again
    when the answer is ready: an answer is never sent after the caller's deadline."""

    def __init__(
        self,
        recommender: Recommender,
        pool: Executor,
        workers: int,
        max_batch: int,
        sizes: Histogram,
        admission: Admission,
    ) -> None:
        self.recommender = recommender
        self._pool = pool
        self._workers = workers
        self._max_batch = max(1, max_batch)
        self._sizes = sizes
        self._admission = admission
        self._waiting: list[WaitingRecommend] = []
        self._running = 0  # batches on the workers

    async def answer(self, raw: bytes, remaining: float | None) -> bytes:
        """Queue a serialized RecommendRequest for the next batch; its serialized answer."""
        loop = asyncio.get_running_loop()
        deadline = None if remaining is None else loop.time() + remaining
        waiting = WaitingRecommend(raw, deadline, loop.create_future())
        if deadline is not None:
            shed_at = deadline - self._admission.batch_s(self._max_batch)
            waiting.timer = loop.call_at(shed_at, self._shed_if_waiting, waiting)
        self._waiting.append(waiting)
        self._start(loop)
        try:
            return await waiting.future
        finally:
            if waiting.timer is not None:
                waiting.timer.cancel()

    def _shed_if_waiting(self, waiting: WaitingRecommend) -> None:
        """On the event loop, a batch's time before the deadline: still waiting is too late."""
        if not waiting.future.done() and waiting in self._waiting:
            self._waiting.remove(waiting)
            waiting.future.set_exception(self._admission.late())

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the event loop: hand waiting requests to every idle worker, a batch each."""
        while self._waiting and self._running < self._workers:
            size = self._max_batch
            batch = [w for w in self._waiting[:size] if not w.future.done()]  # drop cancelled
            del self._waiting[:size]
            now, batch_s = loop.time(), self._admission.batch_s(len(batch))
            for late in [w for w in batch if w.too_late(now, batch_s)]:
                batch.remove(late)
                late.future.set_exception(self._admission.late())
            if not batch:
                continue
            self._running += 1
            self._sizes.observe(len(batch))
            done = loop.run_in_executor(self._pool, self._work, batch)
            done.add_done_callback(functools.partial(self._done, loop, batch))

    def _done(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[WaitingRecommend],
        done: asyncio.Future[list[Answer]],
    ) -> None:
        self._running -= 1
        error = NotReady("the server is stopping") if done.cancelled() else done.exception()
        answers: list[bytes | BaseException] = (
            [error] * len(batch) if error is not None else list(done.result())
        )
        now = time.monotonic()
        for waiting, answer in zip(batch, answers, strict=True):
            if waiting.future.done():  # the caller gave up (deadline, cancel)
                continue
            if waiting.expired(now):
                answer = TimeoutError()  # ready after the deadline: never answer late
            if isinstance(answer, BaseException):
                waiting.future.set_exception(answer)
            else:
                waiting.future.set_result(answer)
        self._start(loop)

    def _work(self, batch: list[WaitingRecommend]) -> list[Answer]:
        """On a worker: parse, answer every live request of the batch together, serialize
        (the event loop only moves bytes)."""
        started = time.perf_counter()
        now = time.monotonic()
        answers: list[Answer] = [TimeoutError()] * len(batch)
        queries, slots = [], []
        for slot, waiting in enumerate(batch):
            if waiting.expired(now):
                continue  # expired in the queue: TimeoutError
            try:
                queries.append(convert.query_of(parse(pb.RecommendRequest, waiting.raw)))
                slots.append(slot)
            except BadRequest as exc:
                answers[slot] = exc
        if queries:
            for slot, answer in zip(slots, self.recommender.recommend_many(queries), strict=True):
                answers[slot] = (
                    answer
                    if isinstance(answer, Exception)
                    else convert.recommendation_msg(answer).SerializeToString()
                )
        self._admission.observe_service(time.perf_counter() - started, len(batch))
        return answers

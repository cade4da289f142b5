"""The gRPC servicer: bytes → proto → domain → ``Recommender`` → proto → bytes.

Requests arrive as bytes and are parsed on a worker, so a request that is not a valid
message gets INVALID_ARGUMENT rather than the framework's INTERNAL. Each request is admitted
on the event loop (``Admission``), runs on the worker pool within the caller's deadline, and
Recommend requests go through the ``RecommendBatcher``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc
from prometheus_client import Histogram

from protos import graphrec_pb2 as pb
from serving import convert
from serving.admission import Admission
from serving.batching import RecommendBatcher
from serving.recommender import Recommender
from serving.status import Failure, failure_of, parse

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Recommender"].full_name
R = TypeVar("R")
Endpoint = Callable[[bytes, grpc.aio.ServicerContext], Coroutine[Any, Any, bytes]]


class RecommenderServicer:
    """The Recommender service's three methods over the core, admission and batching."""

    def __init__(
        self,
        recommender: Recommender,
        admission: Admission,
        batcher: RecommendBatcher,
        pool: Executor,
        latency: Histogram,
    ) -> None:
        self.recommender = recommender
        self.admission = admission
        self._batcher = batcher
        self._pool = pool
        self._latency = latency

    def handler(self) -> grpc.GenericRpcHandler:
        """The Recommender service's methods for ``server.add_generic_rpc_handlers``."""
        methods: dict[str, Endpoint] = {
            "Recommend": self._recommend,
            "ScoreItems": self._endpoint("ScoreItems", self._score),
            "Explain": self._endpoint("Explain", self._explain),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                name: grpc.unary_unary_rpc_method_handler(endpoint)  # bytes in, bytes out
                for name, endpoint in methods.items()
            },
        )

    def _score(self, raw: bytes) -> bytes:
        subject, ids = convert.score_request_of(parse(pb.ScoreItemsRequest, raw))
        return convert.scores_msg(self.recommender.score_items(subject, ids)).SerializeToString()

    def _explain(self, raw: bytes) -> bytes:
        subject, item, max_paths = convert.explain_request_of(parse(pb.ExplainRequest, raw))
        explanation = self.recommender.explain(subject, item, max_paths)
        return convert.explanation_msg(explanation).SerializeToString()

    async def _recommend(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async def batched() -> bytes:
            try:
                return await self._batcher.answer(raw, _remaining(context))
            except Exception as exc:
                raise failure_of(exc) from None

        return await self._handle("Recommend", context, batched)

    def _endpoint(self, method: str, work: Callable[[bytes], bytes]) -> Endpoint:
        async def endpoint(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self._handle(method, context, lambda: self._run(work, raw, context))

        return endpoint

    async def _handle(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        run: Callable[[], Coroutine[Any, Any, R]],
    ) -> R:
        """Admit, run, count in flight, record latency by status; failures abort the call."""
        started = time.perf_counter()
        try:
            sent = dict(context.invocation_metadata() or ()).get("authorization", "")
            self.admission.admit(sent, context.time_remaining())
            self.admission.inflight += 1
            try:
                result = await run()
            finally:
                self.admission.inflight -= 1
        except Failure as failure:
            if context.done():  # the caller cancelled or its deadline passed: no one to tell
                self._latency.labels(method, "CANCELLED").observe(time.perf_counter() - started)
                raise asyncio.CancelledError from None  # gRPC's quiet path (a debug line)
            self._latency.labels(method, failure.code.name).observe(time.perf_counter() - started)
            await context.abort(failure.code, failure.message)
            raise  # not reached: abort raises
        self._latency.labels(method, "OK").observe(time.perf_counter() - started)
        return result

    async def _run(
        self, work: Callable[[bytes], R], raw: bytes, context: grpc.aio.ServicerContext
    ) -> R:
        """``work(raw)`` on the pool within the caller's deadline."""
        remaining = _remaining(context)
        start_by = None if remaining is None else time.monotonic() + remaining

        def timed() -> R:
            if start_by is not None and time.monotonic() > start_by:
                raise TimeoutError  # expired in the queue: do not spend a worker on it
            started = time.perf_counter()
            try:
                return work(raw)
            finally:
                self.admission.observe_service(time.perf_counter() - started, 1)

        future = asyncio.get_running_loop().run_in_executor(self._pool, timed)
        try:
            return await asyncio.wait_for(future, remaining)
        except Exception as exc:
            raise failure_of(exc) from None


def _remaining(context: grpc.aio.ServicerContext) -> float | None:
    remaining: float | None = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before start")
    return remaining

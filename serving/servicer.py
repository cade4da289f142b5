"""The gRPC servicer: bytes → proto → domain → ``Recommender`` → proto → bytes.

Requests arrive as bytes and are parsed on a worker, so a request that is not a valid
message gets INVALID_ARGUMENT rather than the framework's INTERNAL. Each request is admitted
on the event loop (``Admission``), runs on the worker pool within the caller's deadline (or is
shed with RESOURCE_EXHAUSTED when it would not make it), and Recommend requests go through
the ``RecommendBatcher``. An answered Recommend request goes to the recommendation log with
its A/B arm (``serving.abtest``) and, with a shadow version, to its queue (``serving.shadow``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, TypeVar, cast

import grpc
from prometheus_client import Histogram

from protos import graphrec_pb2 as pb
from serving import convert
from serving.abtest import ABSplit
from serving.admission import Admission
from serving.batching import RecommendBatcher
from serving.logrecord import PRIMARY_ARM
from serving.reclog import REQUEST_ID_HEADER, RecommendationLog, request_id
from serving.recommender import Recommender
from serving.shadow import Shadow
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
        recommendations: RecommendationLog | None = None,
    ) -> None:
        self.recommender = recommender
        self.recommendations = recommendations  # every Recommend answer goes there
        self.split: ABSplit | None = None  # serve --ab: names the arm of each logged answer
        self.shadow: Shadow | None = None  # serve --shadow: scores each logged request again
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

        started = time.perf_counter()
        answer = await self._handle("Recommend", context, batched)
        if self.recommendations is not None:  # the id goes back in the trailing metadata
            rid = request_id(context.invocation_metadata())
            arm = PRIMARY_ARM if self.split is None else self.split.arm_of_request(raw)
            self.recommendations.answered(raw, answer, rid, time.perf_counter() - started, arm)
            context.set_trailing_metadata(((REQUEST_ID_HEADER, rid),))
            if self.shadow is not None:
                self.shadow.offer(raw, rid)
        return answer

    def _endpoint(self, method: str, work: Callable[[bytes], bytes]) -> Endpoint:
        async def endpoint(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self._handle(
                method, context, lambda: self._run(method, work, raw, context)
            )

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
            self.admission.admit(sent, context.time_remaining(), method)
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
        self, method: str, work: Callable[[bytes], R], raw: bytes, context: grpc.aio.ServicerContext
    ) -> R:
        """``work(raw)`` on the pool within the caller's deadline; shed with
        RESOURCE_EXHAUSTED if it is still waiting for a worker when only its expected time is
        left, or if a worker takes it up too late."""
        remaining = _remaining(context)
        expected = self.admission.call_s(method)
        deadline = None if remaining is None else time.monotonic() + remaining
        taken = threading.Lock()  # held by whichever comes first: a worker, or the shedding

        def timed() -> R | None:
            if not taken.acquire(blocking=False):
                return None  # shed while it waited: no one wants the answer
            if deadline is not None and time.monotonic() + self.admission.call_s(method) > deadline:
                raise self.admission.late()
            started = time.perf_counter()
            try:
                return work(raw)
            finally:
                self.admission.observe_call(method, time.perf_counter() - started)

        future = asyncio.get_running_loop().run_in_executor(self._pool, timed)
        try:
            if deadline is not None:
                shed_in = deadline - expected - time.monotonic()
                try:
                    return cast(
                        R, await asyncio.wait_for(asyncio.shield(future), max(0.0, shed_in))
                    )
                except TimeoutError:
                    if taken.acquire(blocking=False):  # still waiting for a worker
                        raise self.admission.late() from None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            return cast(R, await asyncio.wait_for(future, left))
        except Exception as exc:
            raise failure_of(exc) from None


def _remaining(context: grpc.aio.ServicerContext) -> float | None:
    remaining: float | None = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before start")
    return remaining

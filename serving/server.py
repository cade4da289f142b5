"""The gRPC server: a thin asyncio servicer over ``Recommender``, plus health and reflection.

Requests are admitted on the event loop: past ``max_inflight`` requests in progress, or when
the queue ahead would outlast the caller's deadline, the server answers RESOURCE_EXHAUSTED at
once (load shedding) instead of queueing work that cannot finish in time. Admitted
work runs on a thread pool within the caller's deadline. Recommend requests that arrive while
the workers are busy wait together and are answered as one batch (one graph round trip, one
output-layer pass, one top-K call: see ``Recommender.recommend_many``), so the cost of a
request falls as load rises instead of the queue growing. Caller mistakes map to
INVALID_ARGUMENT / NOT_FOUND, never INTERNAL.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from graphstore import GraphStoreError, InvalidInput
from protos import graphrec_pb2 as pb
from serving import convert
from serving.metrics import Metrics
from serving.recommender import Recommender
from serving.types import BadRequest, NotFound, NotReady

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Recommender"].full_name
R = TypeVar("R")
PENDING_CALLS_LIMIT = 10_000  # ~5 s of calls at 2k/s; a pending call holds at most its headers
# and one flow-control window
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class ServerConfig:
    address: str = "127.0.0.1:50051"  # host:port; port 0 picks a free one
    workers: int = 1  # threads running the model work, a batch at a time; on two cores a
    # second one takes the GIL from the event loop (which must keep shedding) more than it adds
    max_batch: int = 32  # Recommend requests answered together by one worker
    max_inflight: int = 64  # requests in progress; beyond → RESOURCE_EXHAUSTED
    max_message_bytes: int = 1 << 20  # largest request accepted
    token: str = ""  # when set, callers send "authorization: Bearer <token>"
    tls_cert: Path | None = None  # PEM certificate chain; with tls_key, serve TLS only
    tls_key: Path | None = None
    metrics_port: int = 0  # Prometheus /metrics on 127.0.0.1:<port>; 0 = off


class _Failure(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class _Waiting:
    """A Recommend request waiting for its batch."""

    raw: bytes
    start_by: float | None  # monotonic time after which it is not worth starting
    future: asyncio.Future[bytes]  # the answer, set on the event loop


def _parse(request_type: type[M], raw: bytes) -> M:
    try:
        return request_type.FromString(raw)
    except DecodeError as exc:
        raise BadRequest(f"not a valid {request_type.__name__}: {exc}") from None


def _failure_of(exc: Exception) -> _Failure:
    """The status a failed request gets: caller mistakes are never INTERNAL."""
    if isinstance(exc, _Failure):
        return exc
    if isinstance(exc, TimeoutError):
        return _Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    if isinstance(exc, BadRequest | InvalidInput):
        return _Failure(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, NotFound):
        return _Failure(grpc.StatusCode.NOT_FOUND, str(exc.args[0]))
    if isinstance(exc, NotReady):
        return _Failure(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, GraphStoreError | OSError):
        log.warning("graph store unavailable: %s", exc)
        return _Failure(grpc.StatusCode.UNAVAILABLE, f"graph store unavailable: {exc}")
    if type(exc).__name__ in ("ServiceUnavailable", "SessionExpired"):  # neo4j driver
        return _Failure(grpc.StatusCode.UNAVAILABLE, f"graph store: {exc}")
    log.error("request failed", exc_info=exc)
    return _Failure(grpc.StatusCode.INTERNAL, "internal error; see the server log")


class RecommenderServicer:
    """Bytes → proto → domain, run on the pool within the deadline, domain → proto;
    Recommend in batches of whatever waits when a worker comes free.

    Requests arrive as bytes and are parsed here, so a request that is not a valid message
    gets INVALID_ARGUMENT rather than the framework's INTERNAL.
    """

    def __init__(self, recommender: Recommender, config: ServerConfig, metrics: Metrics) -> None:
        self.recommender = recommender
        self.config = config
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="recommend")
        self._inflight = 0
        self._service_s = 0.005  # running estimate of one request's work, for admission
        self._waiting: list[_Waiting] = []  # Recommend requests for the next batch
        self._batches = 0  # batches on the workers
        self._token = f"Bearer {config.token}".encode() if config.token else None

    def handler(self) -> grpc.GenericRpcHandler:
        """The Recommender service's methods for ``server.add_generic_rpc_handlers``."""
        rec = self.recommender

        def score(msg: pb.ScoreItemsRequest) -> pb.ScoreItemsResponse:
            subject, ids = convert.score_request_of(msg)
            return convert.scores_msg(rec.score_items(subject, ids))

        def explain(msg: pb.ExplainRequest) -> pb.ExplainResponse:
            subject, item, max_paths = convert.explain_request_of(msg)
            return convert.explanation_msg(rec.explain(subject, item, max_paths))

        async def recommend(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self._handle("Recommend", context, lambda: self._batched(raw, context))

        methods: dict[str, Callable[[bytes, grpc.aio.ServicerContext], Any]] = {
            "Recommend": recommend,
            "ScoreItems": self._endpoint("ScoreItems", pb.ScoreItemsRequest, score),
            "Explain": self._endpoint("Explain", pb.ExplainRequest, explain),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                name: grpc.unary_unary_rpc_method_handler(endpoint)  # bytes in, bytes out
                for name, endpoint in methods.items()
            },
        )

    def _endpoint(
        self, method: str, request_type: type[Message], work: Callable[[Any], Message]
    ) -> Callable[[bytes, grpc.aio.ServicerContext], Any]:
        async def endpoint(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            def parse_and_work() -> bytes:
                return work(_parse(request_type, raw)).SerializeToString()

            return await self._handle(method, context, lambda: self._run(parse_and_work, context))

        return endpoint

    async def _handle(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        run: Callable[[], Coroutine[Any, Any, R]],
    ) -> R:
        started = time.perf_counter()
        try:
            self._admit(context)
            self._inflight += 1
            try:
                result = await run()
            finally:
                self._inflight -= 1
        except _Failure as failure:
            self.metrics.latency.labels(method, failure.code.name).observe(
                time.perf_counter() - started
            )
            await context.abort(failure.code, failure.message)
            raise  # not reached: abort raises
        self.metrics.latency.labels(method, "OK").observe(time.perf_counter() - started)
        return result

    def _admit(self, context: grpc.aio.ServicerContext) -> None:
        if self._token is not None:
            sent = dict(context.invocation_metadata() or ()).get("authorization", "")
            value = sent.encode() if isinstance(sent, str) else sent
            if not hmac.compare_digest(value, self._token):
                raise _Failure(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        busy = self._inflight >= self.config.max_inflight
        remaining = context.time_remaining()
        queued = self._inflight // self.config.workers  # requests ahead of a free worker
        if not busy and queued and remaining is not None:
            # a request that would only wait out its deadline in the queue is refused now
            busy = (queued + 1) * self._service_s > remaining
        if busy:
            self.metrics.shed.inc()
            raise _Failure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"server busy ({self._inflight} requests in progress); retry with back-off",
            )

    async def _run(self, work: Callable[[], R], context: grpc.aio.ServicerContext) -> R:
        remaining = self._remaining(context)
        start_by = None if remaining is None else time.monotonic() + remaining

        def timed() -> R:
            if start_by is not None and time.monotonic() > start_by:
                raise TimeoutError  # expired in the queue: do not spend a worker on it
            started = time.perf_counter()
            try:
                return work()
            finally:
                self._observe_service(time.perf_counter() - started, 1)

        future = asyncio.get_running_loop().run_in_executor(self._pool, timed)
        try:
            return await asyncio.wait_for(future, remaining)
        except Exception as exc:
            raise _failure_of(exc) from None

    async def _batched(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Queue a Recommend for the next batch; a free worker takes everything waiting."""
        remaining = self._remaining(context)
        loop = asyncio.get_running_loop()
        start_by = None if remaining is None else time.monotonic() + remaining
        waiting = _Waiting(raw, start_by, loop.create_future())
        self._waiting.append(waiting)
        self._start_batches(loop)
        try:
            # no timer of our own: gRPC ends the call at its deadline (cancelling this wait),
            # a batch skips requests that expired while they waited, and an answer ready
            # after the deadline is sent as DEADLINE_EXCEEDED
            return await waiting.future
        except Exception as exc:
            raise _failure_of(exc) from None

    def _start_batches(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the event loop: hand waiting requests to every idle worker, a batch each."""
        while self._waiting and self._batches < self.config.workers:
            size = max(1, self.config.max_batch)
            batch = [w for w in self._waiting[:size] if not w.future.done()]  # drop cancelled
            del self._waiting[:size]
            if not batch:
                continue
            self._batches += 1
            self.metrics.batch.observe(len(batch))
            done = loop.run_in_executor(self._pool, self._recommend_batch, batch)
            done.add_done_callback(functools.partial(self._batch_done, loop, batch))

    def _batch_done(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[_Waiting],
        done: asyncio.Future[list[bytes | Exception]],
    ) -> None:
        self._batches -= 1
        error = NotReady("the server is stopping") if done.cancelled() else done.exception()
        answers: list[bytes | BaseException] = (
            [error] * len(batch) if error is not None else list(done.result())
        )
        now = time.monotonic()
        for waiting, answer in zip(batch, answers, strict=True):
            if waiting.future.done():  # the caller gave up (deadline, cancel)
                continue
            if waiting.start_by is not None and now > waiting.start_by:
                answer = TimeoutError()  # ready after the deadline: never answer late
            if isinstance(answer, BaseException):
                waiting.future.set_exception(answer)
            else:
                waiting.future.set_result(answer)
        self._start_batches(loop)

    def _recommend_batch(self, batch: list[_Waiting]) -> list[bytes | Exception]:
        """On a worker: parse, answer every live request of the batch together, serialize
        (the event loop only moves bytes)."""
        started = time.perf_counter()
        now = time.monotonic()
        answers: list[bytes | Exception] = [TimeoutError()] * len(batch)
        queries, slots = [], []
        for slot, waiting in enumerate(batch):
            if waiting.start_by is not None and now > waiting.start_by:
                continue  # expired in the queue: TimeoutError
            try:
                queries.append(convert.query_of(_parse(pb.RecommendRequest, waiting.raw)))
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
        self._observe_service(time.perf_counter() - started, len(batch))
        return answers

    @staticmethod
    def _remaining(context: grpc.aio.ServicerContext) -> float | None:
        remaining: float | None = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise _Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before start")
        return remaining

    def _observe_service(self, seconds: float, requests: int) -> None:
        """Moving average of the worker time one request takes (in a batch: its share)."""
        self._service_s += 0.05 * (seconds / max(1, requests) - self._service_s)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class RecommenderServer:
    """Runs the asyncio gRPC server on a thread of its own, so callers stay synchronous."""

    def __init__(self, recommender: Recommender, config: ServerConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.servicer = RecommenderServicer(recommender, config, metrics)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc", daemon=True)
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]

    def start(self) -> int:
        """Bind, start serving and return the port."""
        self._thread.start()
        self.port = self._call(self._start())
        if self.config.metrics_port:
            self.metrics.serve_http(self.config.metrics_port)
        return self.port

    def set_serving(self, ok: bool) -> None:
        """Health status of the Recommender service (SERVING once a model is loaded)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ok
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            self._call(self._health.set(name, status))

    def stop(self, grace_s: float = 5.0) -> None:
        """Finish requests in flight (up to ``grace_s``), then close the loop and the pool."""
        if self._server is not None:
            self._call(self._server.stop(grace_s))
            self._server = None
        if self._thread.is_alive():
            self._call(self._loop.shutdown_asyncgens())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=grace_s + 5)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
        self.servicer.close()

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C in the CLI)."""
        self._thread.join()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start(self) -> int:
        limit = self.config.max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", 16 * limit),
                # Calls gRPC has accepted but the event loop has not taken up yet: past 1,000
                # of them gRPC's own backlog guard cancels calls at random (CANCELLED, a code
                # callers cannot act on; seen at twice saturation). The loop sheds cheaply, so
                # let them wait for it and get RESOURCE_EXHAUSTED or an answer.
                ("grpc.server.max_pending_requests", PENDING_CALLS_LIMIT),
                ("grpc.server.max_pending_requests_hard_limit", PENDING_CALLS_LIMIT),
            ]
        )
        server.add_generic_rpc_handlers((self.servicer.handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        if self.config.tls_cert and self.config.tls_key:
            creds = grpc.ssl_server_credentials(
                [(self.config.tls_key.read_bytes(), self.config.tls_cert.read_bytes())]
            )
            port = server.add_secure_port(self.config.address, creds)
        else:
            port = server.add_insecure_port(self.config.address)
        if port == 0:
            raise OSError(f"cannot listen on {self.config.address}")
        await server.start()
        self._server = server
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        return port

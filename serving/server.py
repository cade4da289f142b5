"""The gRPC server's lifecycle: a ``grpc.aio`` server on a thread of its own serving the
Recommender servicer, plus the shipped health service and reflection (``serving.reflection``).

Caller mistakes map to INVALID_ARGUMENT / NOT_FOUND, never INTERNAL (``serving.status``);
admission control and batching are ``serving.admission`` and ``serving.batching``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from serving.admission import Admission
from serving.batching import RecommendBatcher
from serving.metrics import Metrics
from serving.reclog import RecommendationLog
from serving.recommender import Recommender
from serving.reflection import enable_reflection
from serving.servicer import SERVICE_NAME, RecommenderServicer

__all__ = ["PID_HEADER", "REPLICA_HEADER", "SERVICE_NAME", "RecommenderServer", "ServerConfig"]

PENDING_CALLS_LIMIT = 10_000  # ~5 s of calls at 2k/s; a pending call holds at most its headers
# and one flow-control window
REPLICA_HEADER = "graphrec-replica"  # trailing metadata of a replica's answers: its index
PID_HEADER = "graphrec-pid"  # ... and its process id


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
    metrics_port: int = 0  # Prometheus /metrics on <metrics_host>:<port>; 0 = off
    metrics_host: str = "127.0.0.1"
    reuse_port: bool = False  # SO_REUSEPORT: other processes may listen on the same port
    # (replicas); off, a port something else listens on is refused
    replica: int | None = None  # a replica's index: named with its pid in every answer's
    # trailing metadata (REPLICA_HEADER, PID_HEADER)


def build_servicer(
    recommender: Recommender,
    config: ServerConfig,
    metrics: Metrics,
    pool: ThreadPoolExecutor,
    recommendations: RecommendationLog | None = None,
) -> RecommenderServicer:
    """The servicer with its admission control and Recommend batching, per ``config``, and
    the log its Recommend answers go to, if any."""
    admission = Admission(config.token, config.max_inflight, config.workers, metrics.shed)
    batcher = RecommendBatcher(
        recommender,
        pool,
        config.workers,
        config.max_batch,
        metrics.batch,
        admission,
    )
    return RecommenderServicer(
        recommender, admission, batcher, pool, metrics.latency, recommendations
    )


class RecommenderServer:
    """Runs the asyncio gRPC server on a thread of its own, so callers stay synchronous."""

    def __init__(
        self,
        recommender: Recommender,
        config: ServerConfig,
        metrics: Metrics,
        recommendations: RecommendationLog | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="recommend")
        self.servicer = build_servicer(recommender, config, metrics, self._pool, recommendations)
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
            self.metrics.serve_http(self.config.metrics_port, self.config.metrics_host)
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

    def set_health(self, service: str, ok: bool) -> None:
        """Health status of another service name (a background loop's, say)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ok
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        self._call(self._health.set(service, status))

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
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start(self) -> int:
        limit = self.config.max_message_bytes
        server = grpc.aio.server(
            interceptors=None if self.config.replica is None else (ServedBy(self.config.replica),),
            options=[
                # grpcio's default is 1 on Linux: a second server would share the port silently
                ("grpc.so_reuseport", int(self.config.reuse_port)),
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", 16 * limit),
                # Calls gRPC has accepted but the event loop has not taken up yet: past 1,000
                # of them gRPC's own backlog guard cancels calls at random (CANCELLED, a code
                # callers cannot act on; seen at twice saturation). The loop sheds cheaply, so
                # let them wait for it and get RESOURCE_EXHAUSTED or an answer.
                ("grpc.server.max_pending_requests", PENDING_CALLS_LIMIT),
                ("grpc.server.max_pending_requests_hard_limit", PENDING_CALLS_LIMIT),
            ],
        )
        server.add_generic_rpc_handlers((self.servicer.handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        enable_reflection(
            server, (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
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


class ServedBy(grpc.aio.ServerInterceptor):
    """Names the replica (its index and pid) in the trailing metadata of every unary answer,
    after whatever the method itself put there."""

    def __init__(self, replica: int) -> None:
        self.metadata = ((REPLICA_HEADER, str(replica)), (PID_HEADER, str(os.getpid())))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner: Callable[..., Any] = handler.unary_unary  # a coroutine function on aio servers
        metadata = self.metadata

        async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                result = inner(request, context)
                return await result if inspect.isawaitable(result) else result
            finally:
                context.set_trailing_metadata((*(context.trailing_metadata() or ()), *metadata))

        return grpc.unary_unary_rpc_method_handler(
            answer, handler.request_deserializer, handler.response_serializer
        )

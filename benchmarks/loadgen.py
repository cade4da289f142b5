"""The load side of ``graphrec bench serve``: a bare gRPC echo server (the baseline) and the
clients, which run in a child Python process so their work never takes the server's GIL.

Everything talks to 127.0.0.1 only, and every run is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import pickle
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import numpy as np

ECHO_METHOD = "/benchmarks.Echo/Echo"


# ----------------------------------------------------------------------------- echo baseline
class EchoServer:
    """A bare ``grpc.aio`` echo server on a thread and event loop of its own (like the service)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="echo", daemon=True)
        self._server: grpc.aio.Server | None = None

    def start(self) -> int:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    async def _start(self) -> int:
        async def echo(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return raw

        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "benchmarks.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
                ),
            )
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        return port

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(1.0), self._loop).result(timeout=10)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


# ------------------------------------------------------------------------------------ clients
class Clients:
    """The load generator: one child Python process, driven by pickled calls over its pipes."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from benchmarks.loadgen import client_main; client_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def call(self, name: str, **kwargs: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        pickle.dump((name, kwargs), self._proc.stdin)
        self._proc.stdin.flush()
        status, value = pickle.load(self._proc.stdout)
        if status != "ok":
            raise RuntimeError(f"load generator failed: {value}")
        result: dict[str, Any] = value
        return result

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def client_main() -> None:
    """Child process: run the calls read from stdin, answer each on stdout, exit at EOF."""
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers on the pipe
    runs: dict[str, Callable[..., dict[str, Any]]] = {
        "closed_loop": closed_loop,
        "open_loop": open_loop,
    }
    while True:
        try:
            name, kwargs = pickle.load(requests)
        except EOFError:
            return
        try:
            answer: tuple[str, object] = ("ok", runs[name](**kwargs))
        except Exception as exc:  # reported to the parent, which raises
            answer = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(answer, answers)
        answers.flush()


def closed_loop(
    target: str,
    method: str,
    payloads: Sequence[bytes],
    concurrency: int,
    seconds: float,
    warmup_s: float = 0.5,
    timeout_s: float = 10.0,
    connections: int = 1,
) -> dict[str, Any]:
    """``concurrency`` threads, each sending the next request as soon as the last one returns,
    for ``warmup_s`` (not recorded) and then ``seconds``, over ``connections`` connections
    (at most one a thread). Latencies are of OK calls."""
    _quiet_gc()
    codes: Counter[str] = Counter()
    lock = threading.Lock()
    per_thread: list[list[float]] = [[] for _ in range(concurrency)]
    with _Connections(
        target, method, min(concurrency, connections), timeout_s, payloads[0]
    ) as calls:
        begin = time.perf_counter() + warmup_s
        end = begin + seconds
        barrier = threading.Barrier(concurrency)

        def run(t: int) -> None:
            mine, seen = per_thread[t], Counter[str]()
            n = t * len(payloads) // concurrency
            barrier.wait()
            while True:
                t0 = time.perf_counter()
                if t0 >= end:
                    break
                try:
                    calls[t % len(calls)](payloads[n % len(payloads)], timeout=timeout_s)
                    code = "OK"
                except grpc.RpcError as exc:
                    code = exc.code().name
                t1 = time.perf_counter()
                n += 1
                if t0 >= begin:
                    seen[code] += 1
                    if code == "OK":
                        mine.append(t1 - t0)
            with lock:
                codes.update(seen)

        threads = [threading.Thread(target=run, args=(t,)) for t in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=warmup_s + seconds + timeout_s + 30)
    latencies = np.array([x for xs in per_thread for x in xs], np.float64)
    return {"latencies": latencies, "codes": codes, "elapsed": seconds}


def open_loop(
    target: str,
    method: str,
    payloads: Sequence[bytes],
    rate: float,
    seconds: float,
    timeout_s: float = 5.0,
    connections: int = 1,
) -> dict[str, Any]:
    """Fire ``rate * seconds`` requests on a fixed schedule (not waiting for answers), in turn
    over ``connections`` connections, then wait for the answers (at most ``timeout_s`` past the
    last send) and count their status codes."""
    total = max(1, int(rate * seconds))
    codes: Counter[str] = Counter()
    ok: list[float] = []
    shed: list[float] = []
    last_done = [0.0]
    lock = threading.Lock()
    answered = threading.Event()
    with _Connections(target, method, connections, timeout_s, payloads[0]) as calls:
        start = time.perf_counter()

        def record(sent: float, future: Any) -> None:  # a grpc Call and Future in one
            done = time.perf_counter()
            code = future.code().name
            with lock:
                codes[code] += 1
                if sum(codes.values()) == total:
                    answered.set()
                last_done[0] = max(last_done[0], done - start)
                if code == "OK":
                    ok.append(done - sent)
                elif code == "RESOURCE_EXHAUSTED":
                    shed.append(done - sent)

        futures = []
        for n in range(total):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            future = calls[n % len(calls)].future(payloads[n % len(payloads)], timeout=timeout_s)
            future.add_done_callback(functools.partial(record, sent))
            futures.append(future)
        send_s = time.perf_counter() - start
        if not answered.wait(timeout_s + 5.0):
            for future in futures:
                future.cancel()  # bounded: anything still open is given up (CANCELLED)
            answered.wait(1.0)  # the callbacks of cancelled calls
    with lock:
        return {
            "codes": Counter(codes),
            "sent": total,
            "rate": rate,
            "seconds": seconds,
            "send_s": send_s,
            "last_done": last_done[0],
            "ok_latencies": np.array(ok, np.float64),
            "shed_latencies": np.array(shed, np.float64),
        }


class _Connections:
    """``count`` channels to ``target``, each its own connection (the kernel spreads
    connections, not calls, across server processes sharing a port), connected before the
    clock starts: the callables of ``method`` on them."""

    def __init__(
        self, target: str, method: str, count: int, timeout_s: float, payload: bytes
    ) -> None:
        self.channels = [
            grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(max(1, count))
        ]
        self.calls = [c.unary_unary(method, None, None) for c in self.channels]
        self.timeout_s, self.payload = timeout_s, payload

    def __enter__(self) -> list[grpc.UnaryUnaryMultiCallable]:
        for call in self.calls:
            call(self.payload, timeout=self.timeout_s)  # connect before the clock
        return self.calls

    def __exit__(self, *_: object) -> None:
        for channel in self.channels:
            channel.close()


def _quiet_gc() -> None:
    """Move what the client process holds out of the collector's reach, so a full collection
    over it does not land in a measured latency."""
    gc.collect()
    gc.freeze()

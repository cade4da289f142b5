"""The serve stage of ``graphrec bench pipeline``: ``graphrec serve`` as its own process on
the trained model, a short closed-loop Recommend load at each concurrency beside the bare
gRPC echo server of ``graphrec bench serve`` (``benchmarks.loadgen``: the echo in this
process, the clients in another), then SIGTERM and the process's peak RSS.

The requests are those of ``graphrec bench serve``: known users, and on the embedded store
every other one a fresh three-event session (on Neo4j only users: one store round trip each).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.loadgen import ECHO_METHOD, Clients, EchoServer
from benchmarks.pipeline_procs import Process, Progress, await_serving, graphrec
from benchmarks.serve import _known_users, _payloads
from benchmarks.serve_figures import level_figures
from gnn.datasets import Dataset
from serving.server import SERVICE_NAME

RECOMMEND = f"/{SERVICE_NAME}/Recommend"
WARM_S = 1.0  # unrecorded Recommend load before the timed levels
BASELINE = (
    "grpc.aio echo server (generic unary handler returning the request bytes) in the bench "
    "process; clients in another process, the same request bytes to both"
)


def serve_stage(
    store_url: str,
    models: Path,
    log_url: str,
    dataset: Dataset,
    on_server: bool,
    seconds: float,
    levels: tuple[int, ...],
    work: Path,
    say: Progress,
    timeout_s: float,
) -> dict[str, object]:
    """Serve, load it at each of ``levels`` for ``seconds`` beside the echo, stop it."""
    args = ["--store", store_url, "--models-dir", str(models), "--from", log_url]
    args += ["--address", "127.0.0.1:0", "--metrics-port", "0"]
    say("serve: starting `graphrec serve`")
    serve = Process("serve", graphrec("serve", *args), work, say)
    echo, clients = EchoServer(), None
    try:
        port = await_serving(serve, timeout_s)
        load_s = time.perf_counter() - serve.started
        say(f"serve: on 127.0.0.1:{port} after {load_s:.1f} s")
        clients = Clients()
        users = _known_users(dataset, 1_000)
        payloads = _payloads(dataset, users, 2_000, sessions=not on_server)
        targets = (f"127.0.0.1:{echo.start()}", f"127.0.0.1:{port}")
        measured = _levels(clients, targets, payloads, seconds, levels, say)
    finally:
        if clients is not None:
            clients.close()
        echo.stop()
        done = serve.stop()
    return {
        "wall_s": round(done.wall_s, 2),
        "ready_s": round(load_s, 2),
        "cpu_s": round(done.cpu_s, 2),  # the process's, on a shared machine's cores
        "peak_rss_mb": round(done.peak_rss_mb, 1),
        "seconds_per_level": seconds,
        "baseline": BASELINE,
        "levels": measured,
        "process": serve.command,
    }


def _levels(
    clients: Clients,
    targets: tuple[str, str],
    payloads: list[bytes],
    seconds: float,
    levels: tuple[int, ...],
    say: Progress,
) -> dict[str, dict[str, Any]]:
    """After an unrecorded warm-up of the service: at each concurrency the echo, then the
    service, ``seconds`` each."""
    echo, service = targets

    def closed_loop(target: str, method: str, concurrency: int, span: float) -> dict[str, Any]:
        return clients.call(
            "closed_loop",
            target=target,
            method=method,
            payloads=payloads,
            concurrency=concurrency,
            seconds=span,
        )

    closed_loop(service, RECOMMEND, max(levels), WARM_S)
    measured: dict[str, dict[str, Any]] = {}
    for concurrency in levels:
        bare = closed_loop(echo, ECHO_METHOD, concurrency, seconds)
        real = closed_loop(service, RECOMMEND, concurrency, seconds)
        measured[str(concurrency)] = figures = level_figures(real, bare)
        say(
            f"serve: c={concurrency} Recommend p50 {figures['p50_ms']} ms, p99 "
            f"{figures['p99_ms']} ms, {figures['rps']} req/s (echo p50 {figures['echo_p50_ms']} ms)"
        )
    return measured

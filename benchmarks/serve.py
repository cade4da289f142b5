"""``graphrec bench serve``: Recommend latency beside a bare gRPC echo server, top-K beside numpy
exact search, and load shedding at twice the saturating load, all measured in one run.

The world (``benchmarks.serve_world``): a synthetic shop (``--items`` catalogue items,
``--events`` interactions) written straight into a fresh embedded store, or with ``--store
neo4j://…`` into that Neo4j once and reused by later runs, and a GNN trained on it briefly
(quality is not what this measures, the serving path is). On Neo4j the requests are for known
users (a request's one store round trip), and the run adds the raw driver running the same
neighbourhood statement, the store's call for users of every degree, ghz from outside, and
freshness with the sink following a log (``benchmarks.serve_neo4j``).

The baseline: a ``grpc.aio`` server with one generic unary handler that returns the request
bytes, on its own thread and event loop, in the same process as the service: the same stack
the service runs on (``serving.server`` is a ``grpc.aio`` server on a thread of its own), minus
the service's work. Both get the same serialized ``RecommendRequest`` payloads.

The clients run in a separate Python process (``benchmarks.loadgen``), so their work does not
take the service's GIL: closed-loop threads with blocking calls at each concurrency level, then an
open-loop schedule of futures at twice the best closed-loop throughput for the overload run,
sent to the echo server too: at high rates the client process and the transport are a limit of
their own on two shared cores, and the echo's answers show where it lies.
Requests and responses travel as bytes on both servers (no client-side protobuf work).
Everything listens on 127.0.0.1 only, and every phase is bounded in count and time.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from benchmarks.loadgen import ECHO_METHOD, Clients, EchoServer
from benchmarks.serve_figures import (
    GOALS,
    goals_met,
    headline,
    level_figures,
    overload_figures,
    topk_figures,
)
from benchmarks.serve_world import World, WorldSpec, build_world

if TYPE_CHECKING:
    from gnn.datasets import Dataset
    from serving.app import Serving
    from serving.engine import Engine

Progress = Callable[[str], None]
WARM_S = 5.0  # the warm-up before the timed levels


def bench_serve(
    items: int = 100_000,
    events: int = 200_000,
    users: int = 20_000,
    seconds: float = 8.0,
    levels: Sequence[int] = (1, 8, 32),
    overload_seconds: float = 10.0,
    workers: int = 1,
    max_inflight: int = 64,
    epochs: int = 2,
    topk_queries: int = 400,
    seed: int = 0,
    progress: Progress | None = None,
    store_url: str | None = None,
    train_events: int | None = None,
    processes: int = 1,
) -> dict[str, object]:
    """Build (or reuse) a world, serve it, measure; returns the figures (``graphrec bench
    serve``)."""
    say = progress or _stderr_progress()
    work = Path(tempfile.mkdtemp(prefix="graphrec-bench-serve-"))
    spec = WorldSpec(items, events, users, epochs, seed, train_events)
    try:
        world = build_world(spec, work, store_url, say)
        try:
            run = _Run(
                seconds, tuple(levels), overload_seconds, workers, max_inflight, work, processes
            )
            return _measure(world, run, topk_queries, say)
        finally:
            world.store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------- measurement
@dataclass(frozen=True)
class _Targets:
    """Where the timed requests go (the service and the echo baseline), and what they carry."""

    serve: str
    echo: str
    recommend: str  # the service's Recommend method path
    payloads: list[bytes]


@dataclass(frozen=True)
class _Run:
    """How long and how hard each phase runs, and where it may write."""

    seconds: float
    levels: tuple[int, ...]
    overload_seconds: float
    workers: int
    max_inflight: int
    work: Path
    processes: int  # server processes on the one port (1: the service in this process)

    @property
    def connections(self) -> int:
        """Client connections a run spreads its calls over (one a thread in closed loops):
        the kernel spreads connections, not calls, across processes sharing a port."""
        return 1 if self.processes == 1 else 32


def _measure(world: World, run: _Run, topk_queries: int, say: Progress) -> dict[str, object]:
    from graphstore.neo4j import Neo4jGraphStore
    from serving.server import SERVICE_NAME

    on_neo4j = isinstance(world.store, Neo4jGraphStore)
    engine, port, load_s, stop_service = _start_service(world, run, say)
    echo = EchoServer()
    clients = Clients()
    try:
        say(f"service on 127.0.0.1:{port} ({engine.table.size:,} items, {load_s:.1f} s to load)")
        users = _known_users(world.dataset, 1_000)
        targets = _Targets(
            serve=f"127.0.0.1:{port}",
            echo=f"127.0.0.1:{echo.start()}",
            recommend=f"/{SERVICE_NAME}/Recommend",
            payloads=_payloads(world.dataset, users, 2_000, sessions=not on_neo4j),
        )
        sample = _sample(targets.serve, targets.recommend, targets.payloads[:100])
        say(f"top-K: {topk_queries} queries, usearch index vs numpy exact")
        topk = topk_figures(engine.table.embeddings, topk_queries)
        measured = _closed_loops(clients, targets, run, say)
        overload = _open_loop(clients, targets, measured, run, say)
        neo4j: dict[str, object] = {}
        if isinstance(world.store, Neo4jGraphStore):
            from benchmarks.serve_neo4j import neo4j_figures

            context = (world.dataset, targets.serve, users, run.levels, run.seconds, run.work)
            neo4j = {"neo4j": neo4j_figures(world.store, *context, measured, say)}
    finally:
        clients.close()
        echo.stop()
        stop_service()
    return {
        "bench": "serve",
        "store": world.store.url,
        "items": len(world.dataset.items),
        "events": len(world.dataset.interactions),
        **world.figures,
        "load_s": round(load_s, 2),
        "seconds_per_level": run.seconds,
        "workers": run.workers,
        "processes": run.processes,
        "connections": run.connections,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "baseline": "grpc.aio echo server (generic unary handler returning the request bytes) "
        "on its own thread and event loop, same process as the service; clients in another "
        "process, bytes in and out on both",
        "request_bytes": round(float(np.mean([len(p) for p in targets.payloads])), 1),
        "sample": sample,
        "levels": measured,
        "topk": topk,
        "overload": overload,
        **neo4j,
        "goals": GOALS,
        "met": goals_met(measured, topk, overload),
        "headline": headline(measured, overload),
    }


def _out_of_the_collectors_sight() -> None:
    """The world's millions of interaction objects live in this process, the service's: frozen,
    or each full collection walks them all in the middle of a level (a served process holds
    no dataset; at 5M events this took the c=1 p99 from 14 to over 100 ms)."""
    gc.collect()
    gc.freeze()


def _start_service(
    world: World, run: _Run, say: Progress
) -> tuple[Engine, int, float, Callable[[], None]]:
    """The service on the world's store and model, in this process or as ``run.processes``
    replicas: (the model it serves, its port, seconds it took to load, how to stop it)."""
    if run.processes > 1:
        from benchmarks.serve_replicas import load_engine, start_replicas

        replicas, port, load_s = start_replicas(
            world, run.processes, run.workers, run.max_inflight, say
        )
        return load_engine(world), port, load_s, replicas.stop
    serving, port, load_s = _start_serving(world, run.workers, run.max_inflight, say)
    engine = serving.registry.current()
    if engine is None:
        serving.stop()
        raise RuntimeError("the service did not load the trained model")
    return engine, port, load_s, serving.stop


def _start_serving(
    world: World, workers: int, max_inflight: int, say: Progress
) -> tuple[Serving, int, float]:
    """The service in this process: (it, its port, seconds it took to load)."""
    from serving.app import Serving
    from serving.server import ServerConfig

    _out_of_the_collectors_sight()
    say(f"loading the model into the service (workers={workers}, max_inflight={max_inflight})")
    started = time.perf_counter()
    serving = Serving(
        world.store,
        world.models,
        config=ServerConfig(address="127.0.0.1:0", workers=workers, max_inflight=max_inflight),
        reload_every_s=3600.0,  # one version for the whole run
    )
    port = serving.start()
    return serving, port, time.perf_counter() - started


def _closed_loops(
    clients: Clients, targets: _Targets, run: _Run, say: Progress
) -> dict[str, dict[str, Any]]:
    """At each concurrency level: the echo server, then the service, ``run.seconds`` each,
    after one unrecorded warm-up of the service at the highest level (a store's server, such
    as Neo4j's JVM, answers its first thousand queries slower than the rest)."""
    seconds, top = run.seconds, max(run.levels)
    warm_s = min(WARM_S, seconds)
    say(f"warm-up: Recommend at concurrency {top} for {warm_s:g} s, not recorded")
    clients.call(
        "closed_loop",
        target=targets.serve,
        method=targets.recommend,
        payloads=targets.payloads,
        concurrency=top,
        seconds=warm_s,
        connections=run.connections,
    )
    measured: dict[str, dict[str, Any]] = {}
    for concurrency in run.levels:
        say(f"concurrency {concurrency}: echo, then Recommend, {seconds:g} s each")
        bare, real = (
            clients.call(
                "closed_loop",
                target=target,
                method=method,
                payloads=targets.payloads,
                concurrency=concurrency,
                seconds=seconds,
                connections=run.connections,
            )
            for target, method in ((targets.echo, ECHO_METHOD), (targets.serve, targets.recommend))
        )
        measured[str(concurrency)] = level_figures(real, bare)
        say(f"  {measured[str(concurrency)]}")
    return measured


def _open_loop(
    clients: Clients,
    targets: _Targets,
    measured: dict[str, dict[str, Any]],
    run: _Run,
    say: Progress,
) -> dict[str, Any]:
    """An open-loop flood at twice the best closed-loop throughput, on the echo and the service."""
    seconds, max_inflight = run.overload_seconds, run.max_inflight
    saturation = max(float(m["rps"]) for m in measured.values())
    rate = 2.0 * saturation
    say(f"overload: open loop at {rate:.0f} req/s (2x {saturation:.0f}), {seconds:g} s")
    floods = {
        name: clients.call(
            "open_loop",
            target=target,
            method=method,
            payloads=targets.payloads,
            rate=rate,
            seconds=seconds,
            timeout_s=5.0,
            connections=run.connections,
        )
        for name, target, method in (
            ("echo", targets.echo, ECHO_METHOD),
            ("service", targets.serve, targets.recommend),
        )
    }
    overload = overload_figures(floods["service"], saturation, max_inflight, floods["echo"])
    say(f"  {overload}")
    return overload


def _known_users(dataset: Dataset, count: int, seed: int = 0) -> list[str]:
    """``count`` users drawn at random (with repeats) from those with interactions."""
    from graphstore import NodeKind

    known = sorted({i.actor.key for i in dataset.interactions if i.actor.kind is NodeKind.USER})
    picks = np.random.default_rng(seed).choice(len(known), size=count)
    return [known[int(p)] for p in picks]


def _payloads(
    dataset: Dataset, users: Sequence[str], count: int, sessions: bool, seed: int = 0
) -> list[bytes]:
    """Serialized RecommendRequests for ``users`` in turn; with ``sessions``, every other one is
    a fresh 3-event session instead."""
    from protos import graphrec_pb2 as pb

    rng = np.random.default_rng(seed)
    touched = [i.item_id for i in dataset.interactions]  # drawn by popularity
    out = []
    for n in range(count):
        if sessions and n % 2:
            picks = rng.choice(len(touched), size=3, replace=False)
            events = [
                pb.Event(item_id=touched[int(p)], type=kind)
                for p, kind in zip(picks.tolist(), (pb.VIEW, pb.CLICK, pb.VIEW), strict=True)
            ]
            subject = pb.Subject(
                session=pb.SessionContext(session_id=f"bench-session-{n}", events=events)
            )
        else:
            subject = pb.Subject(user_id=users[n % len(users)])
        out.append(pb.RecommendRequest(subject=subject, k=20).SerializeToString())
    return out


def _sample(target: str, method: str, payloads: Sequence[bytes]) -> dict[str, object]:
    """Answer a few requests once, parsed, to show what the timed ones get back (untimed),
    each on a connection of its own: how many server processes answered them too."""
    from protos import graphrec_pb2 as pb
    from serving.server import PID_HEADER

    sizes, items, fallbacks, pids = [], [], 0, set()
    for payload in payloads:
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(target, options=options) as channel:
            raw, call = channel.unary_unary(method, None, None).with_call(payload, timeout=30.0)
        response = pb.RecommendResponse.FromString(raw)
        sizes.append(len(raw))
        items.append(len(response.items))
        fallbacks += response.fallback
        pids.add(dict(call.trailing_metadata() or ()).get(PID_HEADER))  # None: in this process
    return {
        "requests": len(payloads),
        "response_bytes": round(float(np.mean(sizes)), 1),
        "items_per_response": round(float(np.mean(items)), 2),
        "fallbacks": fallbacks,
        "processes_answering": len(pids),
    }


def _stderr_progress() -> Progress:
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[bench serve {time.monotonic() - started:6.1f}s] {line}", file=sys.stderr)

    return say

"""``graphrec bench serve``: Recommend latency beside a bare gRPC echo server, top-K beside numpy
exact search, and load shedding at twice the saturating load, all measured in one run.

The world: a synthetic shop (``--items`` catalogue items, ``--events`` interactions) written
straight into a fresh embedded store, and a GNN trained on it briefly (BPR loss, large batches:
quality is not what this measures, the serving path is).

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

import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from benchmarks.loadgen import ECHO_METHOD, Clients, EchoServer

if TYPE_CHECKING:
    from gnn.datasets import Dataset
    from graphstore import GraphStore

GOALS = (
    "p50 <= 5x echo p50 and p99 <= 20 ms at every level; top-K index <= 1.2x numpy exact; "
    "at 2x saturation only OK / RESOURCE_EXHAUSTED and goodput >= 0.9x saturation"
)
Progress = Callable[[str], None]


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
) -> dict[str, object]:
    """Build a world, serve it, measure; returns the figures (``graphrec bench serve``)."""
    say = progress or _stderr_progress()
    work = Path(tempfile.mkdtemp(prefix="graphrec-bench-serve-"))
    try:
        world = _build_world(work, items, events, users, epochs, seed, say)
        try:
            return _measure(
                world, seconds, levels, overload_seconds, workers, max_inflight, topk_queries, say
            )
        finally:
            world.store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------- the world
@dataclass
class _World:
    store: GraphStore
    models: Path
    dataset: Dataset
    figures: dict[str, object]


def _build_world(
    work: Path, items: int, events: int, users: int, epochs: int, seed: int, say: Progress
) -> _World:
    from gnn.cli import train_once
    from gnn.datasets import SyntheticConfig, generate
    from gnn.datasets.base import load_into
    from gnn.train import TrainConfig
    from graphstore import open_store

    started = time.perf_counter()
    say(f"generating {items:,} items, {events:,} events, {users:,} users")
    dataset = generate(SyntheticConfig(seed=seed, events=events, users=users, items=items))
    generated = time.perf_counter()
    store = open_store(f"memory://{work / 'graph'}")
    try:
        load_into(store, dataset)
        snapshot = store.snapshot()
        built = time.perf_counter()
        say(f"world built in {built - started:.1f} s; training {epochs} epochs")
        # BPR, not the default full softmax (a [batch, items] logit matrix per step), and large
        # batches: every step is a forward pass over the whole graph.
        config = TrainConfig(
            epochs=epochs,
            loss="bpr",
            batch_size=8_192,
            eval_every=max(1, epochs),
            validation_share=0.02,  # evaluation ranks all items for every validation actor
            seed=seed,
        )
        trained = train_once(snapshot, config, work / "models")
    except BaseException:
        store.close()
        raise
    done = time.perf_counter()
    say(f"trained in {done - built:.1f} s (validation recall@20 {trained['validation_recall@20']})")
    figures: dict[str, object] = {
        "generate_s": round(generated - started, 2),
        "build_s": round(built - started, 2),
        "train_s": round(done - built, 2),
        "validation_recall@20": trained["validation_recall@20"],
    }
    return _World(store, work / "models", dataset, figures)


# ------------------------------------------------------------------------------- measurement
def _measure(
    world: _World,
    seconds: float,
    levels: Sequence[int],
    overload_seconds: float,
    workers: int,
    max_inflight: int,
    topk_queries: int,
    say: Progress,
) -> dict[str, object]:
    from serving.app import Serving
    from serving.server import SERVICE_NAME, ServerConfig

    say(f"loading the model into the service (workers={workers}, max_inflight={max_inflight})")
    started = time.perf_counter()
    serving = Serving(
        world.store,
        world.models,
        config=ServerConfig(address="127.0.0.1:0", workers=workers, max_inflight=max_inflight),
        reload_every_s=3600.0,  # one version for the whole run
    )
    port = serving.start()
    load_s = time.perf_counter() - started
    echo = EchoServer()
    clients = Clients()
    try:
        engine = serving.registry.current()
        if engine is None:
            raise RuntimeError("the service did not load the trained model")
        say(f"service on 127.0.0.1:{port} ({engine.table.size:,} items, {load_s:.1f} s to load)")
        echo_port = echo.start()
        payloads = _payloads(world.dataset, 2_000)
        serve_target, echo_target = f"127.0.0.1:{port}", f"127.0.0.1:{echo_port}"
        recommend = f"/{SERVICE_NAME}/Recommend"
        sample = _sample(serve_target, recommend, payloads[:100])

        say(f"top-K: {topk_queries} queries, usearch index vs numpy exact")
        index = engine.table.embeddings
        topk = _topk(index, topk_queries)

        measured: dict[str, dict[str, Any]] = {}
        for concurrency in levels:
            say(f"concurrency {concurrency}: echo, then Recommend, {seconds:g} s each")
            bare = clients.call(
                "closed_loop",
                target=echo_target,
                method=ECHO_METHOD,
                payloads=payloads,
                concurrency=concurrency,
                seconds=seconds,
            )
            real = clients.call(
                "closed_loop",
                target=serve_target,
                method=recommend,
                payloads=payloads,
                concurrency=concurrency,
                seconds=seconds,
            )
            measured[str(concurrency)] = _level(real, bare)
            say(f"  {measured[str(concurrency)]}")

        saturation = max(float(m["rps"]) for m in measured.values())
        rate = 2.0 * saturation
        say(
            f"overload: open loop at {rate:.0f} req/s (2x {saturation:.0f}), {overload_seconds:g} s"
        )
        floods = {
            name: clients.call(
                "open_loop",
                target=target,
                method=method,
                payloads=payloads,
                rate=rate,
                seconds=overload_seconds,
                timeout_s=5.0,
            )
            for name, target, method in (
                ("echo", echo_target, ECHO_METHOD),
                ("service", serve_target, recommend),
            )
        }
        overload = _overload(floods["service"], saturation, max_inflight, floods["echo"])
        say(f"  {overload}")
    finally:
        clients.close()
        echo.stop()
        serving.stop()

    met = {
        "p50_within_5x_echo": all(float(m["ratio_p50"]) <= 5.0 for m in measured.values()),
        "p99_within_20ms": all(float(m["p99_ms"]) <= 20.0 for m in measured.values()),
        "topk_within_1.2x_exact": float(topk["ratio"]) <= 1.2,
        "overload_only_ok_or_shed": set(overload["codes"]) <= {"OK", "RESOURCE_EXHAUSTED"},
        "goodput_at_least_0.9x": float(overload["ratio"]) >= 0.9,
    }
    return {
        "bench": "serve",
        "items": len(world.dataset.items),
        "events": len(world.dataset.interactions),
        **world.figures,
        "load_s": round(load_s, 2),
        "seconds_per_level": seconds,
        "workers": workers,
        "baseline": "grpc.aio echo server (generic unary handler returning the request bytes) "
        "on its own thread and event loop, same process as the service; clients in another "
        "process, bytes in and out on both",
        "request_bytes": round(float(np.mean([len(p) for p in payloads])), 1),
        "sample": sample,
        "levels": measured,
        "topk": topk,
        "overload": overload,
        "goals": GOALS,
        "met": met,
    }


def _payloads(dataset: Dataset, count: int, seed: int = 0) -> list[bytes]:
    """Serialized RecommendRequests: known users and fresh 3-event sessions, alternating."""
    from graphstore import NodeKind
    from protos import graphrec_pb2 as pb

    rng = np.random.default_rng(seed)
    known = sorted({i.actor.key for i in dataset.interactions if i.actor.kind is NodeKind.USER})
    touched = [i.item_id for i in dataset.interactions]  # drawn by popularity
    users = rng.choice(len(known), size=(count + 1) // 2)
    out = []
    for n in range(count):
        if n % 2 == 0:
            subject = pb.Subject(user_id=known[int(users[n // 2])])
        else:
            picks = rng.choice(len(touched), size=3, replace=False)
            events = [
                pb.Event(item_id=touched[int(p)], type=kind)
                for p, kind in zip(picks.tolist(), (pb.VIEW, pb.CLICK, pb.VIEW), strict=True)
            ]
            subject = pb.Subject(
                session=pb.SessionContext(session_id=f"bench-session-{n}", events=events)
            )
        out.append(pb.RecommendRequest(subject=subject, k=20).SerializeToString())
    return out


def _sample(target: str, method: str, payloads: Sequence[bytes]) -> dict[str, object]:
    """Answer a few requests once, parsed, to show what the timed ones get back (untimed)."""
    from protos import graphrec_pb2 as pb

    sizes, items, fallbacks = [], [], 0
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method, None, None)
        for payload in payloads:
            raw = call(payload, timeout=30.0)
            response = pb.RecommendResponse.FromString(raw)
            sizes.append(len(raw))
            items.append(len(response.items))
            fallbacks += response.fallback
    return {
        "requests": len(payloads),
        "response_bytes": round(float(np.mean(sizes)), 1),
        "items_per_response": round(float(np.mean(items)), 2),
        "fallbacks": fallbacks,
    }


def _topk(index: Any, queries: int, k: int = 20, seed: int = 0) -> dict[str, Any]:
    """``ItemIndex.search`` vs ``exact_topk`` on the same table and queries (median per query).

    Queries are item vectors (item-to-item) and means of three item vectors (session-like)."""
    from serving.topk import exact_topk

    table = index.vectors()
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(table), (queries, 3))
    qs = np.where(
        (np.arange(queries) % 2 == 0)[:, None], table[rows[:, 0]], table[rows].mean(axis=1)
    ).astype(np.float32)
    for q in qs[:10]:  # warm both paths
        index.search(q, k)
        exact_topk(table, q, k)
    idx_t, exact_t, recall = [], [], []
    for q in qs:
        t0 = time.perf_counter()
        found, _ = index.search(q, k)
        t1 = time.perf_counter()
        truth = exact_topk(table, q, k)
        t2 = time.perf_counter()
        idx_t.append(t1 - t0)
        exact_t.append(t2 - t1)
        recall.append(len(set(found.tolist()) & set(truth.tolist())) / max(1, len(truth)))
    index_ms, exact_ms = 1e3 * float(np.median(idx_t)), 1e3 * float(np.median(exact_t))
    return {
        "queries": queries,
        "k": k,
        "rows": len(table),
        "dim": int(table.shape[1]),
        "approximate": len(table) >= index._threshold,
        "index_ms": round(index_ms, 4),
        "exact_ms": round(exact_ms, 4),
        "ratio": round(index_ms / exact_ms, 3),
        "recall@k": round(float(np.mean(recall)), 4),
    }


def _level(real: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    p50, p99 = _ms(real["latencies"], 50), _ms(real["latencies"], 99)
    e50, e99 = _ms(bare["latencies"], 50), _ms(bare["latencies"], 99)
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "rps": round(len(real["latencies"]) / real["elapsed"], 1),
        "echo_p50_ms": e50,
        "echo_p99_ms": e99,
        "echo_rps": round(len(bare["latencies"]) / bare["elapsed"], 1),
        "ratio_p50": round(p50 / e50, 2) if e50 else None,
        "ratio_p99": round(p99 / e99, 2) if e99 else None,
        "requests": len(real["latencies"]),
        "errors": {c: n for c, n in real["codes"].items() if c != "OK"},
    }


def _overload(
    flood: dict[str, Any], saturation: float, max_inflight: int, echo: dict[str, Any]
) -> dict[str, Any]:
    """The service's answers to the open-loop flood, beside the bare echo server's answers to
    the same schedule: what the transport and the client process manage at that rate on this
    machine, with no service work at all."""
    codes: Counter[str] = flood["codes"]
    goodput = _goodput(flood)
    return {
        "max_inflight": max_inflight,
        "rate": round(flood["rate"], 1),
        "offered_rps": round(flood["sent"] / flood["send_s"], 1) if flood["send_s"] else None,
        "sent": flood["sent"],
        "codes": dict(codes),
        "goodput": round(goodput, 1),
        "saturation": round(saturation, 1),
        "ratio": round(goodput / saturation, 3) if saturation else 0.0,
        "ok_p50_ms": _ms(flood["ok_latencies"], 50),
        "ok_p99_ms": _ms(flood["ok_latencies"], 99),
        "shed_p50_ms": _ms(flood["shed_latencies"], 50),
        "echo_codes": dict(echo["codes"]),
        "echo_goodput": round(_goodput(echo), 1),
        "echo_ok_p50_ms": _ms(echo["ok_latencies"], 50),
    }


def _goodput(flood: dict[str, Any]) -> float:
    """OK answers per second from the first send to the last answer (the drain of the queue
    after the last send counts: the server is busy all along)."""
    window = max(flood["seconds"], flood["last_done"])
    return flood["codes"].get("OK", 0) / window if window else 0.0


def _ms(latencies: np.ndarray, q: float) -> float:
    return round(1e3 * float(np.percentile(latencies, q)), 3) if len(latencies) else 0.0


def _stderr_progress() -> Progress:
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[bench serve {time.monotonic() - started:6.1f}s] {line}", file=sys.stderr)

    return say

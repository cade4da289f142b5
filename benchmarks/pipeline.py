"""``graphrec bench pipeline``: a dataset through the whole product, each stage a ``graphrec``
process as a user runs it, each figure beside a raw baseline measured in the same run.

1. produce: ``graphrec produce --dataset D`` writes the catalogue and the events to a fresh
   log (new topics on Kafka); events/s over the process's wall time (its start-up included);
2. ingest: the raw baseline first, then ``graphrec ingest`` (the sink) until the graph holds
   every record; the sink's interactions/s are over its own clock (first record read to last
   commit), as in ``graphrec bench ingest``. The baseline is that bench's: on Neo4j a raw
   neo4j-driver ``UNWIND … MERGE`` loop over the same events after ``upsert_items`` of the
   catalogue, into the emptied graph, which is emptied again for the sink; on the embedded
   store the store's bare ``apply`` of the sink's batches, decoded beforehand, into a store
   of its own;
3. train: ``graphrec train --mode sampled`` (sampled neighbourhoods: what keeps memory flat at
   a million events) for ``epochs`` epochs; its epoch time is the median ``epoch_s`` of the
   version's history (the steps of an epoch, not its evaluation). Beside it, in this process
   on the same snapshot, ``graphrec bench train``'s pair: our LightGCN epoch and a bare
   sparse-matmul LightGCN loop over the same edges (``benchmarks.learning.bench_train``),
   each timed over its first ``baseline_steps`` steps and scaled to a whole epoch: their
   every step propagates over the whole graph, so a whole epoch of theirs at a million
   events would take hours;
4. serve: ``graphrec serve`` on that version, a short Recommend load at each concurrency
   beside a bare gRPC echo server (``benchmarks.pipeline_serve``).

Each process's wall time, CPU time and peak RSS (``benchmarks.pipeline_procs``), the total
wall time; a table on stdout and the figures as JSON on the last line. Everything the run
writes lives in a temporary directory, in new Kafka topics and (``--store neo4j://…``) in
the graph, which it empties first; every process it starts is stopped before it returns.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

from benchmarks.ingest import _bare_apply, _decoded_batches, _raw_neo4j_loop
from benchmarks.learning import bench_train
from benchmarks.pipeline_procs import Progress, graphrec, run
from benchmarks.pipeline_serve import serve_stage
from gnn.data import from_snapshot
from gnn.datasets import Dataset
from graphrec.pipeline import load_dataset
from graphstore import open_store

GOAL = "every stage done end to end; total wall <= 1800 s at ML-1M on Kafka + Neo4j"
STAGES = ("produce", "ingest", "train", "serve")
BATCH = 2_048  # pairs a step, of the LightGCN / bare loop pair (bench train's)


@dataclass(frozen=True)
class PipelineSpec:
    """What ``graphrec bench pipeline`` runs."""

    dataset: str = "synthetic"  # synthetic, ml-100k or ml-1m
    events: int = 100_000  # synthetic only
    log_url: str | None = None  # kafka://HOST:PORT (new topics); None: a fresh embedded log
    store_url: str | None = None  # neo4j://… (emptied!); None: a fresh embedded store
    epochs: int = 2  # of `graphrec train`
    baseline_steps: int = 10  # timed of each side of the LightGCN / bare loop pair
    seconds: float = 3.0  # per concurrency level and side
    levels: tuple[int, ...] = (1, 8)
    batch_size: int = 2_000  # records per graph transaction, sink and baseline
    seed: int = 0
    timeout_s: float = 1_800.0  # for each process


def bench_pipeline(spec: PipelineSpec, progress: Progress | None = None) -> dict[str, object]:
    """Run every stage once; the figures, JSON-ready."""
    say = progress or _stderr_progress()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="graphrec-bench-pipeline-"))
    run_id = f"bench-pipeline-{uuid.uuid4().hex[:8]}"
    log_url = _fresh_log(spec.log_url, work, run_id)
    store_url = spec.store_url or f"sqlite://{work / 'graph'}"
    try:
        say(f"loading {spec.dataset}")
        dataset = load_dataset(spec.dataset, spec.events, spec.seed)
        say(f"{len(dataset.items):,} items, {len(dataset.interactions):,} events")
        stages = {"produce": _produce(spec, log_url, dataset, work, say)}
        stages["ingest"] = _ingest(spec, log_url, store_url, dataset, work, run_id, say)
        stages["train"] = _train(spec, log_url, store_url, work, say)
        stages["serve"] = serve_stage(
            store_url,
            work / "models",
            log_url,
            dataset,
            spec.store_url is not None,
            spec.seconds,
            spec.levels,
            work,
            say,
            spec.timeout_s,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "bench": "pipeline",
        "run": run_id,  # its topics on Kafka: RUN-events, RUN-items, RUN-changes, RUN-recs
        "dataset": dataset.name,
        "items": len(dataset.items),
        "events": len(dataset.interactions),
        "log": spec.log_url or "log://<tmp>",
        "store": spec.store_url or "sqlite://<tmp>",
        "spec": {k: v for k, v in asdict(spec).items() if k not in ("log_url", "store_url")},
        "stages": stages,
        "total_wall_s": round(time.perf_counter() - started, 1),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "goal": GOAL,
    }


def _produce(
    spec: PipelineSpec, log_url: str, dataset: Dataset, work: Path, say: Progress
) -> dict[str, object]:
    args = ["produce", "--dataset", spec.dataset, "--to", log_url]
    if spec.dataset == "synthetic":
        args += ["--events", str(spec.events), "--seed", str(spec.seed)]
    say(f"produce: `graphrec produce --dataset {spec.dataset}` to {log_url}")
    done = run("produce", graphrec(*args), work, say, spec.timeout_s)
    sent = int(str(done.summary.get("events", -1)))
    if sent != len(dataset.interactions):
        raise RuntimeError(f"graphrec produce wrote {sent} events, not {len(dataset.interactions)}")
    say(f"produce: {sent:,} events in {done.wall_s:.1f} s")
    return {
        "wall_s": round(done.wall_s, 2),
        "events_per_s": round(sent / done.wall_s, 1),
        "cpu_s": round(done.cpu_s, 2),  # the process's, on a shared machine's cores
        "peak_rss_mb": round(done.peak_rss_mb, 1),
        "process": done.command,
    }


def _ingest(
    spec: PipelineSpec,
    log_url: str,
    store_url: str,
    dataset: Dataset,
    work: Path,
    group: str,
    say: Progress,
) -> dict[str, object]:
    """The raw baseline, then the sink process into the (emptied) graph."""
    items, events = len(dataset.items), len(dataset.interactions)
    baseline, raw_eps, raw_s = _ingest_baseline(spec, log_url, dataset, work, say)
    args = ["ingest", "--from", log_url, "--store", store_url, "--group", group]
    args += ["--batch-size", str(spec.batch_size), "--idle-exit", "2"]
    say("ingest: `graphrec ingest` until the graph holds every record")
    done = run("ingest", graphrec(*args), work, say, spec.timeout_s)
    summary = done.summary
    applied, duplicates = int(str(summary["applied"])), int(str(summary["skipped_duplicate"]))
    if applied + duplicates != items + events or summary["dead_lettered"]:
        raise RuntimeError(
            f"the sink wrote {applied} records (+{duplicates} duplicates, "
            f"{summary['dead_lettered']} dead-lettered) of {items} items and {events} events"
        )
    sink_eps = (applied - items) / float(str(summary["seconds"]))
    say(f"ingest: sink {sink_eps:,.0f} events/s beside {raw_eps:,.0f} ({baseline})")
    return {
        "wall_s": round(done.wall_s, 2),
        "sink_s": summary["seconds"],
        "sink_events_per_s": round(sink_eps, 1),
        "baseline": baseline,
        "baseline_s": round(raw_s, 2),
        "baseline_events_per_s": round(raw_eps, 1),
        "ratio": round(sink_eps / raw_eps, 3),
        "duplicates_dropped": duplicates,
        "cpu_s": round(done.cpu_s, 2),  # the process's, on a shared machine's cores
        "peak_rss_mb": round(done.peak_rss_mb, 1),
        "process": done.command,
    }


def _ingest_baseline(
    spec: PipelineSpec, log_url: str, dataset: Dataset, work: Path, say: Progress
) -> tuple[str, float, float]:
    """(what the baseline is, its events/s, its seconds); on a server the graph is left
    empty for the sink."""
    started = time.perf_counter()
    if spec.store_url is not None:
        say("ingest: baseline, a raw neo4j-driver UNWIND MERGE loop into the emptied graph")
        with open_store(spec.store_url) as store:
            store.reset()
            rate = _raw_neo4j_loop(store, dataset, spec.batch_size)
            store.reset()
        what = "neo4j-driver UNWIND MERGE loop (+ store.upsert_items)"
    else:
        say("ingest: baseline, the store's bare apply of the sink's batches")
        total = len(dataset.items) + len(dataset.interactions)
        batches = _decoded_batches(log_url, spec.batch_size, total)
        with open_store(f"sqlite://{work / 'raw'}") as store:
            rate = _bare_apply(store, batches)
        del batches
        what = "store.apply of the sink's batches, decoded beforehand"
    return what, rate, time.perf_counter() - started


def _train(
    spec: PipelineSpec, log_url: str, store_url: str, work: Path, say: Progress
) -> dict[str, object]:
    """``graphrec train --mode sampled``, then the LightGCN / bare loop pair on its graph."""
    args = ["train", "--store", store_url, "--models-dir", str(work / "models"), "--from"]
    args += [log_url, "--mode", "sampled", "--epochs", str(spec.epochs), "--seed", str(spec.seed)]
    args += ["--cold", "--metrics-port", "0"]
    say(f"train: `graphrec train --mode sampled --epochs {spec.epochs}`")
    done = run("train", graphrec(*args), work, say, spec.timeout_s)
    metrics = json.loads((Path(str(done.summary["path"])) / "metrics.json").read_text())
    epoch_s = median(float(h["epoch_s"]) for h in metrics["history"])
    say(f"train: {done.wall_s:.1f} s, {epoch_s:.2f} s an epoch; the bare-loop baseline next")
    with open_store(store_url) as store:
        data = from_snapshot(store.snapshot())
    steps = max(1, len(data.edges) // BATCH)  # bench train's steps an epoch
    timed = min(steps, spec.baseline_steps)
    pair = bench_train(data, 1, BATCH, timed)
    bare_s = float(str(pair["bare_sparse_matmul_epoch_s"])) / timed * steps
    ours_s = float(str(pair["epoch_s"])) / timed * steps
    say(f"train: bare LightGCN loop {bare_s:.2f} s an epoch, our LightGCN {ours_s:.2f} s")
    return {
        "wall_s": round(done.wall_s, 2),
        "epochs": int(metrics["history"][-1]["epoch"]),
        "epoch_s": round(epoch_s, 3),
        "bare_loop_epoch_s": round(bare_s, 3),
        "epoch_over_bare_loop": round(epoch_s / bare_s, 3),
        "lightgcn_epoch_s": round(ours_s, 3),
        "lightgcn_over_bare_loop": pair["ratio"],
        "baseline_steps_timed": timed,
        "baseline_steps_per_epoch": steps,
        "baseline": "bench train's bare sparse-matmul LightGCN loop over the same graph's "
        "edges: its epoch is its timed steps' time scaled to a whole epoch (every step "
        "propagates over the whole graph); epoch_s is sampled-mode GraphSAGE, measured whole",
        "validation_recall@20": done.summary.get("validation_recall@20"),
        "training_edges": len(data.edges),
        "cpu_s": round(done.cpu_s, 2),  # the process's, on a shared machine's cores
        "peak_rss_mb": round(done.peak_rss_mb, 1),
        "process": done.command,
    }


def _fresh_log(url: str | None, work: Path, run_id: str) -> str:
    """A fresh embedded log in ``work``, or new topics of this run on the Kafka at ``url``."""
    if url is None:
        return f"log://{work / 'log'}"
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ValueError(f"bench pipeline --from takes kafka://HOST:PORT (or nothing): {url!r}")
    topics = f"items={run_id}-items&changes={run_id}-changes"
    return f"kafka://{parts.netloc}/{run_id}-events?{topics}&recommendations={run_id}-recs"


def render(figures: dict[str, object], console: Console) -> None:
    """The stages as a table: wall time, throughput beside its baseline, peak RSS."""
    stages = figures["stages"]
    assert isinstance(stages, dict)
    title = f"graphrec bench pipeline: {figures['dataset']}, {figures['events']:,} events"
    table = Table(title=title)
    for column in ("stage", "wall s", "CPU s", "figure", "baseline", "ratio", "peak RSS MB"):
        table.add_column(column, justify="left" if column in ("stage", "figure") else "right")
    for name in STAGES:
        s = stages[name]
        figure, base, ratio = _row(name, s)
        times = (f"{s['wall_s']:,.1f}", f"{s['cpu_s']:,.1f}")
        table.add_row(name, *times, figure, base, ratio, f"{s['peak_rss_mb']:,.0f}")
    table.caption = f"total {figures['total_wall_s']:,.1f} s; goal: {GOAL}"
    console.print(table)


def _row(name: str, s: dict[str, object]) -> tuple[str, str, str]:
    """A stage's figure, its baseline's and their ratio, as text."""
    if name == "produce":
        return f"{s['events_per_s']:,.0f} events/s", "", ""
    if name == "ingest":
        base = f"{s['baseline_events_per_s']:,.0f} events/s"
        return f"{s['sink_events_per_s']:,.0f} events/s", base, f"{s['ratio']}"
    if name == "train":
        base = f"bare loop {s['bare_loop_epoch_s']} s/epoch"
        return f"{s['epoch_s']} s/epoch", base, f"{s['epoch_over_bare_loop']}"
    levels = s["levels"]
    assert isinstance(levels, dict)
    figure = ", ".join(f"c={c} p50 {m['p50_ms']} ms" for c, m in levels.items())
    base = ", ".join(f"echo {m['echo_p50_ms']} ms" for m in levels.values())
    return figure, base, ", ".join(str(m["ratio_p50"]) for m in levels.values())


def _stderr_progress() -> Progress:
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[bench pipeline {time.monotonic() - started:6.1f}s] {line}", file=sys.stderr)

    return say

"""``graphrec bench``: the benchmarks' commands. Each imports ``benchmarks`` when it runs, so the
product CLI never loads benchmark code to start."""

from __future__ import annotations

import json
from typing import Annotated

import typer

bench_app = typer.Typer(help="Benchmarks: each prints its figure beside a same-run baseline.")
DatasetOpt = Annotated[str, typer.Option(help="ml-100k or synthetic.")]
LevelsOpt = Annotated[str, typer.Option(help="Concurrency levels, comma-separated.")]


def _levels(text: str) -> tuple[int, ...]:
    """``--levels`` as positive integers."""
    steps = tuple(int(c) for c in text.split(",") if c.strip())
    if not steps or min(steps) < 1:
        raise ValueError(f"--levels takes positive integers like 1,8,32, got {text!r}")
    return steps


@bench_app.command("ingest")
def bench_ingest_cmd(
    events: Annotated[int, typer.Option(min=1_000, help="Synthetic events to ingest.")] = 50_000,
    batch_size: Annotated[int, typer.Option(min=1, help="Records per graph transaction.")] = 2_000,
    store: Annotated[
        str | None,
        typer.Option("--store", help="Store URL (emptied!); default a fresh embedded one."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--from", help="kafka://HOST:PORT to go through Kafka (new topics)."),
    ] = None,
    trials: Annotated[int, typer.Option(min=1, help="Freshness trials.")] = 100,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Also measure 1 and N `graphrec ingest` processes in one consumer group over "
            "one partitioned topic (needs --from kafka:// and --store neo4j://).",
        ),
    ] = 1,
) -> None:
    """Sink events/s beside a raw baseline in the same run, plus freshness p50/p99.

    The baseline is the store's bare `apply` (embedded) or a raw neo4j-driver UNWIND MERGE loop
    (Neo4j). Prints the figures and their ratio as JSON on the last line.
    """
    from benchmarks.ingest import bench_ingest, check_group_urls

    try:
        check_group_urls(store, source, workers)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    print(json.dumps(bench_ingest(events, batch_size, store, source, trials, workers=workers)))


@bench_app.command("freshness")
def bench_freshness_cmd(
    trials: Annotated[int, typer.Option(min=1, help="Changes produced, one at a time.")] = 100,
    store: Annotated[
        str | None,
        typer.Option("--store", help="Store URL (emptied!); default a fresh embedded one."),
    ] = None,
    kafka: Annotated[
        str | None, typer.Option("--kafka", help="HOST:PORT to go through Kafka (new topics).")
    ] = None,
) -> None:
    """Produce → reflected in Recommend through the sink's change stream and the service's
    change feed (a new item ranked; a clicked item's score changed), p50/p99 beside
    produce → visible in the graph from the same run (JSON last line)."""
    from benchmarks.freshness import bench_freshness

    print(json.dumps(bench_freshness(trials, store, kafka)))


@bench_app.command("serve")
def bench_serve_cmd(
    items: Annotated[int, typer.Option(min=100, help="Catalogue items.")] = 100_000,
    events: Annotated[int, typer.Option(min=1_000, help="Synthetic interactions.")] = 200_000,
    users: Annotated[int, typer.Option(min=10, help="Synthetic users.")] = 20_000,
    seconds: Annotated[float, typer.Option(min=0.1, help="Seconds per concurrency level.")] = 8.0,
    levels: LevelsOpt = "1,8,32",
    overload_seconds: Annotated[
        float, typer.Option(min=0.1, help="Seconds of open-loop load at 2x saturation.")
    ] = 10.0,
    workers: Annotated[int, typer.Option(min=1, help="Service threads doing model work.")] = 1,
    max_inflight: Annotated[
        int, typer.Option(min=1, help="Service requests in progress before it sheds load.")
    ] = 64,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the model.")] = 2,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="neo4j://HOST:PORT to serve from: the world is written there once and reused "
            "(a store holding anything else is emptied!); default a fresh embedded store.",
        ),
    ] = None,
    train_events: Annotated[
        int | None,
        typer.Option(min=1_000, help="Train on the graph as of this many events (default all)."),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Serve as this many processes on one port, as `graphrec serve --processes` "
            "does (the clients then spread their calls over 32 connections, on the echo too).",
        ),
    ] = 1,
) -> None:
    """Recommend p50/p95/p99 at each concurrency beside a bare gRPC echo server, top-K beside
    numpy exact search, and status codes and goodput at 2x the saturating load; on Neo4j also
    the raw driver running the request's neighbourhood query, that query across users of every
    degree, ghz from outside and freshness (JSON last line)."""
    from benchmarks.serve import bench_serve

    steps = _levels(levels)
    figures = bench_serve(
        items,
        events,
        users,
        seconds,
        steps,
        overload_seconds,
        workers,
        max_inflight,
        epochs,
        store_url=store,
        train_events=train_events,
        processes=processes,
    )
    print(json.dumps(figures))


@bench_app.command("sample")
def bench_sample_cmd(
    dataset: DatasetOpt = "ml-100k",
    seeds: Annotated[int, typer.Option(min=1, help="Seed nodes per batch.")] = 512,
    fanout: Annotated[int, typer.Option(min=1, help="Neighbours sampled per seed.")] = 10,
) -> None:
    """Sampled neighbours/s beside a raw numpy CSR gather of the same seeds (JSON last line)."""
    from benchmarks.learning import bench_sample, load_graph

    print(json.dumps(bench_sample(load_graph(dataset), seeds, fanout)))


@bench_app.command("train")
def bench_train_cmd(
    dataset: DatasetOpt = "ml-100k",
    epochs: Annotated[int, typer.Option(min=1, help="Epochs to time.")] = 3,
) -> None:
    """LightGCN epoch time beside a bare sparse-matmul LightGCN loop (JSON last line)."""
    from benchmarks.learning import bench_train, load_graph

    print(json.dumps(bench_train(load_graph(dataset), epochs)))


@bench_app.command("warm")
def bench_warm_cmd(
    dataset: DatasetOpt = "ml-100k",
    base_share: Annotated[
        float, typer.Option(min=0.1, max=0.99, help="Share of events the previous version saw.")
    ] = 0.9,
    epochs: Annotated[int, typer.Option(min=1, help="Epoch budget of each retrain.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the split and the training.")] = 0,
) -> None:
    """A retrain after new events, warm-started from the previous version beside a cold one:
    recall@20 on the same held-out pairs, wall and CPU time (JSON last line)."""
    from benchmarks.warm_start import bench_warm

    print(json.dumps(bench_warm(dataset, base_share, seed, epochs)))


@bench_app.command("reload")
def bench_reload_cmd(
    items: Annotated[int, typer.Option(min=100, help="Items in the model version.")] = 100_000,
    repeats: Annotated[int, typer.Option(min=1, help="Timed rounds of each.")] = 5,
    index: Annotated[
        bool,
        typer.Option(help="The server's exact_threshold and a version with its usearch index."),
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic version.")] = 0,
) -> None:
    """Loading a model version as the server does on a hot reload beside reading the same
    files raw (median of the rounds, ratio; JSON last line)."""
    from benchmarks.reload import bench_reload

    print(json.dumps(bench_reload(items, repeats, index, seed)))


@bench_app.command("train-memory")
def bench_train_memory_cmd(
    sizes: Annotated[str, typer.Option(help="Graph sizes in edges, comma-separated.")] = (
        "1000000,5000000"
    ),
    items: Annotated[int, typer.Option(min=100, help="Catalogue items (every size).")] = 50_000,
    actor_degree: Annotated[
        int, typer.Option(min=1, help="Edges per actor: actors = edges / this.")
    ] = 10,
    steps: Annotated[int, typer.Option(min=1, help="Sampled training steps.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the graphs and the training.")] = 0,
) -> None:
    """Peak RSS of sampled-mode training per graph size, each in a fresh process, beside a
    process that only holds the same graph's CSR; growth from the first size to the last
    (JSON last line)."""
    from benchmarks.train_memory import bench_train_memory

    edges = tuple(int(s) for s in sizes.split(",") if s.strip())
    if len(edges) < 2 or min(edges) < 1_000:
        raise ValueError(f"--sizes takes two or more sizes >= 1000 like 1000000,5000000: {sizes!r}")
    print(json.dumps(bench_train_memory(edges, items, actor_degree, steps, seed)))


@bench_app.command("reclog")
def bench_reclog_cmd(
    items: Annotated[int, typer.Option(min=100, help="Catalogue items.")] = 100_000,
    events: Annotated[int, typer.Option(min=1_000, help="Synthetic interactions.")] = 200_000,
    users: Annotated[int, typer.Option(min=10, help="Synthetic users.")] = 20_000,
    seconds: Annotated[float, typer.Option(min=0.1, help="Seconds per turn.")] = 3.0,
    levels: LevelsOpt = "1,8,32",
    rounds: Annotated[int, typer.Option(min=1, help="Turns of each side per level.")] = 4,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the model.")] = 2,
    log: Annotated[
        str | None,
        typer.Option("--log", help="Log URL for the recommendation log (default: a fresh one)."),
    ] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Also measure the log on with a shadow version.")
    ] = False,
) -> None:
    """Recommend p50/p99 with the recommendation log on beside it off, in turns in the same
    run, and what the log wrote and dropped (JSON last line)."""
    from benchmarks.reclog import bench_reclog

    steps = _levels(levels)
    figures = bench_reclog(items, events, users, seconds, steps, rounds, epochs, log, 0, shadow)
    print(json.dumps(figures))


@bench_app.command("pipeline")
def bench_pipeline_cmd(
    dataset: Annotated[str, typer.Option(help="ml-1m, ml-100k or synthetic.")] = "synthetic",
    events: Annotated[int, typer.Option(min=1_000, help="Synthetic interactions.")] = 100_000,
    source: Annotated[
        str | None,
        typer.Option("--from", help="kafka://HOST:PORT to go through Kafka (new topics)."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", help="neo4j://HOST:PORT (emptied!); default a fresh embedded one."),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of `graphrec train`.")] = 2,
    baseline_steps: Annotated[
        int, typer.Option(min=1, help="Steps timed of each side of the LightGCN / bare-loop pair.")
    ] = 10,
    seconds: Annotated[
        float, typer.Option(min=0.1, help="Seconds of Recommend load per level and side.")
    ] = 3.0,
    levels: LevelsOpt = "1,8",
    batch_size: Annotated[int, typer.Option(min=1, help="Records per graph transaction.")] = 2_000,
    seed: Annotated[int, typer.Option(help="Seed of the generator and the training.")] = 0,
) -> None:
    """A dataset through produce → ingest → train (sampled) → serve, each a `graphrec`
    process: per stage the wall time, the process's peak RSS and its figure beside a raw
    baseline from the same run (raw-driver UNWIND or bare apply; a bare LightGCN loop; a gRPC
    echo server). A table, then JSON on the last line."""
    from rich.console import Console

    from benchmarks.pipeline import PipelineSpec, bench_pipeline, render

    spec = PipelineSpec(
        dataset=dataset,
        events=events,
        log_url=source,
        store_url=store,
        epochs=epochs,
        baseline_steps=baseline_steps,
        seconds=seconds,
        levels=_levels(levels),
        batch_size=batch_size,
        seed=seed,
    )
    figures = bench_pipeline(spec)
    render(figures, Console())
    print(json.dumps(figures))

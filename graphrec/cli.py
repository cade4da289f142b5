"""The ``graphrec`` command line: thin commands over the pipeline, gnn and serving packages."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gnn.datasets.movielens import DatasetUnavailable
from graphrec.config import Config, ConfigError, load_config
from graphrec.pipeline import DATASETS, ingest, load_dataset, produce_dataset
from graphstore import GraphStore, GraphStoreError, open_store
from streaming.urls import UnknownLogUrl

app = typer.Typer(
    help="graphrec: a graph-backed recommender fed by streaming events.\n\n"
    "Events go to a log (embedded log:// by default, or kafka://), the sink writes them into a "
    "graph store (embedded memory:// by default, or neo4j://), a GNN trains on the graph and a "
    "gRPC service recommends from it. Settings come from ./graphrec.toml (a \\[graphrec] table) "
    "and "
    "GRAPHREC_* environment variables; options override both.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: each prints its figure beside a same-run baseline.")
app.add_typer(bench_app, name="bench")
err = Console(stderr=True)

StoreOpt = Annotated[
    str | None, typer.Option("--store", help="Graph store URL (memory://PATH, neo4j://HOST:PORT).")
]
LogOpt = Annotated[str | None, typer.Option(help="Event log URL (log://PATH, kafka://HOST:PORT).")]


def _config() -> Config:
    try:
        return load_config()
    except ConfigError as exc:
        err.print(f"[red]config error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command("produce")
def produce_cmd(
    dataset: Annotated[str, typer.Option(help=f"Dataset: {', '.join(DATASETS)}.")] = "synthetic",
    events: Annotated[
        int, typer.Option(min=1, help="Interactions to generate (synthetic).")
    ] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic generator.")] = 0,
    malformed: Annotated[
        int, typer.Option(min=0, help="Malformed records to mix in (for DLQ drills).")
    ] = 0,
    fmt: Annotated[str, typer.Option("--format", help="Wire format: proto or json.")] = "proto",
    to: Annotated[
        str | None, typer.Option("--to", help="Event log URL; default log://<data_dir>/log.")
    ] = None,
) -> None:
    """Write a dataset's items (topic `items`) and events (topic `events`) to the event log."""
    config = _config()
    with _user_errors():
        data = load_dataset(dataset, events, seed)
        with _progress() as bar:
            task = bar.add_task("producing", total=len(data.interactions) + malformed)
            report = produce_dataset(
                to or config.log_url, data, fmt, malformed, seed, lambda n: bar.advance(task, n)
            )
    print(json.dumps({"dataset": data.name, **report.__dict__, "to": to or config.log_url}))


@app.command("ingest")
def ingest_cmd(
    source: Annotated[str | None, typer.Option("--from", help="Event log URL to read.")] = None,
    store: StoreOpt = None,
    group: Annotated[str | None, typer.Option(help="Consumer group.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Records per graph transaction.")
    ] = None,
    follow: Annotated[
        bool, typer.Option(help="Keep running for new events (stop with Ctrl-C / SIGTERM).")
    ] = False,
    idle_exit: Annotated[
        float, typer.Option(help="Without --follow: stop after this many idle seconds.")
    ] = 1.0,
) -> None:
    """Run the sink: log → decode ▸ validate ▸ batch ▸ graph ▸ commit.

    Bad records go to `<topic>.dlq` with the reason in a header.

    Prints a JSON summary: applied, dead-lettered (with reasons), events/s.
    """
    config = _config()
    with _user_errors(), _open(store or config.store_url) as graph, _progress() as bar:
        task = bar.add_task("ingesting", total=None)
        summary = ingest(
            source or config.log_url,
            graph,
            group or config.group,
            batch_size or config.batch_size,
            idle_exit_s=None if follow else idle_exit,
            on_batch=lambda s: bar.update(task, completed=s.applied + s.dead_lettered),
        )
    print(json.dumps(summary.as_dict()))


@app.command("stats")
def stats_cmd(store: StoreOpt = None) -> None:
    """Print node and edge counts and ingest watermarks of the graph store as JSON."""
    with _open(store or _config().store_url) as graph:
        print(json.dumps(asdict(graph.stats()), indent=2))


@app.command(
    "services",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def services_cmd(ctx: typer.Context) -> None:
    """Run deploy/services.sh: `up|down|restart|status|reset|password [kafka|neo4j]`.

    Fetches Kafka and Neo4j (+ Browser) from Maven Central once and runs them on 127.0.0.1.
    """
    script = Path(__file__).resolve().parents[1] / "deploy" / "services.sh"
    if not script.is_file():
        err.print(f"[red]error:[/red] {script} not found (run from a graphrec checkout)")
        raise typer.Exit(2)
    raise typer.Exit(subprocess.call([str(script), *ctx.args]))


@app.command("trending")
def trending_cmd(
    source: Annotated[
        str, typer.Option("--from", help="Kafka URL; its path and ?items= name the topics.")
    ] = "kafka://127.0.0.1:9092",
    app_id: Annotated[
        str, typer.Option(help="faust app id (consumer group).")
    ] = "graphrec-trending",
    web_port: Annotated[int, typer.Option(help="HTTP port for /trending/ (127.0.0.1).")] = 6066,
    window: Annotated[float, typer.Option(help="Window length in seconds.")] = 3600.0,
    step: Annotated[float, typer.Option(help="Window hop in seconds.")] = 300.0,
) -> None:
    """Run the faust app keeping windowed trending counts per item and category.

    Serves GET /trending/items/?k=20[&category=...] and /trending/categories/ on 127.0.0.1.
    """
    from streaming.trending import TrendingConfig, build_app, run_worker
    from streaming.urls import parse_log_url

    config = _config()
    with _user_errors():
        address = parse_log_url(source)
        if address.scheme != "kafka":
            raise ValueError(f"trending needs a kafka:// URL, got {source!r}")
    app_ = build_app(
        TrendingConfig(
            broker=f"kafka://{address.location}",
            app_id=app_id,
            events_topic=address.events,
            items_topic=address.items,
            web_port=web_port,
            window_s=window,
            step_s=step,
            data_dir=str(config.data_dir / "trending"),
        )
    )
    run_worker(app_)


@app.command("demo")
def demo_cmd(
    data_dir: Annotated[
        Path, typer.Option(help="Working directory of the demo (wiped first).")
    ] = Path("data/demo"),
    events: Annotated[int, typer.Option(min=100, help="Synthetic interactions.")] = 20_000,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (early stopping).")] = 20,
    kafka: Annotated[
        bool, typer.Option("--kafka", help="Go through Kafka on 127.0.0.1:9092 (new topics).")
    ] = False,
    neo4j: Annotated[
        bool,
        typer.Option("--neo4j", help="Use Neo4j on 127.0.0.1:7687 (its graph is emptied first!)."),
    ] = False,
) -> None:
    """Run the whole pipeline end to end, printing what it does: produce → ingest → train →
    serve → Recommend / Explain / ScoreItems, a live click and a cold-start item.

    On the embedded log and store by default; `graphrec services up` first for --kafka/--neo4j.
    """
    from graphrec.demo import run_demo

    shutil.rmtree(data_dir, ignore_errors=True)
    with _user_errors():
        run_demo(
            data_dir,
            events,
            out=Console(),
            train_epochs=epochs,
            kafka="127.0.0.1:9092" if kafka else None,
            neo4j="neo4j://127.0.0.1:7687" if neo4j else None,
        )


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
) -> None:
    """Sink events/s beside a raw baseline in the same run, plus freshness p50/p99.

    The baseline is the store's bare `apply` (embedded) or a raw neo4j-driver UNWIND MERGE loop
    (Neo4j). Prints the figures and their ratio as JSON on the last line.
    """
    from graphrec.bench import bench_ingest

    with _user_errors():
        print(json.dumps(bench_ingest(events, batch_size, store, source, trials)))


@bench_app.command("serve")
def bench_serve_cmd(
    items: Annotated[int, typer.Option(min=100, help="Catalogue items.")] = 100_000,
    events: Annotated[int, typer.Option(min=1_000, help="Synthetic interactions.")] = 200_000,
    users: Annotated[int, typer.Option(min=10, help="Synthetic users.")] = 20_000,
    seconds: Annotated[float, typer.Option(min=0.1, help="Seconds per concurrency level.")] = 8.0,
    levels: Annotated[str, typer.Option(help="Concurrency levels, comma-separated.")] = "1,8,32",
    overload_seconds: Annotated[
        float, typer.Option(min=0.1, help="Seconds of open-loop load at 2x saturation.")
    ] = 10.0,
    workers: Annotated[int, typer.Option(min=1, help="Service threads doing model work.")] = 1,
    max_inflight: Annotated[
        int, typer.Option(min=1, help="Service requests in progress before it sheds load.")
    ] = 64,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the model.")] = 2,
) -> None:
    """Recommend p50/p99 at each concurrency beside a bare gRPC echo server, top-K beside numpy
    exact search, and status codes and goodput at 2x the saturating load (JSON last line)."""
    from graphrec.bench_serve import bench_serve

    with _user_errors():
        steps = tuple(int(c) for c in levels.split(",") if c.strip())
        if not steps or min(steps) < 1:
            raise ValueError(f"--levels takes positive integers like 1,8,32, got {levels!r}")
        figures = bench_serve(
            items, events, users, seconds, steps, overload_seconds, workers, max_inflight, epochs
        )
        print(json.dumps(figures))


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn mistakes a user can fix (bad URL, unknown name, missing file) into exit code 2."""
    try:
        yield
    except (GraphStoreError, UnknownLogUrl, DatasetUnavailable, ValueError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


def _mount_gnn() -> None:
    from gnn import cli as gnn_cli

    app.command("eval")(gnn_cli.eval_command)
    app.command("train")(gnn_cli.train_command)
    bench_app.command("sample")(gnn_cli.bench_sample_command)
    bench_app.command("train")(gnn_cli.bench_train_command)


def _mount_serving() -> None:
    from graphrec import serving_cli

    app.command("serve")(serving_cli.serve_command)
    app.command("recommend")(serving_cli.recommend_command)
    app.command("explain")(serving_cli.explain_command)


_mount_gnn()
_mount_serving()


def _open(url: str) -> GraphStore:
    with _user_errors():
        return open_store(url)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)

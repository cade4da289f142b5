"""The ``graphrec`` command line: thin commands over the pipeline, gnn and serving packages."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from graphrec.bench_cli import bench_app
from graphrec.client_cli import explain_command, recommend_command
from graphrec.config import Config, load_config
from graphrec.console import err, exit_codes_help
from graphrec.import_cli import PartitionsOpt, create_partitioned_topics, import_command
from graphrec.lazy_commands import LazyCommand, lazy_group
from graphrec.pipeline import DATASETS, SinkMetrics, ingest, load_dataset, produce_dataset
from graphrec.report_cli import report_command
from graphstore import open_store
from serving.metrics import serve_metrics
from streaming.sink import SinkStats

# Their modules import torch and torch_geometric (seconds): loaded only when they run.
MODEL_COMMANDS = {
    "eval": LazyCommand(
        "gnn.cli:eval_command",
        "Evaluate models on one split, same split for all, mean ± std over seeds (full ranking,\n"
        "training items masked; Recall, NDCG, MRR, HitRate at K).",
    ),
    "train": LazyCommand(
        "graphrec.train_cli:train_command",
        "Train on the graph's current snapshot and publish models/<version>/ when its recall@20\n"
        "on held-out pairs is not worse than the current version's on the same pairs. Starts from\n"
        "the current version's weights (a model of the same kind) unless --cold.",
    ),
    "serve": LazyCommand(
        "graphrec.serving_cli:serve_command",
        "Serve the gRPC Recommender: Recommend / ScoreItems / Explain over live neighbourhoods.",
    ),
    "replay": LazyCommand(
        "graphrec.replay_cli:replay_command",
        "Replay history through the event log against the running service and score its answers.",
    ),
}
app = typer.Typer(
    help="graphrec: a graph-backed recommender fed by streaming events.\n\n"
    "Events go to a log (embedded log:// by default, or kafka://), the sink writes them into a "
    "graph store (embedded sqlite://PATH by default, or neo4j://), a GNN trains on the graph and a "
    "gRPC service recommends from it. Settings come from ./graphrec.toml (a \\[graphrec] table) "
    "and "
    "GRAPHREC_* environment variables; options override both.",
    epilog=exit_codes_help(),
    cls=lazy_group(MODEL_COMMANDS),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

QUIET_LIBRARIES = ("kafka", "neo4j")  # their loggers, shown with -v
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Graph store URL (sqlite://PATH, memory://, neo4j://HOST:PORT)."),
]


def _config() -> Config:
    return load_config()


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
    if not verbose:
        # The drivers log every refused connection at ERROR; graphrec says what failed in
        # one line (commands) or in its own retry warnings (background loops).
        for library in QUIET_LIBRARIES:
            logging.getLogger(library).setLevel(logging.CRITICAL)


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
    partitions: PartitionsOpt = None,
) -> None:
    """Write a dataset's items (topic `items`) and events (topic `events`) to the event log."""
    config = _config()
    data = load_dataset(dataset, events, seed)
    create_partitioned_topics(to or config.log_url, partitions)
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
    metrics_port: Annotated[
        int,
        typer.Option(
            help="Prometheus /metrics on 127.0.0.1 (0: off): records applied, dead-lettered, "
            "duplicates dropped, replays skipped."
        ),
    ] = 0,
) -> None:
    """Run the sink: log → decode ▸ validate ▸ batch ▸ graph ▸ commit.

    Bad records go to `<topic>.dlq` with the reason in a header.

    Prints a JSON summary: applied, dead-lettered (with reasons), events/s.
    """
    config = _config()
    metrics = SinkMetrics(CollectorRegistry())
    if metrics_port:
        serve_metrics(metrics.registry, metrics_port, config.metrics_host)
    with open_store(store or config.store_url) as graph, _progress() as bar:
        task = bar.add_task("ingesting", total=None)

        def on_batch(stats: SinkStats) -> None:
            bar.update(task, completed=stats.applied + stats.dead_lettered)
            metrics.observe(stats)

        summary = ingest(
            source or config.log_url,
            graph,
            group or config.group,
            batch_size or config.batch_size,
            idle_exit_s=None if follow else idle_exit,
            on_batch=on_batch,
            dedup=config.dedup_window,
        )
    print(json.dumps(summary.as_dict()))


@app.command("stats")
def stats_cmd(store: StoreOpt = None) -> None:
    """Print node and edge counts and ingest watermarks of the graph store as JSON."""
    with open_store(store or _config().store_url) as graph:
        print(json.dumps(asdict(graph.stats()), indent=2))


@app.command(
    "services",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def services_cmd(ctx: typer.Context) -> None:
    """Run deploy/services.sh: `up|down|restart|status|reset|password \\[kafka|neo4j]`.

    Fetches Kafka and Neo4j (+ Browser) from Maven Central once and runs them on 127.0.0.1.
    """
    script = Path(__file__).resolve().parents[1] / "deploy" / "services.sh"
    if not script.is_file():
        raise FileNotFoundError(f"{script} not found (run from a graphrec checkout)")
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
    from streaming.kafka import ensure_topics
    from streaming.trending import TrendingConfig, build_app, run_worker
    from streaming.urls import parse_log_url

    config = _config()
    address = parse_log_url(source)
    if address.scheme != "kafka":
        raise typer.BadParameter(f"trending needs a kafka:// URL, got {source!r}")
    # faust's worker would log a broker it cannot reach as a traceback: ask first, and make
    # the topics it reads (as the sink does).
    ensure_topics(address.location, [address.events, address.items])
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
    dataset: Annotated[str, typer.Option(help=f"Dataset: {', '.join(DATASETS)}.")] = "synthetic",
    events: Annotated[int, typer.Option(min=100, help="Synthetic interactions.")] = 20_000,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (early stopping).")] = 20,
    kafka: Annotated[
        bool, typer.Option("--kafka", help="Go through Kafka at --kafka-address (new topics).")
    ] = False,
    neo4j: Annotated[
        bool,
        typer.Option("--neo4j", help="Use Neo4j at --neo4j-url (its graph is emptied first!)."),
    ] = False,
    kafka_address: Annotated[str, typer.Option(help="HOST:PORT of Kafka's broker.")] = (
        "127.0.0.1:9092"
    ),
    neo4j_url: Annotated[str, typer.Option(help="Neo4j's bolt URL.")] = "neo4j://127.0.0.1:7687",
) -> None:
    """Run the whole pipeline end to end, printing what it does: produce → ingest → train →
    serve → Recommend / Explain / ScoreItems, a live click and a cold-start item.

    On the embedded log and store by default; `graphrec services up` first for --kafka/--neo4j.
    """
    from graphrec.demo import run_demo

    if dataset not in DATASETS:
        raise typer.BadParameter(f"unknown dataset {dataset!r}: {', '.join(DATASETS)}")
    shutil.rmtree(data_dir, ignore_errors=True)
    run_demo(
        data_dir,
        events,
        out=Console(),
        train_epochs=epochs,
        kafka=kafka_address if kafka else None,
        neo4j=neo4j_url if neo4j else None,
        dataset_name=dataset,
    )


# gRPC core prints its own lines on stderr (a failed bind, say) unless told before it loads
# (serve and the clients load it when they run); the command's one-line error says the same.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
app.command("recommend")(recommend_command)
app.command("explain")(explain_command)
app.command("import")(import_command)
app.command("report")(report_command)
app.add_typer(bench_app, name="bench")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)

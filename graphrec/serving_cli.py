"""``graphrec serve``; its clients, ``recommend`` and ``explain``, are ``graphrec.client_cli``."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from graphrec.changefeed import ChangeFeed, serving_feed
from graphrec.client_cli import AddressOpt, TokenOpt
from graphrec.config import load_config
from graphrec.pinned import AbOpt, Pinned, ShadowOpt, load_pinned_versions
from graphrec.reclog import log_config
from graphrec.replicas import Replicas, run_replicas, started_line
from graphstore import GraphStore, open_store
from serving.app import Serving
from serving.recommender import RecommenderConfig
from serving.server import ServerConfig
from streaming.urls import parse_log_url

log = logging.getLogger(__name__)
out = Console()


StoreOpt = Annotated[str | None, typer.Option("--store", help="Graph store URL.")]
ModelsOpt = Annotated[Path | None, typer.Option(help="Model versions (hot-reloaded).")]
LogOpt = Annotated[
    str | None,
    typer.Option(
        "--from", help="Log URL whose change stream to follow for item refreshes (default: config)."
    ),
]
FollowOpt = Annotated[
    bool, typer.Option(help="Follow the change stream and re-embed the items that change.")
]
TrendingOpt = Annotated[
    str | None,
    typer.Option(
        help="Base URL of `graphrec trending` (e.g. http://127.0.0.1:6066) for "
        "the popularity fallback; default: the store's counts."
    ),
]
FanoutsOpt = Annotated[
    str,
    typer.Option(
        help="Fan-out caps of the live fetch: the subject's edges, then (Explain) the "
        "other actors of its items."
    ),
]
WorkersOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="Threads doing model work; each answers the Recommend requests waiting for it "
        "as one batch.",
    ),
]
MaxBatchOpt = Annotated[
    int, typer.Option(min=1, help="Most Recommend requests one worker answers together.")
]
MaxInflightOpt = Annotated[
    int, typer.Option(min=1, help="Requests in progress before RESOURCE_EXHAUSTED.")
]
TlsCertOpt = Annotated[Path | None, typer.Option(help="PEM certificate chain (TLS).")]
TlsKeyOpt = Annotated[Path | None, typer.Option(help="PEM private key (TLS).")]
MetricsPortOpt = Annotated[int, typer.Option(help="Prometheus /metrics port (0: off).")]
BrowserOpt = Annotated[str, typer.Option(help="Neo4j Browser base for Explain links.")]
RecLogOpt = Annotated[
    str | None,
    typer.Option(
        "--recommendation-log",
        help="Log URL to write every Recommend answer to, topic `recommendations` "
        "(?recommendations=NAME for another); default: the log it follows.",
    ),
]
NoRecLogOpt = Annotated[
    bool, typer.Option("--no-recommendation-log", help="Do not log Recommend answers.")
]


ProcessesOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="Server processes on the one port (SO_REUSEPORT), each loading the model and "
        "following the change stream itself, restarted by this one when they exit; the kernel "
        "spreads connections across them. Process i serves /metrics on --metrics-port + i.",
    ),
]


@dataclass(frozen=True)
class ServeJob:
    """What one serving process runs (picklable: replicas get it in a spawned process)."""

    store_url: str
    models_dir: Path
    recommender: RecommenderConfig
    server: ServerConfig
    trending_url: str
    recommendation_log: str | None  # log URL of the recommendation log (None: off)
    follow_url: str | None  # log URL whose change stream to follow (None: do not)
    shadow: str | None = None  # --shadow VERSION
    ab: str | None = None  # --ab VERSION:FRACTION


def serve_command(
    store: StoreOpt = None,
    models_dir: ModelsOpt = None,
    address: AddressOpt = None,
    log: LogOpt = None,
    follow: FollowOpt = True,
    trending: TrendingOpt = None,
    fanouts: FanoutsOpt = "50,10",
    workers: WorkersOpt = 1,
    max_batch: MaxBatchOpt = 32,
    max_inflight: MaxInflightOpt = 64,
    token: TokenOpt = "",
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    metrics_port: MetricsPortOpt = 9464,
    browser_url: BrowserOpt = "http://127.0.0.1:7474/browser/",
    recommendation_log: RecLogOpt = None,
    no_recommendation_log: NoRecLogOpt = False,
    shadow: ShadowOpt = None,
    ab: AbOpt = None,
    processes: ProcessesOpt = 1,
) -> None:
    """Serve the gRPC Recommender: Recommend / ScoreItems / Explain over live neighbourhoods.

    Loads `<models>/current`, hot-reloads new versions, re-embeds the items the sink's change
    stream names, and exposes health, reflection and Prometheus metrics."""
    config = load_config()
    if bool(tls_cert) != bool(tls_key):
        raise typer.BadParameter("--tls-cert and --tls-key go together")
    follow_url = log or config.log_url
    parse_log_url(follow_url)  # a bad URL fails here, before anything starts
    if recommendation_log and no_recommendation_log:
        raise typer.BadParameter(
            "--recommendation-log and --no-recommendation-log exclude each other"
        )
    job = ServeJob(
        store_url=store or config.store_url,
        models_dir=models_dir or config.models_path,
        recommender=RecommenderConfig(fanouts=_fanouts(fanouts), browser_url=browser_url),
        server=ServerConfig(
            address=address or config.grpc_address,
            workers=workers,
            max_batch=max_batch,
            max_inflight=max_inflight,
            token=token,
            tls_cert=tls_cert,
            tls_key=tls_key,
            metrics_port=metrics_port,
            metrics_host=config.metrics_host,
        ),
        trending_url=trending or "",
        recommendation_log=None if no_recommendation_log else recommendation_log or follow_url,
        follow_url=follow_url if follow else None,
        shadow=shadow,
        ab=ab,
    )
    if processes == 1:
        serve(job)
    else:
        _serve_replicas(job, processes)


def _serve_replicas(job: ServeJob, processes: int) -> None:
    """``job`` as ``processes`` supervised replicas on one port, until SIGTERM/SIGINT."""
    try:
        replicas = Replicas(serve_replica, (job,), processes, job.server.address)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    line = started_line(replicas, job.server.metrics_host, job.server.metrics_port)
    run_replicas(replicas, lambda port: out.print(line(), highlight=False, soft_wrap=True))


def serve(
    job: ServeJob,
    on_started: Callable[[], object] | None = None,
    orphaned: Callable[[], bool] | None = None,
) -> None:
    """Run ``job`` in this process until SIGTERM/SIGINT (or until ``orphaned()``), calling
    ``on_started`` once it serves."""
    reclog = None if job.recommendation_log is None else log_config(job.recommendation_log)
    pinned = load_pinned_versions(job)
    with open_store(job.store_url) as graph:
        serving = Serving(
            graph,
            job.models_dir,
            job.recommender,
            job.server,
            trending_url=job.trending_url,
            recommendation_log=reclog,
        )
        _run(serving, graph, job.follow_url, on_started, orphaned, pinned)


def serve_replica(job: ServeJob, index: int, address: str, ready: Event, parent_pid: int) -> None:
    """Replica ``index`` of ``graphrec serve --processes N`` (``graphrec.replicas``): on the
    shared ``address``, its /metrics on the metrics port + ``index``; stops when its parent
    is gone."""
    metrics_port = job.server.metrics_port + index if job.server.metrics_port else 0
    server = replace(
        job.server, address=address, reuse_port=True, replica=index, metrics_port=metrics_port
    )
    serve(replace(job, server=server), ready.set, lambda: os.getppid() != parent_pid)


def _run(
    serving: Serving,
    graph: GraphStore,
    follow_url: str | None,
    on_started: Callable[[], object] | None = None,
    orphaned: Callable[[], bool] | None = None,
    pinned: Pinned | None = None,
) -> None:
    """Start the service (and the change feed on ``follow_url``; the shadow and A/B versions
    in ``pinned``), wait for SIGTERM/SIGINT, stop them all."""
    feed: ChangeFeed | None = None
    pinned = pinned or Pinned()
    try:
        pinned.attach(serving)
        port = serving.start()
        if follow_url is not None:
            feed = _feed(follow_url, graph, serving)
            feed.start()
        pinned.start(serving, graph, follow_url)
        config = serving.server.config
        metrics = (
            f"; metrics on http://{config.metrics_host}:{config.metrics_port}/metrics"
            if config.metrics_port
            else ""
        )
        who = "" if config.replica is None else f"replica {config.replica} (pid {os.getpid()}): "
        out.print(
            f"{who}serving graphrec.v1.Recommender on port {port} "
            f"(model {serving.registry.version}{pinned.describe()}){metrics}",
            soft_wrap=True,
        )
        if on_started is not None:
            on_started()
        _wait_for_a_stop_signal(orphaned)
    finally:
        pinned.stop()
        if feed is not None:
            feed.stop()
        serving.stop()


def _feed(log_url: str, graph: GraphStore, serving: Serving) -> ChangeFeed:
    """The change feed, its state and staleness in the service's /metrics, its state in
    gRPC health (the server must be running to take health)."""
    return serving_feed(log_url, graph, serving, serving.server.set_health)


def _fanouts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(f) for f in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"--fanouts takes integers like 50,10, got {text!r}") from None


def _wait_for_a_stop_signal(orphaned: Callable[[], bool] | None = None) -> None:
    """Block until SIGTERM or SIGINT (Ctrl-C), or until ``orphaned()`` (checked every
    second)."""
    stopped = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stopped.set())
    while not stopped.wait(1.0):
        if orphaned is not None and orphaned():
            log.warning("the parent process is gone: stopping")
            return

"""The ``graphrec replay`` command: options → load the past, replay the rest, report.

``graphrec.replay`` asks and produces, ``graphrec.replay_score`` scores,
``graphrec.replay_sync`` waits for the sink and probes the lag, ``graphrec.replay_offline``
computes the frozen-graph figure; the table, JSON and plot are made here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import grpc
import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn

from gnn.datasets.files import Columns
from graphrec.config import load_config
from graphrec.console import err
from graphrec.import_cli import (
    CategoryOpt,
    Col,
    FeaturesOpt,
    ItemOpt,
    SessionOpt,
    TimeOpt,
    TypeOpt,
    UserOpt,
    columns_of,
    rows_progress,
)
from graphrec.importer import read_files
from graphrec.pipeline import DATASETS, load_dataset
from graphrec.replay import History, ReplaySettings, Source, replay, split_index
from graphrec.replay_offline import load_engine, offline_scores
from graphrec.replay_report import ReplayReport, plot, print_table
from graphrec.replay_sync import LagProbe, sink_backlog, wait_for_sink
from protos import graphrec_pb2_grpc as pb_grpc
from streaming.produce import event_record, produce
from streaming.urls import open_writer, parse_log_url

out = Console()
RPC_TIMEOUT_S = 10.0

FilesArg = Annotated[
    list[Path] | None,
    typer.Argument(exists=True, dir_okay=False, help="Files to replay instead of --dataset."),
]
DatasetOpt = Annotated[
    str, typer.Option(help=f"Built-in dataset ({', '.join(DATASETS)}) when no files are named.")
]
SplitOpt = Annotated[
    str,
    typer.Option(
        help="The point in time: a share of the events (0.9: replay the last 10%), or a time "
        "(Unix seconds or ISO 8601, UTC unless it says)."
    ),
]
AssumeLoadedOpt = Annotated[
    bool, typer.Option(help="The events before the split are in the graph already.")
]
LoadOnlyOpt = Annotated[
    bool, typer.Option(help="Produce the events before the split, wait for the sink, stop.")
]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", "--server", help="host:port of `graphrec serve` (default: config)."),
]
TokenOpt = Annotated[
    str, typer.Option(envvar="GRAPHREC_TOKEN", help="Bearer token, if the server requires one.")
]
ProbeOpt = Annotated[
    int,
    typer.Option(
        min=0, help="Measure the lag on every Nth event while no other is being probed (0: off)."
    ),
]
OfflineOpt = Annotated[
    bool,
    typer.Option(
        help="Also score the same events with the starting version over the graph frozen at "
        "the split (needs --models: the service's model directory)."
    ),
]
PathOpt = Annotated[Path | None, typer.Option()]


def replay_command(
    files: FilesArg = None,
    dataset: DatasetOpt = "synthetic",
    events: Annotated[int, typer.Option(min=1, help="Interactions (synthetic).")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic generator.")] = 0,
    user: UserOpt = None,
    item: ItemOpt = None,
    time: TimeOpt = None,
    type_: TypeOpt = None,
    session: SessionOpt = None,
    category: CategoryOpt = None,
    title: Col = None,
    features: FeaturesOpt = "",
    split_at: SplitOpt = "0.9",
    assume_loaded: AssumeLoadedOpt = False,
    load_only: LoadOnlyOpt = False,
    to: Annotated[str | None, typer.Option("--to", help="Event log URL (default: config).")] = None,
    group: Annotated[str | None, typer.Option(help="The sink's consumer group.")] = None,
    load_timeout: Annotated[float, typer.Option(help="Seconds to wait for the sink.")] = 600.0,
    address: AddressOpt = None,
    token: TokenOpt = "",
    k: Annotated[
        int, typer.Option("-k", "--k", min=1, help="Items per answer (the K of @K).")
    ] = 20,
    speed: Annotated[float, typer.Option(min=0, help="N× event time (0: at once).")] = 0.0,
    probe_every: ProbeOpt = 50,
    offline: OfflineOpt = True,
    models: Annotated[Path | None, typer.Option(help="The service's models.")] = None,
    window: Annotated[int, typer.Option(min=1, help="Events per rolling hit rate.")] = 500,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the JSON here.")] = None,
    plot_path: Annotated[
        Path | None, typer.Option("--plot", help="Hit rate over time (PNG).")
    ] = None,
) -> None:
    """Replay history through the event log against the running service and score its answers.

    Produces the events before --split-at (unless --assume-loaded) and waits for the sink
    (--group). Then, per later event in time order at --speed: asks `graphrec serve` Recommend
    for its user or session (-k items, seen excluded), scores the answer against the event's
    item (HitRate, MRR, NDCG @K per behaviour, subject kind, cold items), produces the event;
    a sampled Explain probe measures the lag to the answer. --offline scores the same events
    with the starting version over the graph frozen at the split. Run the sink, the server and
    the periodic trainer yourself (--load-only loads the past first). Table, JSON (last line,
    --json), --plot: hit rate over time with the model version changes. See docs/replay.md.
    """
    config = load_config()
    columns = columns_of(user, item, time, type_, session, category, title, features)
    source = load_source(files, dataset, events, seed, columns, parse_split(split_at))
    log_url = to or config.log_url
    if not assume_loaded:
        load_past(source, log_url, group or config.group, load_timeout)
    if load_only:
        typer.echo(json.dumps({"loaded": len(source.before), "to": log_url}))
        return
    settings = ReplaySettings(k=k, speed=speed, probe_every=probe_every)
    server = Server(address or config.grpc_address, token)
    models_dir = (models or config.models_path) if offline else None
    report = run(source, log_url, server, settings, models_dir)
    _write(report, json_path, plot_path, window)


def _write(
    report: ReplayReport, json_path: Path | None, plot_path: Path | None, window: int
) -> None:
    """The table and the JSON on stdout (and in ``json_path``), the plot in ``plot_path``."""
    print_table(report)
    text = json.dumps(report.as_dict())
    if json_path is not None:
        json_path.write_text(text + "\n")
    typer.echo(text)
    if plot_path is not None:
        plot(report, window, plot_path)


@dataclass(frozen=True)
class Server:
    address: str
    token: str = ""


def parse_split(text: str) -> float:
    """``--split-at``: a number (share or Unix time) or an ISO 8601 time (UTC if naive)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"--split-at takes a share like 0.9, Unix seconds or an ISO 8601 time, got {text!r}"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def load_source(
    files: list[Path] | None, dataset: str, events: int, seed: int, columns: Columns, at: float
) -> Source:
    """The named files (read as `graphrec import` reads them) or the built-in dataset, split."""
    if files:
        result = read_files(files, columns)
        if result.rejects:
            err.print(f"{len(result.rejects)} rows rejected (see `graphrec import`)", markup=False)
        name, items, history = ",".join(p.name for p in files), result.items, result.events
    else:
        data = load_dataset(dataset, events, seed)
        name, items, history = data.name, data.items, data.interactions
    cut = split_index(history, at)
    if cut >= len(history):
        raise ValueError(f"nothing to replay: no event after --split-at {at:g}")
    return Source(name, list(items), list(history[:cut]), list(history[cut:]))


def load_past(source: Source, log_url: str, group: str, timeout_s: float) -> None:
    """Produce the catalogue and the events before the split, then wait for the sink."""
    address = parse_log_url(log_url)
    writer = open_writer(log_url)
    try:
        with rows_progress(MofNCompleteColumn()) as bar:
            task = bar.add_task("loading the past", total=len(source.before))
            produce(
                writer,
                source.items,
                source.before,
                events_topic=address.events,
                items_topic=address.items,
                progress=lambda n: bar.advance(task, n),
            )
    finally:
        _close(writer)
    err.print(f"waiting for the sink (group {group}) to apply them", highlight=False)
    wait_for_sink(lambda: sink_backlog(log_url, group), timeout_s)


def run(
    source: Source, log_url: str, server: Server, settings: ReplaySettings, models: Path | None
) -> ReplayReport:
    """Replay ``source.after`` against ``server``; with ``models``, the offline figure too."""
    metadata = (("authorization", f"Bearer {server.token}"),) if server.token else ()
    address = parse_log_url(log_url)
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.RecommenderStub(channel)

        def recommend(request):  # type: ignore[no-untyped-def]
            return stub.Recommend(request, metadata=metadata, timeout=RPC_TIMEOUT_S)

        history = History(source.before)
        first = recommend(history.request(source.after[0], settings.k))  # fails fast if down
        engine = load_engine(models, first.model_version) if models is not None else None
        probe = LagProbe(lambda r: stub.Explain(r, metadata=metadata, timeout=RPC_TIMEOUT_S))
        writer = open_writer(log_url)
        try:
            with rows_progress(MofNCompleteColumn()) as bar:
                task = bar.add_task("replaying", total=len(source.after))
                outcome = replay(
                    source.after,
                    history,
                    recommend,
                    lambda e: writer.send(address.events, [event_record(e)]),
                    settings,
                    probe.offer if settings.probe_every else None,
                    lambda n: bar.advance(task, n),
                )
        finally:
            probe.close()
            _close(writer)
    offline = None
    if engine is not None:
        err.print("scoring the same events over the graph frozen at the split", highlight=False)
        offline = offline_scores(
            source.items, source.before, source.after, outcome.scored, engine, settings.k
        )
    lag = probe.summary() if settings.probe_every else None
    return ReplayReport(source, settings.k, outcome, offline, lag)


def _close(thing: object) -> None:
    close = getattr(thing, "close", None)
    if close is not None:
        close()

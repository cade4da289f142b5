"""The ``graphrec import`` command: options → ``graphrec.importer.import_files``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from gnn.datasets.files import Columns
from graphrec.config import load_config
from graphrec.console import err
from graphrec.importer import ImportReport, import_files
from streaming.urls import create_log_topics

Col = Annotated[str | None, typer.Option(help="Column name (default: found by common names).")]


class RowsPerSecond(ProgressColumn):
    """``12,345 rows/s`` from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} rows/s")


FilesArg = Annotated[
    list[Path],
    typer.Argument(
        exists=True,
        dir_okay=False,
        help="CSV, TSV, JSON lines, Parquet or RecBole (.inter/.item/.user) files.",
    ),
]
ToOpt = Annotated[
    str | None, typer.Option("--to", help="Event log URL; default log://<data_dir>/log.")
]
UserOpt = Annotated[str | None, typer.Option(help="User column (user_id, user, … by default).")]
ItemOpt = Annotated[str | None, typer.Option(help="Item column (item_id, item, movie_id, …).")]
TimeOpt = Annotated[
    str | None,
    typer.Option(
        help="Time column (timestamp, ts, time, …): epoch seconds or ISO 8601. Without "
        "one, rows are one second apart in file order from 2000-01-01."
    ),
]
TypeOpt = Annotated[
    str | None,
    typer.Option("--type", help="Behaviour column: view, click, cart, purchase (default view)."),
]
SessionOpt = Annotated[
    str | None, typer.Option(help="Session column: the actor of rows without a user.")
]
CategoryOpt = Annotated[
    str | None, typer.Option(help="Category path column: root/child/leaf (or > or .).")
]
FeaturesOpt = Annotated[str, typer.Option(help="Numeric item feature columns, comma-separated.")]
SpeedOpt = Annotated[
    float, typer.Option(min=0, help="Replay at N× real time (0: as fast as possible).")
]
RejectsOpt = Annotated[
    Path | None,
    typer.Option(help="Rejects CSV for all files (default: <file>.rejects.csv beside each)."),
]
PartitionsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Create the items and events topics with N partitions (one consumer-group "
        "member reads each; default 4). A topic that exists keeps its own count.",
    ),
]


def create_partitioned_topics(log_url: str, partitions: int | None) -> None:
    """Create the log's topics with ``partitions`` partitions (``None``: leave that to the
    writer); warn on stderr about each existing topic with a different count."""
    if partitions is None:
        return
    for topic, count in create_log_topics(log_url, partitions).items():
        if count != partitions:
            err.print(
                f"warning: topic {topic} already exists with {count} partitions, not "
                f"{partitions}; it is left as it is (topics are not repartitioned: name new "
                "topics in the URL to get a different count)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )


def rows_progress(count: ProgressColumn | None = None) -> Progress:
    """A transient bar on stderr with rows/s; ``count`` shows how far (default: rows so far)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        count or TextColumn("{task.completed:,.0f}"),
        RowsPerSecond(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def columns_of(
    user: str | None,
    item: str | None,
    time: str | None,
    type_: str | None,
    session: str | None,
    category: str | None,
    title: str | None,
    features: str,
) -> Columns:
    """The column mapping the options name (``features``: comma-separated)."""
    names = tuple(f.strip() for f in features.split(",") if f.strip())
    return Columns(user, item, time, type_, session, category, title, names)


def import_command(
    files: FilesArg,
    to: ToOpt = None,
    user: UserOpt = None,
    item: ItemOpt = None,
    time: TimeOpt = None,
    type_: TypeOpt = None,
    session: SessionOpt = None,
    category: CategoryOpt = None,
    title: Col = None,
    features: FeaturesOpt = "",
    speed: SpeedOpt = 0.0,
    strict: Annotated[bool, typer.Option(help="Fail on the first bad row (exit 2).")] = False,
    rejects: RejectsOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="Wire format: proto or json.")] = "proto",
    partitions: PartitionsOpt = None,
) -> None:
    """Import interaction and item files into the event log, in event-time order.

    A file with a user or session column holds events; one with only an item column holds
    items. Bad rows go to the rejects file with line and reason; everything else is kept.
    Prints a JSON summary. `graphrec ingest` then writes the log into the graph.
    """
    columns = columns_of(user, item, time, type_, session, category, title, features)
    log_url = to or load_config().log_url
    create_partitioned_topics(log_url, partitions)
    with rows_progress() as bar:
        reading = bar.add_task("reading", total=None)
        sending = bar.add_task("producing", total=None, visible=False)

        def sent(n: int) -> None:
            bar.update(sending, visible=True, advance=n)

        report = import_files(
            files,
            log_url,
            columns,
            speed=speed,
            strict=strict,
            rejects_path=rejects,
            fmt=fmt,
            on_read=lambda n: bar.advance(reading, n),
            on_sent=sent,
        )
    _print(report, log_url)


def _print(report: ImportReport, log_url: str) -> None:
    """The first rejects and where the rest are on stderr; the summary as JSON on stdout."""

    def say(text: str) -> None:
        err.print(text, markup=False, highlight=False, soft_wrap=True)

    for line in report.first_rejects:
        say(f"rejected {line}")
    if report.rejected:
        say(f"{report.rejected} rejected rows in {', '.join(report.rejects_files)}")
    summary = {k: v for k, v in report.as_dict().items() if k != "first_rejects"}
    typer.echo(json.dumps({**summary, "to": log_url}))

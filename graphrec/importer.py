"""``graphrec import``: users' files → the event log, items first, events in event-time order.

Files are read by ``gnn.datasets.files`` (the reader ``eval --train/--test`` uses too), with
the time range the sink accepts (``streaming.codec``), so a row the sink would dead-letter
is rejected here, with its line. Events from all files are sorted by time (ties keep file
order) and produced by ``streaming.produce``; with ``speed`` > 0 they are paced at that
many times real time. Event ids are ``<file name>:<line>``: importing a file again is
dropped by the sink's event-id dedup window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gnn.datasets.files import SYNTHETIC_START, Columns, FileData, Reject, read_file, write_rejects
from graphstore import Interaction, ItemRecord
from streaming.codec import EARLIEST_TS
from streaming.produce import produce
from streaming.records import RecordWriter
from streaming.urls import open_writer, parse_log_url

PACE_CHUNK = 1_000  # most events sent at once when pacing
SHOWN_REJECTS = 5


@dataclass(frozen=True)
class ImportReport:
    """What an import read, wrote and rejected (and where the rejects went)."""

    files: int
    rows: int
    items: int
    events: int
    rejected: int
    rejects_files: list[str]
    first_rejects: list[str]  # up to ``SHOWN_REJECTS`` as ``path:line: reason``
    seconds: float
    rows_per_s: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class ReadResult:
    """Every file's records together: items (first description wins), events by time."""

    items: list[ItemRecord]
    events: list[Interaction]
    per_file: list[tuple[Path, FileData]]

    @property
    def rows(self) -> int:
        return sum(d.rows for _, d in self.per_file)

    @property
    def rejects(self) -> list[Reject]:
        return [r for _, d in self.per_file for r in d.rejects]


def read_files(
    paths: Sequence[Path],
    columns: Columns | None = None,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReadResult:
    """Read ``paths`` (one synthetic clock for files without times) within the sink's time
    range; events sorted by time, stable."""
    latest = time.time() + 86_400.0
    per_file: list[tuple[Path, FileData]] = []
    clock = SYNTHETIC_START
    for path in paths:
        data = read_file(
            path,
            columns or Columns(),
            strict=strict,
            synthetic_ts=clock,
            ts_range=(EARLIEST_TS, latest),
            progress=progress,
        )
        clock = data.next_synthetic_ts
        per_file.append((path, data))
    items: dict[str, ItemRecord] = {}
    for _, data in per_file:
        for item in data.items:
            items.setdefault(item.item_id, item)
    events = sorted((e for _, d in per_file for e in d.interactions), key=lambda e: e.ts)
    return ReadResult(list(items.values()), events, per_file)


def save_rejects(result: ReadResult, rejects_path: Path | None) -> list[str]:
    """Rejects to ``rejects_path`` (all files), else beside each file as
    ``<file>.rejects.csv``; only files with rejects are written. The paths written."""
    if rejects_path is not None:
        return [str(rejects_path)] if write_rejects(rejects_path, result.rejects) else []
    written = []
    for path, data in result.per_file:
        if data.rejects:
            target = path.with_name(path.name + ".rejects.csv")
            write_rejects(target, data.rejects)
            written.append(str(target))
    return written


def send_paced(
    writer: RecordWriter,
    events: Sequence[Interaction],
    speed: float,
    *,
    fmt: str = "proto",
    events_topic: str,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send ``events`` (time-ordered) so that each leaves ``(ts - first ts) / speed`` seconds
    after the start; ``speed`` 0: as fast as possible."""
    if speed <= 0 or not events:
        produce(writer, [], events, fmt=fmt, progress=progress, events_topic=events_topic)
        return
    start, first = clock(), events[0].ts
    i = 0
    while i < len(events):
        due = start + (events[i].ts - first) / speed
        if due > clock():
            sleep(due - clock())
        now_ts = first + (clock() - start) * speed
        j = i + 1
        while j < len(events) and j - i < PACE_CHUNK and events[j].ts <= now_ts:
            j += 1
        produce(writer, [], events[i:j], fmt=fmt, progress=progress, events_topic=events_topic)
        i = j


def import_files(
    paths: Sequence[Path],
    log_url: str,
    columns: Columns | None = None,
    *,
    speed: float = 0.0,
    strict: bool = False,
    rejects_path: Path | None = None,
    fmt: str = "proto",
    on_read: Callable[[int], None] | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> ImportReport:
    """Read ``paths``, write their rejects, then their items and events to ``log_url``."""
    started = time.perf_counter()
    address = parse_log_url(log_url)
    result = read_files(paths, columns or Columns(), strict, on_read)
    rejects_files = save_rejects(result, rejects_path)
    writer = open_writer(log_url)
    try:
        produce(writer, result.items, [], fmt=fmt, items_topic=address.items)
        send_paced(
            writer, result.events, speed, fmt=fmt, events_topic=address.events, progress=on_sent
        )
    finally:
        close = getattr(writer, "close", None)
        if close is not None:
            close()
    seconds = time.perf_counter() - started
    return ImportReport(
        files=len(paths),
        rows=result.rows,
        items=len(result.items),
        events=len(result.events),
        rejected=len(result.rejects),
        rejects_files=rejects_files,
        first_rejects=[str(r) for r in result.rejects[:SHOWN_REJECTS]],
        seconds=round(seconds, 3),
        rows_per_s=round(result.rows / seconds, 1) if seconds > 0 else 0.0,
    )

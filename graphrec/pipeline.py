"""Wiring of the ingest pipeline: dataset → log → sink → graph store."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace

from prometheus_client import CollectorRegistry, Counter

from gnn.datasets import Dataset, SyntheticConfig, generate, load_ml1m, load_ml100k
from graphstore import DedupWindow, GraphStore
from streaming.produce import ProduceReport, produce
from streaming.sink import Sink, SinkConfig, SinkStats
from streaming.urls import open_publisher, open_source, open_writer, parse_log_url

log = logging.getLogger(__name__)
DEFAULT_DEDUP = DedupWindow()
DATASETS = ("synthetic", "ml-100k", "ml-1m")


def load_dataset(name: str, events: int = 20_000, seed: int = 0) -> Dataset:
    """A dataset by name: ``synthetic`` (``events`` interactions, seeded), ``ml-100k`` or
    ``ml-1m``."""
    if name == "synthetic":
        return generate(SyntheticConfig(seed=seed, events=events))
    if name == "ml-100k":
        return load_ml100k()
    if name == "ml-1m":
        return load_ml1m()
    raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def produce_dataset(
    log_url: str,
    dataset: Dataset,
    fmt: str = "proto",
    malformed: int = 0,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> ProduceReport:
    """Write a dataset's items and events to the log at ``log_url``."""
    address = parse_log_url(log_url)
    return produce(
        open_writer(log_url),
        dataset.items,
        dataset.interactions,
        fmt=fmt,
        malformed=malformed,
        seed=seed,
        progress=progress,
        events_topic=address.events,
        items_topic=address.items,
    )


@dataclass(frozen=True)
class IngestSummary:
    applied: int
    skipped_replayed: int
    skipped_duplicate: int
    dead_lettered: int
    dead_letter_reasons: dict[str, int]
    changes_published: int
    batches: int
    retries: int
    seconds: float
    events_per_s: float

    @classmethod
    def of(cls, stats: SinkStats) -> IngestSummary:
        return cls(
            applied=stats.applied,
            skipped_replayed=stats.skipped_replayed,
            skipped_duplicate=stats.skipped_duplicate,
            dead_lettered=stats.dead_lettered,
            dead_letter_reasons=dict(stats.dead_letter_reasons),
            changes_published=stats.changes_published,
            batches=stats.batches,
            retries=stats.retries,
            seconds=round(stats.elapsed_s, 3),
            events_per_s=round(stats.events_per_s, 1),
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# SinkStats field → (metric name without _total, help)
SINK_COUNTERS = {
    "applied": ("graphrec_sink_applied", "Events and catalogue records written to the graph."),
    "dead_lettered": (
        "graphrec_sink_dead_lettered",
        "Records sent to the dead-letter topic (the reason is in its header).",
    ),
    "skipped_duplicate": (
        "graphrec_sink_duplicates_dropped",
        "Events dropped because their event id was accepted within the dedup window.",
    ),
    "skipped_replayed": (
        "graphrec_sink_replayed_skipped",
        "Records read again (after a restart or rebalance) that the graph already held.",
    ),
    "changes_published": (
        "graphrec_sink_changes_published",
        "Change-stream records published (one per node a graph commit touched).",
    ),
}


class SinkMetrics:
    """The sink's counts as Prometheus counters on ``registry``, from the running totals it
    reports after each batch (``observe`` is an ``on_batch`` callback)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._counters = {
            field: Counter(name, text, registry=registry)
            for field, (name, text) in SINK_COUNTERS.items()
        }
        self._seen = dict.fromkeys(SINK_COUNTERS, 0)

    def observe(self, stats: SinkStats) -> None:
        for field, counter in self._counters.items():
            total = getattr(stats, field)
            counter.inc(total - self._seen[field])
            self._seen[field] = total


def ingest(
    log_url: str,
    store: GraphStore,
    group: str,
    batch_size: int = 2_000,
    idle_exit_s: float | None = 1.0,
    on_batch: Callable[[SinkStats], None] | None = None,
    dedup: DedupWindow | None = DEFAULT_DEDUP,
) -> IngestSummary:
    """Run the sink from ``log_url`` into ``store`` until idle (or forever with ``None``).

    Events whose id was accepted within ``dedup`` are dropped (``None``: none are).
    SIGTERM and SIGINT stop it after the batch in hand is committed.
    """
    config = SinkConfig(batch_size=batch_size, dedup=dedup)
    sink = open_sink(log_url, store, group, config, on_batch)
    with _stop_on_signals(sink.stop), closing_all(sink.source, sink.dead_letters, sink.changes):
        stats = sink.run(idle_exit_s=idle_exit_s)
    summary = IngestSummary.of(stats)
    log.info("ingest finished: %s", summary)
    return summary


def open_sink(
    log_url: str,
    store: GraphStore,
    group: str,
    config: SinkConfig | None = None,
    on_batch: Callable[[SinkStats], None] | None = None,
) -> Sink:
    """A sink from the log at ``log_url`` (its items topic decoded as catalogue records),
    publishing each commit's changes to the log's change stream."""
    address = parse_log_url(log_url)
    config = replace(config or SinkConfig(), item_topics=(address.items,))
    source, changes = open_source(log_url, group), open_publisher(log_url)
    return Sink(source, store, open_writer(log_url), config, on_batch, changes)


@contextmanager
def running_sink(
    log_url: str, store: GraphStore, group: str, batch_size: int = 500
) -> Iterator[Sink]:
    """A sink following ``log_url`` in a background thread until the block ends."""
    sink = open_sink(log_url, store, group, SinkConfig(batch_size=batch_size, poll_timeout_s=0.01))
    thread = threading.Thread(target=sink.run, name="sink", daemon=True)
    thread.start()
    with closing_all(sink.source, sink.dead_letters, sink.changes):
        try:
            yield sink
        finally:
            sink.stop()
            thread.join(timeout=30)


def closing_all(*things: object) -> ExitStack:
    """A context that closes, on the way out, each thing with a ``close()`` (consumers,
    producers, logs: the streaming protocols do not all declare one)."""
    stack = ExitStack()
    for thing in things:
        close = getattr(thing, "close", None)
        if close is not None:
            stack.callback(close)
    return stack


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, lambda *_: stop())
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

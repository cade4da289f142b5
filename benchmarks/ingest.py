"""``graphrec bench ingest``: the sink's throughput beside a raw baseline measured in the same run.

* embedded store: the baseline is the same store's bare ``apply`` of the very batches the sink
  writes (same records, positions and grouping), read and decoded before the clock starts;
* Neo4j: the baseline is a raw neo4j-driver ``UNWIND … MERGE`` loop over the same events, after
  the store's ``upsert_items`` of the catalogue (timed, as the sink writes it too).

Also reports freshness (produce → visible in the graph) p50/p99 with the sink following the log,
and with ``workers`` > 1 (Kafka and Neo4j only: the embedded log has no consumer groups) the
events/s of 1 and ``workers`` sink processes in one group over a partitioned topic holding
the same events (``benchmarks.ingest_group``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import LiteralString
from urllib.parse import urlsplit

from benchmarks.freshness import measure_freshness
from benchmarks.ingest_group import group_rates
from gnn.datasets import Dataset, SyntheticConfig, generate
from graphrec.pipeline import closing_all, ingest, produce_dataset
from graphstore import Batch, GraphStore, open_store
from streaming.sink import decode_batch
from streaming.urls import open_source, parse_log_url


def bench_ingest(
    events: int = 50_000,
    batch_size: int = 2_000,
    store_url: str | None = None,
    log_url: str | None = None,
    freshness_trials: int = 100,
    seed: int = 0,
    workers: int = 1,
) -> dict[str, object]:
    """Events/s through log → decode → validate → apply → commit, beside the raw baseline.

    Both sides do the same graph work, catalogue included: the sink reads the catalogue items
    from the log along with the events, so each baseline writes them inside its timed window
    too. Both figures are interactions per second of that window.
    """
    check_group_urls(store_url, log_url, workers)
    dataset = generate(SyntheticConfig(seed=seed, events=events))
    work = Path(tempfile.mkdtemp(prefix="graphrec-bench-"))
    try:
        run_log = _fresh_log(log_url, work)
        produce_dataset(run_log, dataset)
        raw_driver = _on_a_server(store_url)
        # Read while the log holds only the dataset (freshness trials append to it later).
        total = len(dataset.items) + events
        batches = [] if raw_driver else _decoded_batches(run_log, batch_size, total)
        with _fresh_store(store_url, work / "sink") as store:
            summary = ingest(run_log, store, group="bench", batch_size=batch_size, idle_exit_s=1.0)
            sink_eps = (summary.applied - len(dataset.items)) / summary.seconds
            freshness = measure_freshness(run_log, store, trials=freshness_trials)
        with _fresh_store(store_url, work / "raw") as store:
            if raw_driver:
                raw_eps, baseline = (
                    _raw_neo4j_loop(store, dataset, batch_size),
                    "neo4j-driver UNWIND MERGE loop (+ store.upsert_items)",
                )
            else:
                raw_eps, baseline = (
                    _bare_apply(store, batches),
                    "store.apply of the sink's batches, decoded beforehand",
                )
            group = _group_figures(dataset, log_url, store, workers, batch_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "bench": "ingest",
        "store": store_url or "sqlite://<tmp>",
        "log": log_url or "log://<tmp>",
        "events": events,
        "batch_size": batch_size,
        "sink_events_per_s": round(sink_eps, 1),
        "baseline": baseline,
        "baseline_events_per_s": round(raw_eps, 1),
        # Four significant digits: the test compares this with the ratio of the rounded rates.
        "ratio": float(f"{sink_eps / raw_eps:.4g}"),
        "freshness_p50_ms": freshness["p50_ms"],
        "freshness_p99_ms": freshness["p99_ms"],
        **group,
        "goal": "ratio >= 0.5 (embedded) / 0.8 (neo4j); freshness p99 < 1000 ms",
    }


def _on_a_server(store_url: str | None) -> bool:
    return store_url is not None and urlsplit(store_url).scheme not in ("memory", "sqlite")


def check_group_urls(store_url: str | None, log_url: str | None, workers: int = 2) -> None:
    """Several sink processes need a log with consumer groups and a store they can share."""
    if workers == 1:
        return
    if log_url is None or urlsplit(log_url).scheme != "kafka":
        raise ValueError("--workers > 1 needs --from kafka://HOST:PORT (a consumer group)")
    if not _on_a_server(store_url):
        raise ValueError("--workers > 1 needs --store neo4j://… (one graph for every process)")


def _group_figures(
    dataset: Dataset,
    log_url: str | None,
    store: GraphStore,
    workers: int,
    batch_size: int,
) -> dict[str, object]:
    """Events/s of 1 and ``workers`` sink processes, and their ratio ({} for one worker)."""
    if workers == 1:
        return {}
    partitions = max(workers, 6)
    bootstrap = urlsplit(log_url or "").netloc
    rates = group_rates(dataset, bootstrap, store, workers, batch_size, partitions)
    return {
        "group_partitions": partitions,
        "processes_events_per_s": rates,
        "processes_scaling": round(rates[str(workers)] / rates["1"], 3),
    }


def _decoded_batches(log_url: str, batch_size: int, expected: int) -> list[Batch]:
    """The batches the sink writes (same polls, same positions), decoded before any timing."""
    address = parse_log_url(log_url)
    source = open_source(log_url, group=f"bench-baseline-{uuid.uuid4().hex[:8]}")
    batches, seen = [], 0
    deadline = time.monotonic() + 300.0
    with closing_all(source):
        while seen < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"baseline read {seen} of {expected} records from {log_url}")
            records = source.poll(batch_size, 0.5)
            if records:
                seen += len(records)
                d = decode_batch(records, (address.items,))
                batches.append(Batch(d.interactions, d.items, d.consumed))
    return batches


def _bare_apply(store: GraphStore, batches: list[Batch]) -> float:
    events = sum(len(b.interactions) for b in batches)
    started = time.perf_counter()
    for batch in batches:
        store.apply(batch)
    return events / (time.perf_counter() - started)


# The baseline a Neo4j user would write by hand: one MERGE per event row, no pre-aggregation,
# relationship type chosen per row by a FOREACH filter (labels and types cannot be parameters).
RAW_MERGE: LiteralString = """
UNWIND $rows AS r
MERGE (a:User {id: r.actor})
MERGE (i:Item {id: r.item})
FOREACH (_ IN CASE WHEN r.rel = 'VIEWED' THEN [1] ELSE [] END |
  MERGE (a)-[e:VIEWED]->(i) ON CREATE SET e.count = 0, e.first_ts = r.ts
  SET e.count = e.count + 1, e.last_ts = r.ts)
FOREACH (_ IN CASE WHEN r.rel = 'CLICKED' THEN [1] ELSE [] END |
  MERGE (a)-[e:CLICKED]->(i) ON CREATE SET e.count = 0, e.first_ts = r.ts
  SET e.count = e.count + 1, e.last_ts = r.ts)
FOREACH (_ IN CASE WHEN r.rel = 'CARTED' THEN [1] ELSE [] END |
  MERGE (a)-[e:CARTED]->(i) ON CREATE SET e.count = 0, e.first_ts = r.ts
  SET e.count = e.count + 1, e.last_ts = r.ts)
FOREACH (_ IN CASE WHEN r.rel = 'PURCHASED' THEN [1] ELSE [] END |
  MERGE (a)-[e:PURCHASED]->(i) ON CREATE SET e.count = 0, e.first_ts = r.ts
  SET e.count = e.count + 1, e.last_ts = r.ts)
"""


def _raw_neo4j_loop(store: GraphStore, dataset: Dataset, batch_size: int) -> float:
    """The same events through a bare driver loop (sessions mapped to User nodes: same work)."""
    driver = store._driver  # type: ignore[attr-defined]  # the bench reuses the store's connection
    rows = [
        {"actor": i.actor.key, "item": i.item_id, "rel": i.behaviour.relationship, "ts": i.ts}
        for i in dataset.interactions
    ]
    started = time.perf_counter()
    store.upsert_items(dataset.items)  # the sink writes the catalogue inside its window too
    with driver.session(database=store._database) as session:  # type: ignore[attr-defined]
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            session.execute_write(lambda tx, c=chunk: tx.run(RAW_MERGE, rows=c).consume())
    return len(rows) / (time.perf_counter() - started)


def _fresh_log(url: str | None, work: Path) -> str:
    """An empty log for this run: a new embedded log, or new topics on the given Kafka."""
    if url is None:
        return f"log://{work / 'log'}"
    parts = urlsplit(url)
    if parts.scheme != "kafka":
        raise ValueError(f"bench --from takes a kafka:// URL (or nothing), got {url!r}")
    run = f"bench-{uuid.uuid4().hex[:8]}"
    return f"kafka://{parts.netloc}/{run}-events?items={run}-items&changes={run}-changes"


@contextmanager
def _fresh_store(url: str | None, path: Path) -> Iterator[GraphStore]:
    """A new embedded store at ``path``, or the store at ``url`` emptied."""
    store = open_store(url or f"sqlite://{path}")
    try:
        if url is not None:
            store.reset()
        yield store
    finally:
        store.close()

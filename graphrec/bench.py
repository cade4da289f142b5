"""``graphrec bench ingest``: the sink's throughput beside the same store's bulk write, same run."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import ingest, produce_dataset
from graphstore import Batch, GraphStore, Position, Positioned, open_store


def bench_ingest(
    events: int = 50_000, batch_size: int = 2_000, store_url: str | None = None, seed: int = 0
) -> dict[str, object]:
    """Events/s through log → decode → validate → apply → commit, and through bare ``apply``.

    Both runs write the same events into an empty store of the same kind, with the same
    batch size; the baseline skips the log and the codec (events are decoded beforehand).
    """
    dataset = generate(SyntheticConfig(seed=seed, events=events))
    work = Path(tempfile.mkdtemp(prefix="graphrec-bench-"))
    try:
        log_url = f"log://{work / 'log'}"
        produce_dataset(log_url, dataset)
        with _fresh_store(store_url, work / "sink") as store:
            summary = ingest(log_url, store, group="bench", batch_size=batch_size, idle_exit_s=0.3)
            sink_eps = summary.applied / summary.seconds
        with _fresh_store(store_url, work / "raw") as store:
            store.upsert_items(dataset.items)
            started = time.perf_counter()
            for start in range(0, len(dataset.interactions), batch_size):
                chunk = dataset.interactions[start : start + batch_size]
                records = [
                    Positioned(i, Position("raw", 0, start + n)) for n, i in enumerate(chunk)
                ]
                store.apply(Batch(interactions=records))
            raw_eps = len(dataset.interactions) / (time.perf_counter() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "bench": "ingest",
        "store": store_url or "memory://<tmp>",
        "events": events,
        "batch_size": batch_size,
        "sink_events_per_s": round(sink_eps, 1),
        "raw_apply_events_per_s": round(raw_eps, 1),
        "ratio": round(sink_eps / raw_eps, 3),
        "goal": ">= 0.5",
    }


def _fresh_store(url: str | None, path: Path) -> GraphStore:
    if url is None:
        return open_store(f"memory://{path}")
    store = open_store(url)
    reset = getattr(store, "reset", None)
    if reset is None:
        raise ValueError(f"{url}: this store cannot be reset for a benchmark")
    reset()
    return store

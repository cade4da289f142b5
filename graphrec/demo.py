"""``graphrec demo``: the pipeline end to end on the embedded default, narrated."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from graphrec.pipeline import ingest, load_dataset, produce_dataset
from graphstore import open_store


def run_demo(data_dir: Path, events: int, out: Console) -> dict[str, object]:
    """Produce synthetic events (some malformed) → ingest into the graph → report."""
    started = time.perf_counter()
    log_url = f"log://{data_dir / 'log'}"
    store_url = f"memory://{data_dir / 'graph'}"
    malformed = max(1, events // 100)

    out.rule("1. produce")
    dataset = load_dataset("synthetic", events, seed=0)
    report = produce_dataset(log_url, dataset, malformed=malformed)
    out.print(
        f"wrote {report.items} items and {report.events} events "
        f"(+{report.malformed} malformed) to {log_url}"
    )

    out.rule("2. ingest")
    with open_store(store_url) as store:
        summary = ingest(log_url, store, group="demo", idle_exit_s=0.5)
        out.print(
            f"applied {summary.applied} events at {summary.events_per_s:,.0f} events/s; "
            f"dead-lettered {summary.dead_lettered} to events.dlq {summary.dead_letter_reasons}"
        )
        stats = store.stats()
    out.print_json(json.dumps(asdict(stats)))
    result = {"seconds": round(time.perf_counter() - started, 1), **summary.as_dict()}
    out.rule(f"done in {result['seconds']} s")
    return result

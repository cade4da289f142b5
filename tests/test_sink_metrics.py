"""``graphrec ingest --follow --metrics-port`` serves the sink's counts on /metrics: what it
applied, dead-lettered, dropped as duplicates and skipped as replays, the same numbers as
its summary. A real process on the embedded log, scraped over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import produce_dataset
from tests.faults.test_changefeed import closed_port
from tests.integration.waiting import wait_until

MALFORMED = 7


def scrape(port: int) -> dict[str, float]:
    """The sink's counters on the page (empty while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as page:
            text = page.read().decode()
    except OSError:
        return {}
    return {
        name: float(value)
        for name, value in re.findall(r"^(graphrec_sink_\w+_total) (\S+)$", text, re.MULTILINE)
    }


def test_ingest_follow_serves_its_counts(tmp_path: Path) -> None:
    log_url = f"log://{tmp_path / 'log'}"
    dataset = generate(SyntheticConfig(seed=5, events=400, users=40, items=60))
    produce_dataset(log_url, dataset, malformed=MALFORMED)
    produce_dataset(log_url, dataset)  # every event resent: the same ids, new offsets
    events = len(dataset.interactions)
    port = closed_port()
    args = ["ingest", "--follow", "--from", log_url, "--store", f"sqlite://{tmp_path / 'g'}"]
    process = subprocess.Popen(
        [sys.executable, "-m", "graphrec", *args, "--metrics-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GRAPHREC_DATA_DIR": str(tmp_path)},
    )
    page: dict[str, float] = {}
    try:
        duplicates = "graphrec_sink_duplicates_dropped_total"
        wait_until(
            "every resent event dropped",
            lambda: scrape(port).get(duplicates) == events,
            120,
        )
        page = scrape(port)  # the resent events come last: everything is counted by now
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert page == {
        "graphrec_sink_applied_total": summary["applied"],
        "graphrec_sink_dead_lettered_total": summary["dead_lettered"],
        "graphrec_sink_duplicates_dropped_total": summary["skipped_duplicate"],
        "graphrec_sink_replayed_skipped_total": summary["skipped_replayed"],
        "graphrec_sink_changes_published_total": summary["changes_published"],
    }
    assert summary["dead_lettered"] == MALFORMED and summary["applied"] > 0

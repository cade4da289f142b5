"""``graphrec bench pipeline`` at 100k events through Kafka into Neo4j, as CI keeps it: every
stage a `graphrec` process on the real servers, its figures beside their baselines, and the
graph left holding every event of the run's own new topics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks.ingest_group import end_offsets
from graphstore.neo4j import Neo4jGraphStore
from tests.integration.servers import Servers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 100_000


def test_bench_pipeline_at_100k_events_on_kafka_and_neo4j(servers: Servers) -> None:
    args = ["--events", str(EVENTS), "--epochs", "1", "--seconds", "1", "--levels", "1,8"]
    args += ["--from", f"kafka://{servers.kafka}", "--store", servers.neo4j]
    done = subprocess.run(
        [sys.executable, "-m", "graphrec", "bench", "pipeline", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["events"] == EVENTS and out["store"] == servers.neo4j
    stages = out["stages"]
    for name, stage in stages.items():
        assert stage["process"].startswith(f"graphrec {name} ") and stage["peak_rss_mb"] > 50
    ingest = stages["ingest"]
    assert ingest["baseline"].startswith("neo4j-driver UNWIND MERGE loop")
    assert ingest["sink_events_per_s"] > 0 and ingest["baseline_events_per_s"] > 0
    assert stages["train"]["epochs"] == 1 and stages["train"]["epoch_s"] > 0
    for level in stages["serve"]["levels"].values():
        assert level["requests"] > 0 and level["errors"] == {}

    run = out["run"]
    ends = end_offsets(servers.kafka, [f"{run}-events", f"{run}-items"])
    assert sum(o for (topic, _), o in ends.items() if topic == f"{run}-events") == EVENTS
    store = Neo4jGraphStore.from_url(servers.neo4j)
    try:
        marks = store.watermarks()
        assert {tp: marks.get(tp, -1) + 1 for tp in ends} == ends  # the sink read it all
        assert store.stats().interactions > 0
    finally:
        store.close()

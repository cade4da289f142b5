"""``graphrec bench ingest --workers 2`` as a user runs it, at a small size: the JSON last line
holds the events/s of 1 and 2 sink processes in one group beside the same run's baseline."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from graphrec.cli import app
from tests.integration.servers import Servers

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_bench_ingest_measures_one_and_two_sink_processes(servers: Servers) -> None:
    args = ["bench", "ingest", "--events", "4000", "--workers", "2", "--trials", "3"]
    args += ["--from", f"kafka://{servers.kafka}", "--store", servers.neo4j]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    rates = out["processes_events_per_s"]
    assert set(rates) == {"1", "2"} and min(rates.values()) > 0
    assert out["processes_scaling"] == pytest.approx(rates["2"] / rates["1"], rel=1e-2)
    assert out["baseline_events_per_s"] > 0 and out["group_partitions"] == 6


def test_bench_ingest_refuses_workers_without_kafka_and_neo4j() -> None:
    result = CliRunner().invoke(app, ["bench", "ingest", "--events", "1000", "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers > 1 needs --from kafka://" in result.output

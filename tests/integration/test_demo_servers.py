"""`graphrec demo --kafka --neo4j`: the whole pipeline on the real servers, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.servers import Servers
from tests.test_cli import DEMO_STEPS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_on_kafka_and_neo4j(servers: Servers, tmp_path: Path) -> None:
    if (servers.kafka, servers.neo4j) != ("127.0.0.1:9092", "neo4j://127.0.0.1:7687"):
        pytest.skip("the demo's --kafka/--neo4j use the default ports")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphrec",
            "demo",
            "--kafka",
            "--neo4j",
            "--events",
            "5000",
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "COLUMNS": "250"},  # one line per message
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "to kafka://127.0.0.1:9092/demo-" in out
    for step in DEMO_STEPS:
        assert step in out, step

"""Real Kafka and Neo4j for integration tests, never mocked, and never started by the tests:
``deploy/services.sh up`` (or ``scripts/test``, which runs it) starts them.

They are looked for on 127.0.0.1:9092 and neo4j://127.0.0.1:7687, or where
``GRAPHREC_KAFKA_BOOTSTRAP`` and ``GRAPHREC_NEO4J_URL`` say.
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "deploy" / "services.sh"


@dataclass(frozen=True)
class Servers:
    kafka: str  # host:port
    neo4j: str  # neo4j://host:port

    @property
    def neo4j_http(self) -> str:
        return os.environ.get("GRAPHREC_NEO4J_HTTP", "http://127.0.0.1:7474")


def ensure_servers() -> Servers:
    """The running servers' addresses; fails the test in one line if either does not answer."""
    servers = Servers(
        os.environ.get("GRAPHREC_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        os.environ.get("GRAPHREC_NEO4J_URL", "neo4j://127.0.0.1:7687"),
    )
    bolt = urlsplit(servers.neo4j)
    down = [
        name
        for name, host, port in (
            ("Kafka", *servers.kafka.rsplit(":", 1)),
            ("Neo4j", bolt.hostname or "127.0.0.1", str(bolt.port or 7687)),
        )
        if not _listening(host, int(port))
    ]
    if down:
        pytest.fail(
            f"{' and '.join(down)} not running ({servers.kafka}, {servers.neo4j}): start them "
            "with `deploy/services.sh up`, or run scripts/test, which does; "
            'or deselect these tests with -m "not integration"',
            pytrace=False,
        )
    return servers


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return True
    except OSError:
        return False


def services(*args: str) -> None:
    """Run deploy/services.sh (e.g. ``services("restart", "kafka")``) for fault tests."""
    subprocess.run([str(SERVICES), *args], check=True, timeout=600)

"""Real Kafka and Neo4j for integration tests: started by deploy/services.sh, never mocked.

``GRAPHREC_KAFKA_BOOTSTRAP`` and ``GRAPHREC_NEO4J_URL`` point the tests at servers that are
already running; otherwise the session fixture runs ``deploy/services.sh up`` (idempotent).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

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
    """Running servers' addresses, starting them with deploy/services.sh when needed."""
    kafka = os.environ.get("GRAPHREC_KAFKA_BOOTSTRAP")
    neo4j = os.environ.get("GRAPHREC_NEO4J_URL")
    if not (kafka and neo4j):
        subprocess.run([str(SERVICES), "up"], check=True, timeout=900)
    return Servers(kafka or "127.0.0.1:9092", neo4j or "neo4j://127.0.0.1:7687")


def services(*args: str) -> None:
    """Run deploy/services.sh (e.g. ``services("restart", "kafka")``) for fault tests."""
    subprocess.run([str(SERVICES), *args], check=True, timeout=600)

"""A wrong password against the real Neo4j: one line and exit 4, not a traceback.

Kept to one login attempt per run: repeated wrong passwords make Neo4j refuse every login
for a while (AuthenticationRateLimit, also exit 4; tests/test_cli_faults.py covers it).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.console import ExitCode
from tests.integration.servers import Servers


@pytest.mark.integration
def test_a_wrong_neo4j_password_is_one_line(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPHREC_NEO4J_PASSWORD", "wrong")
    result = CliRunner().invoke(app, ["stats", "--store", servers.neo4j])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == ExitCode.AUTH_REFUSED, result.stderr
    assert len(lines) == 1 and "Neo4j" in lines[0] and "GRAPHREC_NEO4J_PASSWORD" in lines[0]
    assert "Traceback" not in result.output

"""Every command × every failure a user can meet: one line on stderr saying what and what to
do, and the documented exit code (graphrec.console.ExitCode), never a traceback.

Servers that are "down" are closed local ports; a Neo4j that refuses logins is the driver
raising the error the server sends (the real exception class, built the way the driver
builds it from the server's answer). tests/faults/test_cli_auth.py tries a wrong password on
the real Neo4j, and the subprocess rows below show nothing else reaches stderr from outside.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest
from neo4j.exceptions import Neo4jError
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.console import ExitCode, describe

runner = CliRunner()
KAFKA_DOWN = "kafka://127.0.0.1:1"
NEO4J_DOWN = "neo4j://127.0.0.1:2"
NEO4J = "neo4j://127.0.0.1:7687"  # only reached through the refusing driver below
RATE_LIMIT = "Neo.ClientError.Security.AuthenticationRateLimit"
DEMO = ["demo", "--data-dir", "{tmp}/demo", "--events", "100"]


def neo4j_error(code: str) -> Neo4jError:
    """The exception the driver raises for a server FAILURE with this code."""
    return Neo4jError._hydrate_neo4j(code=code, message=f"refused ({code})")


class RefusingDriver:
    """A driver whose connectivity check gets ``error`` back from the server."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def verify_connectivity(self) -> None:
        raise self.error

    def close(self) -> None:
        pass


@pytest.fixture
def held_port() -> Iterator[int]:
    """A local port something else is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


# (command line with {store}/{port}/{tmp} placeholders, what goes wrong, exit code, a word the
# message must hold)
STORE_COMMANDS = [
    ["stats", "--store", "{store}"],
    ["ingest", "--from", "log://{tmp}/log", "--store", "{store}", "--idle-exit", "0.1"],
    ["train", "--store", "{store}", "--models-dir", "{tmp}/models"],
    ["serve", "--store", "{store}", "--address", "127.0.0.1:0", "--metrics-port", "0"],
]
STORE_FAULTS = [
    ("bad-url", "foo://", ExitCode.USAGE, "unknown graph store URL"),
    ("neo4j-down", NEO4J_DOWN, ExitCode.UNREACHABLE, "Neo4j at neo4j://127.0.0.1:2"),
    ("wrong-password", NEO4J, ExitCode.AUTH_REFUSED, "GRAPHREC_NEO4J_PASSWORD"),
    ("rate-limited", NEO4J, ExitCode.AUTH_REFUSED, "wait a few minutes"),
]
KAFKA_DOWN_ROWS = [
    (["produce", "--events", "100", "--to", KAFKA_DOWN], ExitCode.UNREACHABLE, "Kafka"),
    (["ingest", "--from", KAFKA_DOWN, "--store", "memory://"], ExitCode.UNREACHABLE, "Kafka"),
    (
        ["ingest", "--follow", "--from", KAFKA_DOWN, "--store", "memory://"],
        ExitCode.UNREACHABLE,
        "Kafka",
    ),
    (["trending", "--from", KAFKA_DOWN, "--web-port", "{port}"], ExitCode.UNREACHABLE, "Kafka"),
    (
        [*DEMO, "--kafka", "--kafka-address", KAFKA_DOWN.removeprefix("kafka://")],
        ExitCode.UNREACHABLE,
        "Kafka",
    ),
    (
        [*DEMO, "--neo4j", "--neo4j-url", NEO4J_DOWN],
        ExitCode.UNREACHABLE,
        "Neo4j at neo4j://127.0.0.1:2",
    ),
]
OTHER_ROWS = [
    (["produce", "--to", "http://x"], ExitCode.USAGE, "unknown log URL"),
    (["ingest", "--from", "http://x", "--store", "memory://"], ExitCode.USAGE, "unknown log URL"),
    (
        ["serve", "--store", "memory://", "--from", "http://x", "--metrics-port", "0"],
        ExitCode.USAGE,
        "unknown log URL",
    ),
    (["train", "--store", "memory://", "--model", "nope"], ExitCode.USAGE, "unknown model"),
    (["train", "--mode", "nope"], ExitCode.USAGE, "unknown mode"),
    (
        ["train", "--store", "memory://", "--models-dir", "{tmp}/models"],
        ExitCode.USAGE,
        "the graph holds no interactions: ingest events first (graphrec ingest)",
    ),
    (["recommend", "--user", "u1", "--address", "127.0.0.1:1"], ExitCode.UNREACHABLE, "serve"),
    (
        ["explain", "--user", "u1", "--item", "i1", "--address", "127.0.0.1:1"],
        ExitCode.UNREACHABLE,
        "serve",
    ),
    (["recommend"], ExitCode.USAGE, "exactly one of"),
    (["bench", "serve", "--levels", "x"], ExitCode.USAGE, "invalid literal"),
    (
        ["serve", "--store", "memory://", "--address", "127.0.0.1:{port}", "--metrics-port", "0"],
        ExitCode.ADDRESS_IN_USE,
        "127.0.0.1:",
    ),
    (
        ["serve", "--store", "memory://", "--address", "127.0.0.1:0", "--metrics-port", "{port}"],
        ExitCode.ADDRESS_IN_USE,
        "cannot listen on 127.0.0.1:{port} ",
    ),
]


def assert_one_line(result: object, code: ExitCode, word: str) -> None:
    stderr = result.stderr  # type: ignore[attr-defined]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert result.exit_code == code, stderr  # type: ignore[attr-defined]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and word in lines[0]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


def run(args: list[str], tmp_path: Path, port: int = 0, store: str = "") -> object:
    filled = [a.format(tmp=tmp_path, port=port, store=store) for a in args]
    return runner.invoke(app, filled)


@pytest.mark.parametrize("args", STORE_COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize(("fault", "store", "code", "word"), STORE_FAULTS, ids=lambda f: f)
def test_store_faults(
    args: list[str],
    fault: str,
    store: str,
    code: ExitCode,
    word: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAPHREC_NEO4J_PASSWORD", "whatever")
    refusal = {
        "wrong-password": neo4j_error("Neo.ClientError.Security.Unauthorized"),
        "rate-limited": neo4j_error(RATE_LIMIT),
    }.get(fault)
    if refusal is not None:
        monkeypatch.setattr(neo4j.GraphDatabase, "driver", lambda *a, **k: RefusingDriver(refusal))
    assert_one_line(run(args, tmp_path, store=store), code, word)


@pytest.mark.parametrize(
    ("args", "code", "word"),
    KAFKA_DOWN_ROWS + OTHER_ROWS,
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_other_faults(
    args: list[str], code: ExitCode, word: str, tmp_path: Path, held_port: int
) -> None:
    assert_one_line(run(args, tmp_path, port=held_port), code, word.format(port=held_port))


def test_a_bad_setting_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRAPHREC_BATCH_SIZE", "0")
    for args in (["stats"], ["serve", "--metrics-port", "0"]):
        assert_one_line(runner.invoke(app, args), ExitCode.USAGE, "batch_size")


def test_the_rate_limit_is_told_apart_from_other_client_errors() -> None:
    assert describe(neo4j_error(RATE_LIMIT)).code is ExitCode.AUTH_REFUSED
    other = describe(neo4j_error("Neo.ClientError.Statement.SyntaxError"))
    assert other.code is ExitCode.UNEXPECTED and "-v" in other.message


def test_a_bug_is_one_line_and_verbose_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr("graphrec.cli.load_dataset", broken)
    quiet = runner.invoke(app, ["produce"])
    assert_one_line(quiet, ExitCode.UNEXPECTED, "graphrec -v")
    loud = runner.invoke(app, ["-v", "produce"])
    assert loud.exit_code == ExitCode.UNEXPECTED and "Traceback" in loud.stderr


def test_help_documents_every_exit_code() -> None:
    shown = runner.invoke(app, ["--help"])
    for code in ExitCode:
        assert f"\n {int(code):>3}  " in shown.output.replace("│", "")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["produce", "--events", "100", "--to", KAFKA_DOWN], ExitCode.UNREACHABLE),
        (["train", "--store", NEO4J_DOWN], ExitCode.UNREACHABLE),
        (
            ["serve", "--store", "memory://", "--address", "127.0.0.1:{port}"],
            ExitCode.ADDRESS_IN_USE,
        ),
    ],
)
def test_from_outside_stderr_is_one_line(
    args: list[str], code: ExitCode, held_port: int, tmp_path: Path
) -> None:
    """Driver loggers and gRPC core print on stderr too: a real process shows they keep quiet."""
    env = {**os.environ, "GRAPHREC_DATA_DIR": str(tmp_path)}
    env.pop("GRPC_VERBOSITY", None)
    done = subprocess.run(
        [sys.executable, "-m", "graphrec", *(a.format(port=held_port) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == code, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr

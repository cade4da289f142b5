"""The command line as a user runs it: a subprocess for the demo, typer's runner for the rest."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphrec.cli import app

runner = CliRunner()
# what `graphrec demo` must report doing, on any backend
DEMO_STEPS = (
    "dead-lettered",
    "trained",
    "gRPC Recommender",
    "Recommend(user",
    "Explain(",
    "fresh session",
    "similar to item",
    "after its first click",
    "cold-start item",
    "done in",
)


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("produce", "ingest", "stats", "demo", "bench", "serve", "recommend", "explain"):
        assert command in result.output


def test_produce_ingest_stats_round_trip(tmp_path: Path) -> None:
    log, store = f"log://{tmp_path / 'log'}", f"sqlite://{tmp_path / 'g'}"
    produced = runner.invoke(app, ["produce", "--events", "500", "--malformed", "5", "--to", log])
    assert produced.exit_code == 0, produced.output
    assert json.loads(produced.stdout.splitlines()[-1])["events"] == 500
    ingested = runner.invoke(app, ["ingest", "--from", log, "--store", store, "--idle-exit", "0.2"])
    summary = json.loads(ingested.stdout.splitlines()[-1])
    assert summary["dead_lettered"] == 5
    assert summary["applied"] == 500 + 2_000  # events + catalogue items
    stats = json.loads(runner.invoke(app, ["stats", "--store", store]).stdout)
    assert stats["interactions"] == 500


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stats", "--store", "redis://x"], "unknown graph store URL"),
        (["produce", "--dataset", "imdb"], "unknown dataset"),
        (["produce", "--to", "ftp://x"], "unknown log URL"),
        (["eval", "--mode", "minibatch", "--models", "pop"], "unknown mode"),
        (["train", "--mode", "minibatch"], "unknown mode"),
        (["eval", "--supervision", "future", "--models", "pop"], "unknown supervision"),
        (["train", "--supervision", "future"], "unknown supervision"),
    ],
)
def test_bad_urls_and_names_get_clear_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


def test_bench_ingest_prints_ratio_json_last(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "ingest", "--events", "2000", "--trials", "5"])
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["bench"] == "ingest"
    # The ratio carries 4 significant digits (relative rounding error <= 5e-4) and the rates
    # one decimal of thousands of events/s, so 1e-3 covers rounding, not a wrong ratio.
    assert figures["ratio"] == pytest.approx(
        figures["sink_events_per_s"] / figures["baseline_events_per_s"], rel=1e-3
    )
    assert 0 < figures["freshness_p50_ms"] <= figures["freshness_p99_ms"]


def test_plot_without_matplotlib_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the `plot` extra were absent
    result = runner.invoke(app, ["eval", "--models", "pop", "--plot", "out.png"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --plot needs matplotlib: pip install 'graphrec[plot]'"
    ]


def test_bench_commands_are_mounted() -> None:
    shown = runner.invoke(app, ["bench", "--help"])
    assert shown.exit_code == 0
    for command in ("ingest", "sample", "train", "serve"):
        assert command in shown.output


def test_product_code_never_imports_benchmarks() -> None:
    """Only the `graphrec bench` commands load benchmarks, and only when they run."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, graphrec.cli; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "'benchmarks" not in loaded
    root = Path(__file__).resolve().parents[1]
    importers = [
        path.relative_to(root).as_posix()
        for package in ("graphrec", "graphstore", "streaming", "gnn", "serving")
        for path in (root / package).rglob("*.py")
        if "benchmarks" in {n.split(".")[0] for n in _imported(path)}
    ]
    assert importers == ["graphrec/bench_cli.py"]


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "graphrec", "demo", "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "250"},  # one line per message
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for step in DEMO_STEPS:
        assert step in out.stdout, step

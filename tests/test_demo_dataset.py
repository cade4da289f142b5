"""`graphrec demo --dataset`: the demo on a built-in dataset instead of synthetic events."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphrec.cli import app
from tests.test_cli import DEMO_STEPS


def test_an_unknown_dataset_is_refused_before_the_data_dir_is_wiped(tmp_path: Path) -> None:
    kept = tmp_path / "demo" / "kept.txt"
    kept.parent.mkdir()
    kept.write_text("mine")
    args = ["demo", "--dataset", "ml-10m", "--data-dir", str(kept.parent)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "unknown dataset 'ml-10m'" in result.output and "ml-100k" in result.output
    assert kept.read_text() == "mine"


@pytest.mark.slow
def test_demo_runs_end_to_end_on_ml_100k(tmp_path: Path) -> None:
    args = ["demo", "--dataset", "ml-100k", "--epochs", "2", "--data-dir", str(tmp_path / "d")]
    out = subprocess.run(
        [sys.executable, "-m", "graphrec", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "COLUMNS": "250"},  # one line per message
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "wrote 1682 items and 155375 ml-100k events" in out.stdout
    for step in DEMO_STEPS:
        assert step in out.stdout, step

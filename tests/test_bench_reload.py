"""``graphrec bench reload`` as a user runs it: the JSON last line holds the load and the raw
read of the same version from the same run, measured, and the ratio of the two it prints; at
the server's threshold the version holds its usearch index, which the raw read reads too."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from benchmarks.reload import bench_reload
from gnn.ann import EXACT_THRESHOLD
from graphrec.cli import app


def test_bench_reload_times_the_load_beside_the_raw_read_of_the_same_version() -> None:
    result = CliRunner().invoke(
        app, ["bench", "reload", "--items", "2000", "--repeats", "2", "--no-index"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["bench"] == "reload" and out["items"] == 2_000
    assert len(out["raw_s_all"]) == len(out["load_s_all"]) == 2
    assert out["raw_s"] > 0 and 0 < out["verify_s"] < out["load_s"]
    half = 5e-5  # seconds are printed to 4 decimals, the ratio to 3
    low = (out["load_s"] - half) / (out["raw_s"] + half) - 5e-4
    high = (out["load_s"] + half) / (out["raw_s"] - half) + 5e-4
    assert low <= out["ratio"] <= high, out
    assert out["exact_threshold"] == 2_001 and not out["index_in_version"]  # --no-index


def test_at_the_threshold_the_bench_loads_the_versions_index_and_reads_it_raw() -> None:
    out = bench_reload(items=EXACT_THRESHOLD, repeats=1, progress=lambda line: None)
    assert out["exact_threshold"] == EXACT_THRESHOLD and out["index_in_version"]
    assert out["index_mb"] > 0 and out["index_build_s"] > 0
    assert 0 < out["raw_s"] < out["hashed_raw_s"] and out["verify_s"] > 0

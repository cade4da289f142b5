"""``graphrec bench reload`` as a user runs it: the JSON last line holds the load and the raw
read of the same version from the same run, measured, and the ratio of the two it prints."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from graphrec.cli import app


def test_bench_reload_times_the_load_beside_the_raw_read_of_the_same_version() -> None:
    result = CliRunner().invoke(
        app, ["bench", "reload", "--items", "2000", "--repeats", "2", "--no-index"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["bench"] == "reload" and out["items"] == 2_000 and not out["index_built"]
    assert len(out["raw_s_all"]) == len(out["load_s_all"]) == 2
    assert out["raw_s"] > 0 and 0 < out["verify_s"] < out["load_s"]
    half = 5e-5  # seconds are printed to 4 decimals, the ratio to 3
    low = (out["load_s"] - half) / (out["raw_s"] + half) - 5e-4
    high = (out["load_s"] + half) / (out["raw_s"] - half) + 5e-4
    assert low <= out["ratio"] <= high, out
    assert "reload_s" not in out  # --no-index: no load that builds the usearch index

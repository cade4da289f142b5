"""``graphrec bench serve`` at a tiny size: the figures it reports, and the overload behaviour
(only OK or RESOURCE_EXHAUSTED at twice the saturating load). No timing goals are checked."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from benchmarks.serve import bench_serve
from graphrec.cli import app


@pytest.mark.slow
def test_bench_serve_reports_levels_topk_and_sheds_only_with_resource_exhausted() -> None:
    lines: list[str] = []
    figures = bench_serve(
        items=2_000,
        events=10_000,
        users=300,
        seconds=1.0,
        levels=(1, 4),
        overload_seconds=2.0,
        max_inflight=4,  # = the top level: closed loops never shed, the open loop must
        topk_queries=50,
        progress=lines.append,
    )
    json.dumps(figures)  # the CLI prints it as one JSON line
    assert figures["bench"] == "serve"
    assert figures["items"] == 2_000
    for key in ("build_s", "train_s", "load_s"):
        assert isinstance(figures[key], float)

    levels = figures["levels"]
    assert isinstance(levels, dict) and set(levels) == {"1", "4"}
    for level in levels.values():
        for key in ("p50_ms", "p99_ms", "rps", "echo_p50_ms", "echo_p99_ms", "ratio_p50"):
            assert level[key] > 0, (key, level)
        assert level["p50_ms"] <= level["p99_ms"]
        assert level["errors"] == {}, level

    topk = figures["topk"]
    assert isinstance(topk, dict)
    assert topk["rows"] == 2_000 and topk["index_ms"] > 0 and topk["exact_ms"] > 0
    assert topk["recall@k"] == 1.0  # below the usearch threshold the index searches exactly

    overload = figures["overload"]
    assert isinstance(overload, dict)
    codes = overload["codes"]
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert codes.get("OK", 0) > 0 and codes.get("RESOURCE_EXHAUSTED", 0) > 0, codes
    assert sum(codes.values()) == overload["sent"]
    assert overload["goodput"] > 0 and overload["saturation"] > 0
    assert set(overload["echo_codes"]) and overload["echo_goodput"] > 0
    met = figures["met"]
    assert isinstance(met, dict)
    assert set(met) == {
        "p50_within_5x_echo",
        "p99_within_20ms",
        "topk_within_1.2x_exact",
        "overload_only_ok_or_shed",
        "goodput_at_least_0.9x",
    }
    assert met["overload_only_ok_or_shed"] is True
    assert any("overload" in line for line in lines)


def test_bench_serve_is_mounted_and_checks_levels() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["bench", "serve", "--help"])
    assert shown.exit_code == 0 and "--overload-seconds" in shown.output
    bad = runner.invoke(app, ["bench", "serve", "--levels", "0,8"])
    assert bad.exit_code == 2

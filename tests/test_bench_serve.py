"""``graphrec bench serve`` at a tiny size: the figures it reports, and the overload behaviour
(only OK or RESOURCE_EXHAUSTED at twice the saturating load). No timing goals are checked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks import serve_neo4j
from benchmarks.serve import bench_serve
from graphrec.cli import app
from graphstore import GraphStore
from graphstore.neo4j import PASSWORD_ENV, default_password_file


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


@pytest.mark.slow
def test_bench_serve_with_two_processes_spreads_the_calls_over_both() -> None:
    figures = bench_serve(
        items=1_000,
        events=5_000,
        users=200,
        seconds=1.0,
        levels=(1, 8),
        overload_seconds=1.0,
        epochs=1,
        topk_queries=20,
        progress=lambda _: None,
        processes=2,
    )
    json.dumps(figures)
    assert (figures["processes"], figures["connections"]) == (2, 32)
    sample = figures["sample"]
    assert isinstance(sample, dict)
    assert sample["processes_answering"] == 2  # 100 connections of their own: both took some
    assert sample["items_per_response"] == 20.0
    levels = figures["levels"]
    assert isinstance(levels, dict)
    assert all(level["errors"] == {} and level["rps"] > 0 for level in levels.values())
    overload = figures["overload"]
    assert isinstance(overload, dict)
    assert set(overload["codes"]) <= {"OK", "RESOURCE_EXHAUSTED"}, overload
    assert overload["codes"].get("OK", 0) > 0
    headline = figures["headline"]
    assert isinstance(headline, dict)
    assert headline["p99_ms_at_c8"] == levels["8"]["p99_ms"]
    assert headline["goodput_ratio_at_2x"] == overload["ratio"]
    assert headline["p50_over_echo"] == {
        "1": levels["1"]["ratio_p50"],
        "8": levels["8"]["ratio_p50"],
    }


def test_bench_serve_is_mounted_and_checks_levels() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["bench", "serve", "--help"])
    assert shown.exit_code == 0 and "--overload-seconds" in shown.output
    assert "--processes" in shown.output
    bad = runner.invoke(app, ["bench", "serve", "--levels", "0,8"])
    assert bad.exit_code == 2
    assert runner.invoke(app, ["bench", "serve", "--processes", "0"]).exit_code == 2


@pytest.mark.slow
@pytest.mark.integration
def test_bench_serve_on_neo4j_writes_the_world_once_and_measures_beside_the_raw_driver(
    neo4j: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not os.environ.get(PASSWORD_ENV):  # from the cache's password file, before it moves
        monkeypatch.setenv(PASSWORD_ENV, default_password_file().read_text().strip())
    monkeypatch.setenv("GRAPHREC_CACHE", str(tmp_path))  # the world's model is kept there
    monkeypatch.setattr(serve_neo4j, "ghz_levels", lambda *a: {"skipped": "not in this test"})

    def run() -> dict[str, object]:
        return bench_serve(
            items=300,
            events=3_000,
            users=60,
            seconds=0.5,
            levels=(1, 2),
            overload_seconds=0.5,
            epochs=1,
            topk_queries=20,
            progress=lambda _: None,
            store_url=neo4j.url,  # emptied by the fixture: the first run writes the world
        )

    first, again = run(), run()
    json.dumps(again)
    assert (first["world_reused"], first["model_reused"]) == (False, False)
    assert (again["world_reused"], again["model_reused"]) == (True, True)
    assert again["reset_s"] == again["write_s"] == again["train_s"] == 0.0
    neo4j = again["neo4j"]
    assert isinstance(neo4j, dict)
    assert set(neo4j["raw_driver"]) == {"1", "2"}
    assert all(level["rps"] > 0 for level in neo4j["raw_driver"].values())
    sweep = neo4j["neighbourhood"]
    assert sweep["calls"] == 3 * sweep["users"] and len(sweep["quarters"]) == 4
    assert sweep["quarters"][0]["degrees"][0] <= sweep["quarters"][-1]["degrees"][1]
    assert neo4j["freshness"]["trials"] == 100
    levels = again["levels"]
    assert isinstance(levels, dict) and all(level["errors"] == {} for level in levels.values())

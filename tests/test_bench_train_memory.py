"""``graphrec bench train-memory`` at tiny sizes: each size's training and raw-CSR peaks come
from fresh processes that held the graph they were given, and the printed growth is theirs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from benchmarks.train_memory import synthetic_graph
from graphrec.cli import app


def test_the_synthetic_graph_has_the_edges_asked_for_all_distinct() -> None:
    data = synthetic_graph(30_000, 500, 10, seed=1)
    e = data.edges
    assert len(e) == 30_000 and data.num_actors == 3_000 and data.num_items == 500
    keys = (e.actor * data.num_items + e.item) * 4 + e.behaviour
    assert len(set(keys.tolist())) == len(e)
    assert e.item.max() < 500 and e.actor.max() < 3_000 and e.behaviour.max() < 4
    assert (data.category_parent[data.item_leaf] >= 0).all()  # every item in a leaf


@pytest.mark.slow
def test_bench_train_memory_reports_each_sizes_peaks_from_fresh_processes() -> None:
    args = ["--sizes", "20000,60000", "--items", "1000", "--steps", "1"]
    result = CliRunner().invoke(app, ["bench", "train-memory", *args])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["bench"] == "train-memory"
    small, large = out["sizes"]
    assert (small["edges"], large["edges"]) == (20_000, 60_000)
    assert (small["actors"], large["actors"]) == (2_000, 6_000)
    for run in (small, large):
        assert run["import_rss_mb"] <= run["graph_rss_mb"] <= run["raw_peak_mb"]
        assert run["train_peak_mb"] > run["raw_peak_mb"]  # training holds more than the CSR
        assert run["train_s"] > 0
    ratio = large["train_peak_mb"] / small["train_peak_mb"]
    assert abs(out["train_peak_ratio"] - ratio) < 1e-3
    assert out["met"] == (out["train_peak_ratio"] <= 1.5)

"""The learning half's benchmarks report both figures of the same run and their ratio."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.learning import bench_sample, bench_train
from gnn.data import GraphData


def test_bench_sample_reports_sampler_and_raw_gather_side_by_side(small: GraphData) -> None:
    out: dict[str, Any] = bench_sample(small, seeds=64, fanout=5, rounds=2, repeats=1)
    json.dumps(out)  # printed as the last line
    for figures in (out, out["trainer_batch"]):
        assert isinstance(figures, dict)
        sampled, raw = figures["sampled_neighbours_per_s"], figures["raw_csr_gather_per_s"]
        assert sampled > 0 and raw > 0
        assert abs(figures["ratio"] - sampled / raw) < 0.01
    assert out["seeds"] == 64 and out["goal"] == ">= 0.7"


def test_bench_train_reports_our_epoch_beside_a_bare_loop(small: GraphData) -> None:
    out: dict[str, Any] = bench_train(small, epochs=1)
    json.dumps(out)
    ours, bare = out["epoch_s"], out["bare_sparse_matmul_epoch_s"]
    assert ours > 0 and bare > 0
    half = 0.0005  # the times are printed to the millisecond
    assert (ours - half) / (bare + half) <= out["ratio"] <= (ours + half) / max(bare - half, 1e-9)

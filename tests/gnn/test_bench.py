"""``graphrec bench sample|train`` as a user runs them: the JSON last line holds both figures of
the same run, measured (not zero), on the same work, and the ratio of the figures it prints."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from graphrec.cli import app

runner = CliRunner()


def _last_line(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 0, result.output
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def _ratio_bounds(figure: float, baseline: float, half: float) -> tuple[float, float]:
    """The ratio's range given figures printed to within ±``half`` (and 3 decimals of ratio)."""
    return (figure - half) / (baseline + half) - 5e-4, (figure + half) / (baseline - half) + 5e-4


def test_bench_sample_times_sampler_and_raw_gather_on_the_same_neighbours() -> None:
    out = _last_line("sample", "--dataset", "synthetic", "--seeds", "64", "--fanout", "5")
    assert out["bench"] == "sample" and out["seeds"] == 64
    for figures in (out, out["trainer_batch"]):
        sampled, raw = figures["sampled_neighbours_per_s"], figures["raw_csr_gather_per_s"]
        assert sampled >= 1 and raw >= 1, figures
        assert figures["sampled_neighbours"] == figures["raw_gathered_neighbours"] > 0, figures
        low, high = _ratio_bounds(sampled, raw, 0.5)  # rates are printed as integers
        assert low <= figures["ratio"] <= high, figures


def test_bench_train_times_our_epoch_beside_a_bare_loop() -> None:
    out = _last_line("train", "--dataset", "synthetic", "--epochs", "1")
    assert out["bench"] == "train"
    ours, bare = out["epoch_s"], out["bare_sparse_matmul_epoch_s"]
    assert ours >= 0.001 and bare >= 0.001, out  # printed to the millisecond: measured, not 0
    low, high = _ratio_bounds(ours, bare, 0.0005)
    assert low <= out["ratio"] <= high, out

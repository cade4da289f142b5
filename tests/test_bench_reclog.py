"""``graphrec bench reclog`` at a tiny size: both sides measured at each level, the ratios
are of the figures beside them, and every answer of the log-on side is in the log. No timing
goals are checked."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from benchmarks.reclog import bench_reclog
from graphrec.cli import app


@pytest.mark.slow
def test_bench_reclog_measures_both_sides_and_logs_every_answer() -> None:
    figures = bench_reclog(
        items=1_000,
        events=6_000,
        users=200,
        seconds=0.5,
        levels=(1, 4),
        rounds=2,
        epochs=1,
        shadow=True,
    )
    json.dumps(figures)  # the CLI prints it as one JSON line
    levels = figures["levels"]
    assert isinstance(levels, dict) and set(levels) == {"1", "4"}
    for level in levels.values():
        for side in ("off", "on", "shadow"):
            assert 0 < level[f"{side}_p50_ms"] <= level[f"{side}_p99_ms"], level
            assert level[f"{side}_rps"] > 0
        assert level["ratio_p99"] == pytest.approx(level["on_p99_ms"] / level["off_p99_ms"], 1e-3)
        shadow_p99 = level["shadow_p99_ms"] / level["on_p99_ms"]
        assert level["shadow_ratio_p99"] == pytest.approx(shadow_p99, 1e-3)
    answered = figures["answered"]
    assert isinstance(answered, int) and answered > 0
    assert figures["logged"] == answered
    assert figures["dropped"] == {"full": 0, "write_failed": 0, "unreadable": 0, "stopped": 0}
    assert set(figures["met"]) == {  # type: ignore[arg-type]
        "p50_within_5%",
        "p99_within_10%",
        "shadow_p99_within_10%",
    }
    shadow = figures["shadow"]
    assert isinstance(shadow, dict) and shadow["answered"] > 0
    # every answer the shadowed service gave was scored by the shadow or dropped; every answer
    # is in the service's log and every shadow list in the log of the shadow's process
    assert shadow["shadow_scored"] + sum(shadow["shadow_dropped"].values()) == shadow["answered"]
    assert shadow["shadow_scored"] > 0
    assert shadow["logged"] == shadow["answered"]
    assert shadow["shadow_logged"] == shadow["shadow_scored"]


def test_bench_reclog_is_mounted_and_checks_levels() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["bench", "reclog", "--help"])
    assert shown.exit_code == 0 and "--rounds" in shown.output
    assert runner.invoke(app, ["bench", "reclog", "--levels", "0,8"]).exit_code == 2

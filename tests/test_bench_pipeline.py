"""``graphrec bench pipeline``: its processes are measured from outside (peak RSS, wall time,
last JSON line) and stopped, and at a tiny size on the embedded defaults the whole run goes
through every stage as separate processes and leaves none behind."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.pipeline import _fresh_log
from benchmarks.pipeline_procs import Process, run
from graphrec.cli import app
from streaming.urls import parse_log_url


def _quiet(line: str) -> None:
    pass


def test_a_process_reports_its_own_peak_rss_wall_time_and_last_json_line(tmp_path: Path) -> None:
    code = (
        "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]);"
        "del block; time.sleep(0.2); t = time.process_time();\n"
        "while time.process_time() - t < 0.3: pass\n"
        "print('starting'); print('{\"answer\": 42}')"
    )
    done = run("alloc", [sys.executable, "-c", code], tmp_path, _quiet, timeout_s=60)
    assert done.code == 0 and done.summary == {"answer": 42}
    assert done.peak_rss_mb >= 300  # freed before it exited: only its peak shows it
    assert done.cpu_s >= 0.3 and done.wall_s >= 0.2 + 0.3


def test_a_failed_process_raises_with_the_tail_of_its_stderr(tmp_path: Path) -> None:
    code = "import sys; sys.stderr.write('the reason it failed'); sys.exit(3)"
    with pytest.raises(RuntimeError, match=r"exited with 3:\n.*the reason it failed"):
        run("fails", [sys.executable, "-c", code], tmp_path, _quiet, timeout_s=60)


def test_a_process_past_its_timeout_is_killed_and_reaped(tmp_path: Path) -> None:
    sleeps = [sys.executable, "-c", "import time; time.sleep(60)"]
    proc = Process("sleeps", sleeps, tmp_path, _quiet)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"still ran after 0\.5 s"):
        proc.wait(0.5)
    assert time.monotonic() - started < 10
    finished = proc.poll()
    assert finished is not None and finished.code == -9
    assert not Path(f"/proc/{proc.pid}").exists()


def test_a_stopped_process_gets_sigterm_and_its_figures(tmp_path: Path) -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('{\"stopped\": true}'), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = Process("serves", [sys.executable, "-c", code], tmp_path, _quiet)
    deadline = time.monotonic() + 30
    while "ready" not in proc.stdout_lines():
        assert time.monotonic() < deadline, "the child never said it was ready"
        time.sleep(0.01)
    done = proc.stop(timeout_s=30)
    assert done.code == 0 and done.summary == {"stopped": True} and done.peak_rss_mb > 0


def test_each_run_gets_its_own_kafka_topics() -> None:
    first, second = (_fresh_log("kafka://127.0.0.1:9092", Path("/x"), r) for r in ("r1", "r2"))
    a, b = parse_log_url(first), parse_log_url(second)
    assert a.location == "127.0.0.1:9092" and a.events == "r1-events" and a.items == "r1-items"
    assert a.changes == "r1-changes" and "recommendations=r1-recs" in first
    assert {a.events, a.items, a.changes}.isdisjoint({b.events, b.items, b.changes})
    assert _fresh_log(None, Path("/w"), "r1") == "log:///w/log"
    with pytest.raises(ValueError, match="kafka://"):
        _fresh_log("neo4j://127.0.0.1:7687", Path("/w"), "r1")


def _children() -> list[str]:
    """Command lines of this process's children that are still running (or unreaped)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(fields[1]) == os.getpid():  # fields[0] is the state, fields[1] the parent
            found.append(cmdline.decode(errors="replace"))
    return found


@pytest.mark.slow
def test_bench_pipeline_runs_every_stage_as_processes_on_the_embedded_defaults() -> None:
    args = ["--events", "3000", "--epochs", "1", "--seconds", "0.3", "--levels", "1,2"]
    before = set(_children())  # e.g. multiprocessing's resource tracker, from earlier tests
    result = CliRunner().invoke(app, ["bench", "pipeline", *args])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert "graphrec bench pipeline" in result.stdout  # the table before the JSON
    assert out["bench"] == "pipeline" and out["events"] == 3_000
    stages = out["stages"]
    assert list(stages) == ["produce", "ingest", "train", "serve"]
    for name, stage in stages.items():
        assert stage["process"].startswith(f"graphrec {name} "), stage["process"]
        assert stage["wall_s"] > 0 and stage["peak_rss_mb"] > 50  # a Python process at least
    assert out["total_wall_s"] >= sum(s["wall_s"] for s in stages.values())
    ingest = stages["ingest"]
    assert ingest["sink_events_per_s"] > 0 and ingest["baseline_events_per_s"] > 0
    ratio = ingest["sink_events_per_s"] / ingest["baseline_events_per_s"]
    assert abs(ingest["ratio"] - ratio) < 0.01
    train = stages["train"]
    assert train["epochs"] == 1 and 0 < train["epoch_s"] < train["wall_s"]
    assert train["training_edges"] > 0 and train["bare_loop_epoch_s"] > 0
    levels = stages["serve"]["levels"]
    assert set(levels) == {"1", "2"}
    for level in levels.values():
        assert level["requests"] > 0 and level["errors"] == {} and level["echo_p50_ms"] > 0
    assert not set(_children()) - before, "a process the run started still runs"

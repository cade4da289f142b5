"""Disk full under the embedded store: the sink says so, retries, loses and double-counts
nothing, and carries on by itself once space is freed."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import open_sink, produce_dataset
from graphstore import open_store
from streaming.sink import SinkConfig
from tests.integration.waiting import wait_until
from tests.streaming.test_sink import interaction_edges, ledger_table

DISK_MB = 16
FREE_KB = 1_200  # left free while full: the graph of the test's events needs ~2.6 MB


def _cannot_run(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true but the disk-full test cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A DISK_MB tmpfs mounted for the test (needs root and mount)."""
    if os.geteuid() != 0:
        _cannot_run("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}M", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        _cannot_run(f"mount -t tmpfs failed: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave_kb: int) -> Path:
    """A file taking all the free space of ``disk`` but ``leave_kb``."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    filler = disk / "filler"
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, free - leave_kb * 1024))
    return filler


def test_disk_full_then_freed(
    small_disk: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = generate(SyntheticConfig(seed=3, events=20_000))
    log_url = f"log://{tmp_path / 'log'}"  # the log is elsewhere: only the graph's disk fills
    produce_dataset(log_url, data)
    total = len(data.items) + len(data.interactions)
    caplog.set_level(logging.WARNING, logger="streaming.sink")
    with open_store(f"sqlite://{small_disk / 'graph'}") as store:
        filler = fill(small_disk, FREE_KB)
        config = SinkConfig(batch_size=500, poll_timeout_s=0.01, retry_max_s=0.5)
        sink = open_sink(log_url, store, "disk", config)
        thread = threading.Thread(target=sink.run, daemon=True)
        thread.start()
        try:
            wait_until("a failed write", lambda: sink.stats.retries >= 3, 60)
            assert thread.is_alive(), "the sink must wait for space, not die"
            # What the sink counts as applied is exactly what the graph holds, no more.
            held = store.stats().interactions
            assert 0 < held < len(data.interactions)
            assert sink.stats.applied - len(data.items) <= held
            filler.unlink()
            wait_until("the whole log", lambda: sink.stats.applied >= total, 60)
        finally:
            sink.stop()
            thread.join(timeout=30)
        assert interaction_edges(store) == ledger_table(data.interactions)
    assert sink.stats.applied == total
    assert sink.stats.skipped_replayed == sink.stats.skipped_duplicate == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("disk is full" in m or "no space" in m.lower() for m in messages), messages[:3]

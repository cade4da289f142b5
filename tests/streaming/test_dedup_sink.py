"""Resent events (same event id, new offset) through the sink count once, across a restart."""

from __future__ import annotations

from pathlib import Path

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import ingest
from graphstore import DedupWindow, open_store
from streaming.log import EventLog
from streaming.produce import produce
from tests.streaming.resent import with_resends
from tests.streaming.test_sink import interaction_edges, ledger_table


def test_duplicate_ledger_across_a_restart(tmp_path: Path) -> None:
    """10,000 events, 10% resent: half before the restart, the rest (with resends of events
    from before the restart) after it. The graph is the ledger of the distinct events."""
    data = generate(SyntheticConfig(seed=5, events=10_000))
    first, second = data.interactions[:5_000], data.interactions[5_000:]
    feed_1 = with_resends(first, 0.1, seed=1)
    feed_2 = with_resends(second, 0.05, seed=2, also=first[:250])
    assert len(feed_1) + len(feed_2) == 11_000
    log, store_url = EventLog(tmp_path / "log"), f"sqlite://{tmp_path / 'graph'}"
    produce(log, data.items, feed_1)
    with open_store(store_url) as store:
        before = ingest(f"log://{tmp_path / 'log'}", store, "sink", 700, idle_exit_s=0.3)
    produce(log, (), feed_2)
    with open_store(store_url) as store:  # a new sink on the reopened store
        after = ingest(f"log://{tmp_path / 'log'}", store, "sink", 700, idle_exit_s=0.3)
        assert interaction_edges(store) == ledger_table(data.interactions)
    assert (before.skipped_duplicate, after.skipped_duplicate) == (500, 500)
    assert before.applied + after.applied == 10_000 + len(data.items)


def test_without_dedup_resent_events_count_again(tmp_path: Path) -> None:
    """The failure the window prevents: a resend is a new offset, so offsets alone keep it."""
    data = generate(SyntheticConfig(seed=5, events=1_000))
    log = EventLog(tmp_path / "log")
    produce(log, data.items, with_resends(data.interactions, 0.1, seed=1))
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        summary = ingest(f"log://{tmp_path / 'log'}", store, "s", 700, idle_exit_s=0.3, dedup=None)
        assert summary.skipped_duplicate == 0
        assert store.stats().interactions == 1_100


def test_a_small_window_forgets_and_counts_again(tmp_path: Path) -> None:
    """Resends of events accepted longer ago than the size bound are counted again."""
    data = generate(SyntheticConfig(seed=5, events=1_000))
    log = EventLog(tmp_path / "log")
    produce(log, data.items, [*data.interactions, *data.interactions[:10]])
    window = DedupWindow(max_ids=5)
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        summary = ingest(
            f"log://{tmp_path / 'log'}", store, "s", 100, idle_exit_s=0.3, dedup=window
        )
        assert summary.skipped_duplicate == 0
        assert store.stats().interactions == 1_010

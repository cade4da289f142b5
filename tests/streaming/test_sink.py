"""The sink applies every good record exactly once and dead-letters every bad one with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import ingest, produce_dataset
from graphstore import GraphStore, InvalidInput, open_store
from streaming.log import EventLog, LogConsumer
from streaming.records import header
from streaming.sink import Sink, SinkConfig
from tests.contract.test_graphstore_contract import edge_table


def ledger_table(interactions):  # type: ignore[no-untyped-def]
    from gnn.datasets import ledger_of

    return {
        (a.kind.value, a.key, rel, item): (agg.count, agg.first_ts, agg.last_ts)
        for (a, rel, item), agg in ledger_of(interactions).items()
    }


def interaction_edges(store: GraphStore) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in edge_table(store.snapshot()).items() if k[0] in ("User", "Session")}


@pytest.mark.parametrize("fmt", ["proto", "json"])
def test_20k_good_and_1k_malformed(tmp_path: Path, fmt: str) -> None:
    data = generate(SyntheticConfig(seed=7, events=20_000))
    log_url = f"log://{tmp_path / 'log'}"
    report = produce_dataset(log_url, data, fmt=fmt, malformed=1_000, seed=7)
    assert (report.events, report.malformed) == (20_000, 1_000)
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        summary = ingest(log_url, store, group="sink", batch_size=1_500, idle_exit_s=0.3)
        assert summary.applied == 20_000 + len(data.items)
        assert summary.dead_lettered == 1_000
        assert interaction_edges(store) == ledger_table(data.interactions)
    dlq = LogConsumer(EventLog(tmp_path / "log"), "check", ["events.dlq"]).poll(10_000, 0.2)
    assert len(dlq) == 1_000
    for letter in dlq:
        assert header(letter.headers, "error")
        assert header(letter.headers, "source.topic") == b"events"
        assert int(header(letter.headers, "source.offset") or b"-1") >= 0
        assert letter.value  # the original bytes


class FlakyStore:
    """Delegates to a real store but fails the first ``failures`` applies (a graph outage)."""

    def __init__(self, inner: GraphStore, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def apply(self, batch):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise ConnectionError("graph unavailable")
        return self.inner.apply(batch)


def test_sink_retries_through_store_outage_without_loss(tmp_path: Path) -> None:
    data = generate(SyntheticConfig(seed=2, events=2_000))
    log_url = f"log://{tmp_path / 'log'}"
    produce_dataset(log_url, data)
    log = EventLog(tmp_path / "log")
    with open_store("memory://") as inner:
        store = FlakyStore(inner, failures=3)
        config = SinkConfig(batch_size=500, retry_initial_s=0.01)
        sink = Sink(LogConsumer(log, "g", ["items", "events"]), store, log, config)  # type: ignore[arg-type]
        stats = sink.run(idle_exit_s=0.2)
        assert stats.retries == 3
        assert interaction_edges(inner) == ledger_table(data.interactions)


class RejectingStore(FlakyStore):
    """A store that rejects every batch as invalid input (a bug, not an outage)."""

    def apply(self, batch):  # type: ignore[no-untyped-def]
        self.failures += 1
        raise InvalidInput("rejected")


def test_sink_never_retries_invalid_input(tmp_path: Path) -> None:
    data = generate(SyntheticConfig(seed=2, events=100))
    log_url = f"log://{tmp_path / 'log'}"
    produce_dataset(log_url, data)
    log = EventLog(tmp_path / "log")
    with open_store("memory://") as inner:
        store = RejectingStore(inner, failures=0)
        config = SinkConfig(batch_size=500, retry_initial_s=0.01)
        sink = Sink(LogConsumer(log, "g", ["items", "events"]), store, log, config)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="rejected"):
            sink.step()
        assert (store.failures, sink.stats.retries) == (1, 0)

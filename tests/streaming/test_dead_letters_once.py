"""Each bad record reaches the DLQ once, even when the sink dies between dead-lettering a
batch and the graph commit that covers it (the batch is read again on restart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gnn.datasets import SyntheticConfig, generate
from graphrec.pipeline import produce_dataset
from graphstore import ApplyResult, Batch, GraphStore, open_store
from streaming.log import EventLog
from streaming.records import header
from tests.streaming.changestream import close, drain, publishing_sink


class Killed(BaseException):
    """The process dies here (not an Exception: the sink does not retry it)."""


class DiesAfterDeadLetters:
    """A store that dies on its ``n``-th apply of a batch that had bad records (they are in
    the DLQ by then), before anything of that batch is written."""

    def __init__(self, store: GraphStore, log: EventLog, n: int) -> None:
        self.store, self.log, self.n = store, log, n
        self.letters = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def apply(self, batch: Batch) -> ApplyResult:
        letters = len(dlq_positions(self.log)) if "events.dlq" in self.log.topics() else 0
        if letters > self.letters:
            self.letters, self.n = letters, self.n - 1
            if self.n == 0:
                raise Killed
        return self.store.apply(batch)


def dlq_positions(log: EventLog) -> list[tuple[bytes | None, bytes | None]]:
    """(source partition, source offset) of every DLQ record, in DLQ order."""
    out = []
    for partition in range(log.partitions("events.dlq")):
        for r in log.read(("events.dlq", partition), 0, 1_000_000):
            out.append((header(r.headers, "source.partition"), header(r.headers, "source.offset")))
    return out


@pytest.mark.parametrize("dies_on", [1, 3], ids=["first-dead-letters", "third-dead-letters"])
def test_a_crash_after_dead_lettering_does_not_dead_letter_twice(
    tmp_path: Path, dies_on: int
) -> None:
    log_dir = tmp_path / "log"
    produce_dataset(
        f"log://{log_dir}", generate(SyntheticConfig(seed=5, events=3_000)), "proto", 60
    )
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        log = EventLog(log_dir)
        dying = DiesAfterDeadLetters(store, log, dies_on)
        first = publishing_sink(log_dir, dying, "g", 500)  # type: ignore[arg-type]
        with pytest.raises(Killed):
            drain(first)
        close(first)
        second = publishing_sink(log_dir, store, "g", 500)
        drain(second)
        close(second)
    positions = dlq_positions(log)
    assert len(positions) == 60
    assert len(set(positions)) == 60
    # pinned: DLQ partition p holds the dead letters of events partition p
    for partition in range(log.partitions("events.dlq")):
        letters = log.read(("events.dlq", partition), 0, 1_000)
        assert {header(r.headers, "source.partition") for r in letters} <= {str(partition).encode()}

"""The embedded event log keeps Kafka's semantics: partitions, dense offsets, group commits."""

from __future__ import annotations

from pathlib import Path

from streaming.log import EventLog, LogConsumer, partition_for
from streaming.records import OutRecord


def test_keyed_records_keep_order_within_their_partition(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    records = [
        OutRecord(f"{k}:{n}".encode(), key=f"k{k}".encode()) for n in range(20) for k in range(5)
    ]
    placed = log.append("events", records)
    assert [p for p, _ in placed] == [partition_for(r.key, 4) for r in records]
    for p in range(4):
        offsets = [o for q, o in placed if q == p]
        assert offsets == list(range(len(offsets)))  # dense, from 0
    consumer = LogConsumer(log, "g", ["events"])
    got = consumer.poll(1_000, 0.1)
    assert len(got) == 100
    for k in range(5):
        mine = [r.value.decode() for r in got if r.key == f"k{k}".encode()]
        assert mine == [f"{k}:{n}" for n in range(20)]


def test_committed_offsets_survive_reopen_and_resume_consumption(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append("t", [OutRecord(str(n).encode(), partition=0) for n in range(10)])
    consumer = LogConsumer(log, "g", ["t"])
    first = consumer.poll(4, 0.1)
    consumer.commit({("t", 0): first[-1].offset + 1})
    log.close()
    again = LogConsumer(EventLog(tmp_path), "g", ["t"])
    assert again.committed(("t", 0)) == 4
    assert [r.offset for r in again.poll(100, 0.1)] == list(range(4, 10))
    other_group = LogConsumer(EventLog(tmp_path), "h", ["t"])
    assert len(other_group.poll(100, 0.1)) == 10


def test_headers_and_binary_values_round_trip(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append("t", [OutRecord(b"\x00\xff", key=None, headers=(("error", b"bad \xfe"),))])
    (record,) = LogConsumer(log, "g", ["t"]).poll(10, 0.1)
    assert record.value == b"\x00\xff" and record.headers == (("error", b"bad \xfe"),)


def test_poll_waits_for_new_records_then_times_out(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    consumer = LogConsumer(log, "g", ["t"])
    assert consumer.poll(10, 0.05) == []
    log.append("t", [OutRecord(b"x", key=b"a")])
    assert [r.value for r in consumer.poll(10, 0.5)] == [b"x"]
    assert consumer.lag() == 0

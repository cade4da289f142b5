"""Reading a whole topic once: every record it holds when the read starts, partition by
partition, without a consumer group (nothing is committed, no other reader is disturbed).

For reports over a log (``graphrec report``), not for following it: records appended
after the read started are left for the next read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streaming.log import EventLog
from streaming.records import Headers, LogRecord
from streaming.urls import parse_log_url

CHUNK = 5_000


class NoLog(FileNotFoundError):
    """The URL names a log that is not there."""


def read_topic(url: str, topic: str, timeout_s: float = 30.0) -> Iterator[LogRecord]:
    """The records ``topic`` of the log at ``url`` holds now (none if it has no such topic),
    in offset order within each partition."""
    address = parse_log_url(url)
    if address.scheme == "log":
        path = Path(address.location)
        if not path.is_dir():
            raise NoLog(f"no event log at {path}")
        yield from _read_embedded(EventLog(path), topic)
    else:
        yield from _read_kafka(address.location, topic, timeout_s)


def _read_embedded(log: EventLog, topic: str) -> Iterator[LogRecord]:
    if topic not in log.topics():
        return
    for partition, end in log.end_offsets(topic).items():
        offset = 0
        while offset < end:
            records = log.read((topic, partition), offset, min(CHUNK, end - offset))
            if not records:
                break
            yield from records
            offset = records[-1].offset + 1


def _read_kafka(bootstrap: str, topic: str, timeout_s: float) -> Iterator[LogRecord]:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition as KafkaTP

    from streaming.kafka import (
        FETCH_MAX_BYTES,
        MAX_PARTITION_FETCH_BYTES,
        RECEIVE_MESSAGE_MAX_BYTES,
    )

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="graphrec-reader",
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        fetch_max_bytes=FETCH_MAX_BYTES,
        receive_message_max_bytes=RECEIVE_MESSAGE_MAX_BYTES,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [KafkaTP(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        starts = consumer.beginning_offsets(tps)
        ends = {tp: end for tp, end in consumer.end_offsets(tps).items() if end > starts[tp]}
        while ends:
            batches = consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=CHUNK)
            if not batches:
                raise TimeoutError(f"no records from {topic} in {timeout_s:g} s")
            for tp, records in batches.items():
                for r in records:
                    if tp in ends and r.offset < ends[tp]:
                        yield _record(tp.topic, tp.partition, r)
                if tp in ends and consumer.position(tp) >= ends[tp]:
                    del ends[tp]
                    consumer.pause(tp)
    finally:
        consumer.close(autocommit=False)


def _record(topic: str, partition: int, r: Any) -> LogRecord:
    """A kafka-python ``ConsumerRecord`` as a ``LogRecord``."""
    headers: Headers = tuple((k, v or b"") for k, v in (r.headers or ()))
    return LogRecord(topic, partition, r.offset, r.key, r.value or b"", headers, r.timestamp / 1e3)

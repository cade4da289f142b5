"""A consumer starting on more than 1 MB of backlog reads it without frame-size errors."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from streaming.kafka import KafkaSource, KafkaWriter
from streaming.records import OutRecord
from tests.integration.servers import Servers

pytestmark = pytest.mark.integration


def test_backlog_over_a_megabyte_is_read_without_frame_errors(
    servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"fetch-{uuid.uuid4().hex[:8]}"
    writer = KafkaWriter(servers.kafka)
    records = [OutRecord(f"{n:06d}".encode() * 200, partition=n % 4) for n in range(4_000)]
    try:
        writer.send(topic, records)  # ~4.8 MB: > 1 MB on every partition
    finally:
        writer.close()
    caplog.set_level(logging.WARNING, logger="kafka")
    source = KafkaSource(servers.kafka, f"g-{topic}", [topic])
    source.on_assign(lambda tps: [source.seek(tp, 0) for tp in tps])
    got: set[tuple[int, int]] = set()
    deadline = time.monotonic() + 60
    try:
        while len(got) < len(records):
            assert time.monotonic() < deadline, f"read {len(got)} of {len(records)} in 60 s"
            got |= {(r.partition, r.offset) for r in source.poll(2_000, 0.5)}
    finally:
        source.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []

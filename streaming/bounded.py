"""A log writer that gives up instead of waiting, for records that may be dropped but must
never hold their writer up for long (the recommendation log).

``send`` returns once the log holds every record, or raises after about ``timeout_s``; the
caller may send the same records again (they can then be written twice) or drop them.

On Kafka the producer is not idempotent and waits only for its own records, never with
``flush``: when the broker restarts, a batch lost in flight can leave a flush (and, with
idempotence, its partition) waiting for good (seen with kafka-python 2.3.3). The producer
reconnects by itself when the broker returns. The embedded log's ``send`` is bounded by
SQLite's busy timeout.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

from streaming.log import EventLog
from streaming.records import OutRecord, RecordWriter
from streaming.urls import parse_log_url

DEFAULT_TIMEOUT_S = 10.0


def open_bounded_writer(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> RecordWriter:
    """A writer for the log at ``url`` whose ``send`` takes at most about ``timeout_s``."""
    address = parse_log_url(url)
    if address.scheme == "log":
        return EventLog(Path(address.location))
    return BoundedKafkaWriter(address.location, timeout_s)


class BoundedKafkaWriter:
    """An ``acks=all`` Kafka producer whose ``send`` raises after ``timeout_s`` rather than
    wait for a broker that does not answer."""

    def __init__(self, bootstrap: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        from kafka import KafkaProducer

        timeout_ms = max(1, int(timeout_s * 1000))
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._known_topics: set[str] = set()
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="graphrec-bounded-producer",
            acks="all",
            linger_ms=5,
            max_block_ms=timeout_ms,  # waiting for metadata or buffer space
            request_timeout_ms=timeout_ms,
            delivery_timeout_ms=2 * timeout_ms + 5,  # then the producer drops the batch too
            max_request_size=2 * 1024 * 1024,
        )

    def send(self, topic: str, records: Sequence[OutRecord]) -> None:
        """Append ``records``; raises (a ``KafkaError``) when the broker does not take them
        all within the time bound."""
        from kafka.errors import KafkaTimeoutError

        from streaming.kafka import ensure_topics

        deadline = time.monotonic() + self._timeout_s
        if topic not in self._known_topics:
            ensure_topics(self._bootstrap, [topic])
            self._known_topics.add(topic)
        futures = [
            self._producer.send(
                topic, value=r.value, key=r.key, headers=list(r.headers), partition=r.partition
            )
            for r in records
        ]
        for future in futures:
            left = deadline - time.monotonic()
            if left <= 0 and not future.is_done:
                raise KafkaTimeoutError(f"{topic}: not acknowledged in {self._timeout_s:g} s")
            future.get(timeout=max(left, 0.0))

    def close(self) -> None:
        """Close the producer without waiting for records still unacknowledged."""
        from kafka.errors import KafkaError

        with contextlib.suppress(KafkaError):  # records left unsent: they are given up
            self._producer.close(timeout=0)

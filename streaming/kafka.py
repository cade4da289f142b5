"""Kafka adapters for the sink's two seams: a consumer (RecordSource) and a producer (RecordWriter).

The consumer joins a group with automatic partition assignment and never auto-commits; when
partitions are assigned it tells the sink, which seeks each one past what the graph holds
(see ``streaming.sink``). The producer waits for ``acks=all`` with idempotence on, so ``send``
returning means the records are durable in the broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTP

from graphstore import TopicPartition
from streaming.records import Headers, LogRecord, OutRecord

log = logging.getLogger(__name__)
DEFAULT_PARTITIONS = 4
# One fetch response carries up to FETCH_MAX_BYTES (at most MAX_PARTITION_FETCH_BYTES per
# partition) and arrives as one network frame, which kafka-python refuses above
# receive_message_max_bytes (1 MB by default: "InvalidReceiveError: Invalid frame length").
# The frame limit is the response limit plus room for the response's own headers.
MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024
FETCH_MAX_BYTES = 16 * 1024 * 1024
RECEIVE_MESSAGE_MAX_BYTES = FETCH_MAX_BYTES + 1024 * 1024
OnAssign = Callable[[Sequence[TopicPartition]], None]


def ensure_topics(
    bootstrap: str,
    topics: Sequence[str],
    partitions: int = DEFAULT_PARTITIONS,
    configs: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Create the topics that do not exist yet (replication factor 1: one local broker), with
    ``configs`` as their topic configs (e.g. ``cleanup.policy``). Existing topics are left
    as they are. Returns each topic's partition count (an existing topic's own)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="graphrec-admin")
    try:
        missing = set(topics) - set(admin.list_topics())
        for name in sorted(missing):
            try:
                admin.create_topics(
                    [NewTopic(name, partitions, 1, topic_configs=dict(configs or {}))]
                )
                log.info("created topic %s with %d partitions %s", name, partitions, configs or "")
            except TopicAlreadyExistsError:
                pass
        existing = [t for t in topics if t not in missing]
        counts = dict.fromkeys(missing, partitions)
        for described in admin.describe_topics(existing) if existing else ():
            counts[described["topic"]] = len(described["partitions"])
        return counts
    finally:
        admin.close()


class _Listener(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    def on_partitions_revoked(self, revoked: Sequence[KafkaTP]) -> None:
        # Runs inside poll on the polling thread, before the group reassigns anything.
        tps = sorted((t.topic, t.partition) for t in revoked)
        log.info("partitions revoked: %s", tps)
        if self._source.on_revoke_callback is not None:
            self._source.on_revoke_callback(tps)

    def on_partitions_assigned(self, assigned: Sequence[KafkaTP]) -> None:
        # Runs on kafka-python's IO thread, where blocking consumer calls are forbidden:
        # note the partitions and let the polling thread position them.
        tps = sorted((t.topic, t.partition) for t in assigned)
        log.info("partitions assigned: %s", tps)
        self._source.newly_assigned.update(tps)


class KafkaSource:
    """A kafka-python consumer in ``group`` subscribed to ``topics`` (a RecordSource)."""

    def __init__(
        self, bootstrap: str, group: str, topics: Sequence[str], instance_id: str | None = None
    ) -> None:
        """``instance_id`` makes the member static: a restarted sink with the same id gets
        its partitions back at once instead of waiting for its old session to expire."""
        ensure_topics(bootstrap, topics)
        self.on_assign_callback: OnAssign | None = None
        self.on_revoke_callback: OnAssign | None = None
        self.newly_assigned: set[TopicPartition] = set()
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=f"graphrec-sink-{group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
            fetch_max_bytes=FETCH_MAX_BYTES,
            receive_message_max_bytes=RECEIVE_MESSAGE_MAX_BYTES,
            fetch_max_wait_ms=50,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            group_instance_id=instance_id,
        )
        self._await_metadata(topics)
        self._consumer.subscribe(list(topics), listener=_Listener(self))

    def _await_metadata(self, topics: Sequence[str], timeout_s: float = 30.0) -> None:
        # Subscribing before the client knows a new topic's partitions yields an empty
        # assignment and an extra rebalance, which kafka-python can stall on.
        deadline = time.monotonic() + timeout_s
        while not all(self._consumer.partitions_for_topic(t) for t in topics):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partition metadata for {list(topics)} after {timeout_s} s")
            time.sleep(0.1)

    def on_assign(self, callback: OnAssign) -> None:
        """Call ``callback`` with the partitions each time the group assigns some to us."""
        self.on_assign_callback = callback

    def on_revoke(self, callback: OnAssign) -> None:
        """Call ``callback`` with our partitions before the group takes them away (inside
        ``poll``); the group waits for it to return."""
        self.on_revoke_callback = callback

    def assignment(self) -> list[TopicPartition]:
        return sorted((t.topic, t.partition) for t in self._consumer.assignment())

    def committed(self, tp: TopicPartition) -> int | None:
        offset = self._consumer.committed(KafkaTP(*tp))
        return None if offset is None else int(offset)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(KafkaTP(*tp), offset)

    def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
        """Records from assigned partitions. Partitions assigned during this poll are first
        positioned by the on-assign callback, if there is one; their records fetched before
        that are dropped (they are fetched again from the new position)."""
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        fresh, self.newly_assigned = self.newly_assigned, set()
        if self.on_assign_callback is None:
            fresh = set()  # nothing moves them: their records stand
        elif fresh:
            self.on_assign_callback(sorted(fresh))
        out: list[LogRecord] = []
        for tp, records in batches.items():
            if (tp.topic, tp.partition) in fresh:
                continue
            out.extend(_log_record(r) for r in records)
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        try:
            self._consumer.commit(
                {KafkaTP(*tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
            )
        except CommitFailedError as exc:
            # A rebalance took the partitions away; the new owner resumes from the graph's
            # watermark, so nothing is lost or applied twice.
            log.warning("offset commit rejected after a rebalance: %s", exc)

    def close(self) -> None:
        self._consumer.close(autocommit=False)


@dataclass(frozen=True)
class TopicSpec:
    """How a topic is created when a writer first sends to it."""

    partitions: int = DEFAULT_PARTITIONS
    configs: Mapping[str, str] = field(default_factory=dict)


class KafkaWriter:
    """An idempotent ``acks=all`` producer; ``send`` returns once every record is acknowledged.

    A topic it sends to is created first if missing: as ``topics`` specifies, else with the
    default partitions."""

    def __init__(
        self, bootstrap: str, linger_ms: int = 5, topics: Mapping[str, TopicSpec] | None = None
    ) -> None:
        self._bootstrap = bootstrap
        self._specs = dict(topics or {})
        self._known_topics: set[str] = set()
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="graphrec-producer",
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_request_size=2 * 1024 * 1024,
        )

    def send(self, topic: str, records: Sequence[OutRecord]) -> None:
        if topic not in self._known_topics:
            spec = self._specs.get(topic, TopicSpec())
            ensure_topics(self._bootstrap, [topic], spec.partitions, spec.configs)
            self._known_topics.add(topic)
        futures = [
            self._producer.send(
                topic, value=r.value, key=r.key, headers=list(r.headers), partition=r.partition
            )
            for r in records
        ]
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises the broker's error, if any

    def partitions(self, topic: str) -> int:
        """Partition count of ``topic`` (created with the default count if missing)."""
        return self.create_topic(topic, self._specs.get(topic, TopicSpec()).partitions)

    def create_topic(self, name: str, partitions: int) -> int:
        """Create topic ``name`` with ``partitions`` partitions if missing; returns its count."""
        configs = self._specs.get(name, TopicSpec()).configs
        count = ensure_topics(self._bootstrap, [name], partitions, configs)[name]
        self._known_topics.add(name)
        return count

    def last_records(self, topic: str, partitions: Sequence[int]) -> dict[int, LogRecord]:
        """The newest record of each of ``partitions`` of ``topic`` that holds one."""
        return last_records(self._bootstrap, topic, partitions)

    def close(self) -> None:
        self._producer.close()


def last_record(bootstrap: str, tp: TopicPartition, timeout_s: float = 30.0) -> LogRecord | None:
    """The newest record of one partition (``None`` when it holds none, or the topic has no
    such partition), read without a group."""
    return last_records(bootstrap, tp[0], [tp[1]], timeout_s).get(tp[1])


def last_records(
    bootstrap: str, topic: str, partitions: Sequence[int], timeout_s: float = 30.0
) -> dict[int, LogRecord]:
    """The newest record of each of ``partitions`` of ``topic`` that holds one (none for a
    topic that does not exist), read with one consumer outside any group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="graphrec-last-record",
        enable_auto_commit=False,
        receive_message_max_bytes=RECEIVE_MESSAGE_MAX_BYTES,
    )
    try:
        known = consumer.partitions_for_topic(topic) or set()
        tps = [KafkaTP(topic, p) for p in partitions if p in known]
        ends = {tp: end for tp, end in consumer.end_offsets(tps).items() if end} if tps else {}
        if not ends:
            return {}
        consumer.assign(list(ends))
        for tp, end in ends.items():
            consumer.seek(tp, end - 1)
        found: dict[int, LogRecord] = {}
        deadline = time.monotonic() + timeout_s
        while len(found) < len(ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no last record of {topic} {sorted(ends)} after {timeout_s} s")
            for tp, records in consumer.poll(timeout_ms=200).items():
                last = max(records, key=lambda r: r.offset)
                if last.offset == ends[tp] - 1:
                    found[tp.partition] = _log_record(last)
        return found
    finally:
        consumer.close(autocommit=False)


def _log_record(r: ConsumerRecord) -> LogRecord:
    headers: Headers = tuple((k, v or b"") for k, v in (r.headers or ()))
    return LogRecord(
        r.topic, r.partition, r.offset, r.key, r.value or b"", headers, r.timestamp / 1000.0
    )

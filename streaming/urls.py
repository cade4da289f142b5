"""Logs chosen by URL: ``log://PATH`` (embedded, the default) or ``kafka://HOST:PORT``.

A URL may name its topics: ``kafka://127.0.0.1:9092/clicks?items=catalogue`` reads events
from ``clicks`` and items from ``catalogue``; by default they are ``events`` and ``items``.
The sink's change stream (``streaming.changes``) is ``changes`` unless ``?changes=NAME``; it
is created with one partition, compacted on Kafka, by whichever opens it first (its
publisher or a follower).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from streaming.changes import CHANGES_PARTITION, CHANGES_TOPIC, CHANGES_TOPIC_CONFIGS
from streaming.log import EventLog, LogConsumer
from streaming.publish import ChangePublisher
from streaming.records import EVENTS_TOPIC, ITEMS_TOPIC, RecordSource, RecordWriter


class UnknownLogUrl(ValueError):
    """The URL names no log graphrec knows."""


@dataclass(frozen=True)
class LogAddress:
    scheme: str  # "log" or "kafka"
    location: str  # directory, or host:port
    events: str = EVENTS_TOPIC
    items: str = ITEMS_TOPIC
    changes: str = CHANGES_TOPIC

    @property
    def topics(self) -> tuple[str, str]:
        return (self.items, self.events)


def parse_log_url(url: str) -> LogAddress:
    """Split a log URL into where the log is and which topics it uses."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    items = query.get("items", [ITEMS_TOPIC])[0]
    changes = query.get("changes", [CHANGES_TOPIC])[0]
    if parts.scheme == "log":
        location = parts.netloc + parts.path
        if not location:
            raise UnknownLogUrl(f"{url!r}: log:// needs a directory, e.g. log://data/log")
        events = query.get("events", [EVENTS_TOPIC])[0]
        return LogAddress("log", location, events, items, changes)
    if parts.scheme == "kafka":
        if not parts.netloc:
            raise UnknownLogUrl(f"{url!r}: kafka:// needs host:port, e.g. kafka://127.0.0.1:9092")
        events = parts.path.strip("/") or EVENTS_TOPIC
        return LogAddress("kafka", parts.netloc, events, items, changes)
    raise UnknownLogUrl(f"unknown log URL {url!r}: use log://PATH or kafka://HOST:PORT[/TOPIC]")


def create_log_topics(url: str, partitions: int) -> dict[str, int]:
    """Create the items and events topics of the log at ``url`` with ``partitions``
    partitions where they do not exist yet; returns each one's partition count (a topic that
    existed keeps its own: neither Kafka nor the embedded log repartitions a topic)."""
    address = parse_log_url(url)
    names = [address.items, address.events]
    if address.scheme == "log":
        log = EventLog(Path(address.location))
        try:
            return {name: log.create_topic(name, partitions) for name in names}
        finally:
            log.close()
    from streaming.kafka import ensure_topics

    return ensure_topics(address.location, names, partitions)


def open_writer(url: str) -> RecordWriter:
    """A durable writer for the log at ``url``."""
    address = parse_log_url(url)
    if address.scheme == "log":
        return EventLog(Path(address.location))
    from streaming.kafka import KafkaWriter

    return KafkaWriter(address.location)


def open_source(url: str, group: str) -> RecordSource:
    """A consumer in ``group`` over the items and events topics of the log at ``url``."""
    address = parse_log_url(url)
    if address.scheme == "log":
        return LogConsumer(EventLog(Path(address.location)), group, address.topics)
    from streaming.kafka import KafkaSource

    return KafkaSource(address.location, group, address.topics)


def open_changes(url: str, group: str) -> RecordSource:
    """A consumer in ``group`` over the change stream of the log at ``url``."""
    address = parse_log_url(url)
    if address.scheme == "log":
        log = EventLog(Path(address.location))
        log.create_topic(address.changes, 1)
        return LogConsumer(log, group, (address.changes,))
    from streaming.kafka import KafkaSource, ensure_topics

    ensure_topics(address.location, [address.changes], 1, CHANGES_TOPIC_CONFIGS)
    return KafkaSource(address.location, group, (address.changes,))


def open_publisher(url: str) -> ChangePublisher:
    """The sink's publisher of the change stream of the log at ``url`` (the topic is created
    here if missing: one partition, compacted on Kafka)."""
    address = parse_log_url(url)
    tp = (address.changes, CHANGES_PARTITION)
    if address.scheme == "log":
        # Not fsynced per send: the sink's next offset commit (fsynced, same file, later in
        # its write-ahead log) makes it durable, and a publish lost to a power cut is
        # republished as the resume rule reads again what the stream does not cover.
        log = EventLog(Path(address.location), durable=False)
        log.create_topic(address.changes, 1)
        return ChangePublisher(log, address.changes, lambda: log.last_record(tp))
    from streaming.kafka import KafkaWriter, TopicSpec, ensure_topics, last_record

    spec = TopicSpec(1, CHANGES_TOPIC_CONFIGS)
    ensure_topics(address.location, [address.changes], spec.partitions, spec.configs)
    writer = KafkaWriter(address.location, topics={address.changes: spec})
    return ChangePublisher(writer, address.changes, lambda: last_record(address.location, tp))

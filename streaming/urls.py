"""Logs chosen by URL: ``log://PATH`` (embedded, the default) or ``kafka://HOST:PORT``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from streaming.log import EventLog, LogConsumer
from streaming.records import RecordSource, RecordWriter


class UnknownLogUrl(ValueError):
    """The URL names no log graphrec knows."""


def _scheme(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme == "log":
        location = parts.netloc + parts.path
        if not location:
            raise UnknownLogUrl(f"{url!r}: log:// needs a directory, e.g. log://data/log")
        return "log", location
    if parts.scheme == "kafka":
        if not parts.netloc:
            raise UnknownLogUrl(f"{url!r}: kafka:// needs host:port, e.g. kafka://127.0.0.1:9092")
        return "kafka", parts.netloc
    raise UnknownLogUrl(f"unknown log URL {url!r}: use log://PATH or kafka://HOST:PORT")


def open_writer(url: str) -> RecordWriter:
    """A durable writer for the log at ``url``."""
    scheme, location = _scheme(url)
    if scheme == "log":
        return EventLog(Path(location))
    from streaming.kafka import KafkaWriter

    return KafkaWriter(location)


def open_source(url: str, group: str, topics: Sequence[str]) -> RecordSource:
    """A consumer in ``group`` over ``topics`` of the log at ``url``."""
    scheme, location = _scheme(url)
    if scheme == "log":
        return LogConsumer(EventLog(Path(location)), group, topics)
    from streaming.kafka import KafkaSource

    return KafkaSource(location, group, topics)

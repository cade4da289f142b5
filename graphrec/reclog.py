"""The recommendation log wired to ``streaming``'s writers: where ``graphrec serve`` writes
its answers (``serving.reclog``) and ``graphrec report`` reads them.

The log is the one a log URL names (``log://PATH`` or ``kafka://HOST:PORT``), on the topic
``recommendations`` unless the URL says ``?recommendations=NAME``.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from serving.logrecord import RECOMMENDATIONS_TOPIC
from serving.reclog import Publish, RecommendationLogConfig
from streaming.bounded import open_bounded_writer
from streaming.records import OutRecord
from streaming.urls import parse_log_url


def recommendations_topic(url: str) -> str:
    """The recommendation log's topic in the log at ``url``."""
    parse_log_url(url)  # UnknownLogUrl for what is not a log URL
    return parse_qs(urlsplit(url).query).get("recommendations", [RECOMMENDATIONS_TOPIC])[0]


def log_config(url: str, capacity: int = 10_000) -> RecommendationLogConfig:
    """The service's recommendation log on the log at ``url``: opened by the writer thread
    (a log that is down at start is retried there), each write bounded in time
    (``streaming.bounded``)."""
    topic = recommendations_topic(url)

    def connect() -> Publish:
        writer = open_bounded_writer(url)

        def publish(records: Sequence[tuple[bytes, bytes]]) -> None:
            writer.send(topic, [OutRecord(value, key) for key, value in records])

        return publish

    return RecommendationLogConfig(connect, capacity=capacity)

"""Windowed trending counts per item and per category: a small faust-streaming app.

It reads the same ``events`` and ``items`` topics as the sink, keeps hopping-window counts
per item and each item's leaf category in faust tables backed by changelog topics (category
counts are summed from item counts when read), and serves
the current top items over HTTP on 127.0.0.1 — the popularity fallback the recommender uses
for unknown users and empty sessions:

    GET /trending/items/?k=20[&category=face/serums]  →  {"items": [[item_id, count], ...]}
    GET /trending/categories/?k=20                     →  {"categories": [[category, count], ...]}

Run it with ``graphrec trending --from kafka://127.0.0.1:9092`` (``build_app`` + ``run_worker``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import faust
from faust.web import Request, Response, View

from streaming.codec import BadRecord, decode_event, decode_item
from streaming.records import EVENTS_TOPIC, ITEMS_TOPIC

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrendingConfig:
    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = "graphrec-trending"  # also the consumer group and the tables' topic prefix
    events_topic: str = EVENTS_TOPIC
    items_topic: str = ITEMS_TOPIC
    web_port: int = 6066  # HTTP port of the trending endpoints (127.0.0.1 only)
    window_s: float = 3600.0  # counts cover the last hour ...
    step_s: float = 300.0  # ... in 5-minute hops
    partitions: int = 4  # of the repartition and changelog topics
    data_dir: str = "data/trending"  # faust's local state


def build_app(config: TrendingConfig) -> faust.App:
    """The faust app with its topics, tables, agents and web views."""
    app = _app(config)
    leaf_of = app.Table("item-leaf", default=str, partitions=config.partitions)
    size, step = timedelta(seconds=config.window_s), timedelta(seconds=config.step_s)
    item_counts = app.Table("item-counts", default=int, partitions=config.partitions).hopping(
        size, step, expires=2 * size, key_index=True
    )
    _add_agents(app, config, leaf_of, item_counts)
    _add_views(app, leaf_of, item_counts)
    return app


def run_worker(app: faust.App, loglevel: str = "warn") -> NoReturn:
    """Run ``app`` in a faust worker in this process until interrupted (faust's programmatic
    entry point; the web server listens where the app's config says)."""
    faust.Worker(app, loglevel=loglevel).execute_from_commandline()


def _app(config: TrendingConfig) -> faust.App:
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    return faust.App(
        config.app_id,
        broker=config.broker,
        store="memory://",
        datadir=config.data_dir,
        topic_replication_factor=1,
        topic_partitions=config.partitions,
        web_host="127.0.0.1",
        web_port=config.web_port,
        web_bind="127.0.0.1",
        canonical_url=f"http://127.0.0.1:{config.web_port}",
        consumer_auto_offset_reset="earliest",
    )


def _add_agents(app: faust.App, config: TrendingConfig, leaf_of: Any, item_counts: Any) -> None:
    """Keep each item's leaf category, and count events per item in the hopping window."""
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "value_serializer": "raw"}
    events = app.topic(config.events_topic, **raw, key_serializer="raw")
    items = app.topic(config.items_topic, **raw, key_serializer="raw")

    @app.agent(items)
    async def catalogue(stream: faust.StreamT[bytes]) -> None:
        async for value in stream.group_by(_item_key, name="items-by-item"):
            try:
                item = decode_item(value)
            except BadRecord:
                continue  # the sink dead-letters it
            leaf_of[item.item_id] = "/".join(item.category_path)

    @app.agent(events)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for value in stream.group_by(_event_item_key, name="events-by-item"):
            try:
                event = decode_event(value)
            except BadRecord:
                continue
            item_counts[event.item_id] += 1


def _add_views(app: faust.App, leaf_of: Any, item_counts: Any) -> None:
    """GET /trending/items/ and /trending/categories/ over the current window."""

    @app.page("/trending/items/")
    class TrendingItems(View):
        async def get(self, request: Request) -> Response:
            k, category = _k(request), request.query.get("category", "")
            ranked = _top(
                item_counts, lambda key: not category or leaf_of[key].startswith(category)
            )
            return self.json({"items": ranked[:k]})

    @app.page("/trending/categories/")
    class TrendingCategories(View):
        async def get(self, request: Request) -> Response:
            # Summed at read time, so an event that arrived before its item's catalogue
            # entry still counts for the category.
            per_category: dict[str, int] = {}
            for item, count in _top(item_counts, lambda _: True):
                leaf = leaf_of[item]
                if leaf:
                    per_category[leaf] = per_category.get(leaf, 0) + count
            ranked = sorted(per_category.items(), key=lambda kv: (-kv[1], kv[0]))
            return self.json({"categories": ranked[: _k(request)]})


def _item_key(value: bytes) -> bytes:
    try:
        return decode_item(value).item_id.encode()
    except BadRecord:
        return b""


def _event_item_key(value: bytes) -> bytes:
    try:
        return decode_event(value).item_id.encode()
    except BadRecord:
        return b""


def _k(request: Request) -> int:
    try:
        return max(1, min(1_000, int(request.query.get("k", "20"))))
    except ValueError:
        return 20


def _top(table: Any, keep: Any) -> list[tuple[str, int]]:
    """Current-window counts, highest first (ties by key, for stable output)."""
    counts = [(key, int(value)) for key, value in table.items().now() if key and keep(key)]
    return sorted(counts, key=lambda kv: (-kv[1], kv[0]))

"""How stale the item table is, on the service's metrics: while a slow store holds up the
re-embedding of changed items, ``graphrec_change_feed_staleness_seconds`` grows past 0; once
the table reflects every change it reads 0, and the re-embedded items are counted. Embedded
store behind a wrapper that answers neighbourhood reads late; the changes are written as the
sink writes them."""

from __future__ import annotations

import time
from typing import Any, cast

from graphrec.changefeed import serving_feed
from graphstore import GraphStore, NodeKind, NodeRef, open_store
from serving.app import Serving
from serving.server import ServerConfig
from streaming.changes import CHANGES_TOPIC, Change, encode_change
from streaming.urls import open_writer
from tests.integration.waiting import wait_until
from tests.serving.conftest import World
from tests.serving.test_operations import own_world

__all__ = ["own_world"]  # the fixture this module uses
STALENESS = "graphrec_change_feed_staleness_seconds"


class Slowed:
    """``store``, whose neighbourhood reads answer ``delay_s`` late."""

    def __init__(self, store: GraphStore) -> None:
        self._store = store
        self.delay_s = 0.0

    def neighbourhood(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self.delay_s)
        return self._store.neighbourhood(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_staleness_shows_a_slow_store_and_returns_to_zero(own_world: World) -> None:
    with open_store(own_world.store_url) as store:
        slowed = Slowed(store)
        serving = Serving(
            cast(GraphStore, slowed), own_world.models, config=ServerConfig("127.0.0.1:0")
        )
        serving.start()
        feed = serving_feed(own_world.log_url, store, serving)
        feed.start()
        metric = serving.metrics.registry.get_sample_value
        try:
            marks = serving.watermarks()
            assert marks is not None
            past = {tp: offset + 1 for tp, offset in marks.items()}  # a commit after the snapshot
            items = [i.item_id for i in own_world.dataset.items[:5]]
            before = metric("graphrec_items_refreshed_total") or 0.0
            assert metric(STALENESS) == 0.0
            slowed.delay_s = 2.0
            changes = [
                Change(NodeRef(NodeKind.ITEM, key), past, 1, None, time.time()) for key in items
            ]
            open_writer(own_world.log_url).send(CHANGES_TOPIC, [encode_change(c) for c in changes])
            wait_until("the table to fall behind", lambda: (metric(STALENESS) or 0.0) > 0.5, 30)
            slowed.delay_s = 0.0
            wait_until("the table to catch up", lambda: metric(STALENESS) == 0.0, 30)
            assert metric("graphrec_items_refreshed_total") == before + len(items)
        finally:
            feed.stop()
            feed.join(timeout=30)
            serving.stop()

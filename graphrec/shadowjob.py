"""What the shadow's process opens (``serving.shadow``): the graph store, the pinned version, a
change feed keeping its item table as fresh as the served one's, a trending cache when the
service has one, and a recommendation log writer, all its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from graphrec.changefeed import ChangeFeed
from graphrec.reclog import log_config
from graphstore import open_store
from serving.loops import LoopMetrics, LoopState
from serving.pinned import load_pinned
from serving.reclog import LOOP_NAME as RECLOG_LOOP
from serving.reclog import RecommendationLog
from serving.recommender import Recommender, RecommenderConfig
from serving.shadowproc import Scorer
from serving.trending import LOOP_NAME as TRENDING_LOOP
from serving.trending import TrendingCache, http_trending


@dataclass(frozen=True)
class ShadowJob:
    """The shadow version ``version`` of ``models_dir``, answering over the store at
    ``store_url`` and logging to the log at ``recommendation_log``; its item table follows
    the change stream of ``follow_url`` (None: it does not)."""

    store_url: str
    models_dir: Path
    version: str
    recommendation_log: str
    recommender: RecommenderConfig = field(default_factory=RecommenderConfig)
    follow_url: str | None = None
    trending_url: str = ""

    @contextmanager
    def open(self, registry: CollectorRegistry) -> Iterator[Scorer]:
        """The store, version, feed, trending cache and log opened; closed on exit."""
        loops = LoopMetrics(registry)
        with ExitStack() as stack:
            store = stack.enter_context(open_store(self.store_url))
            engine = load_pinned(self.models_dir, self.version, self.recommender.exact_threshold)
            trending = None
            if self.trending_url:
                trending = TrendingCache(http_trending(self.trending_url))
                trending.start(LoopState(TRENDING_LOOP, loops))
                stack.callback(trending.stop)
            recommender = Recommender(store, lambda: engine, self.recommender, trending)
            recommendations = RecommendationLog(log_config(self.recommendation_log), registry)
            recommendations.start(LoopState(RECLOG_LOOP, loops))
            stack.callback(recommendations.stop)
            if self.follow_url is not None:
                marks = engine.watermarks
                feed = ChangeFeed(
                    self.follow_url,
                    store,
                    recommender.refresh,
                    state=LoopState("change-feed-shadow", loops),
                    start_from=lambda: marks,
                )
                feed.start()
                stack.callback(feed.stop)
            yield Scorer(recommender, recommendations)

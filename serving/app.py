"""Everything ``graphrec serve`` runs, wired: model registry, recommender, gRPC server, metrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from graphstore import GraphStore, ItemRecord, TopicPartition
from serving.engine import Engine
from serving.loops import LoopState
from serving.metrics import Metrics
from serving.reclog import LOOP_NAME as RECLOG_LOOP
from serving.reclog import RecommendationLog, RecommendationLogConfig
from serving.recommender import Recommender, RecommenderConfig
from serving.registry import ModelRegistry
from serving.server import RecommenderServer, ServerConfig
from serving.storehealth import StoreProbe
from serving.trending import LOOP_NAME, TrendingCache, http_trending

log = logging.getLogger(__name__)


class Serving:
    """The service over one graph store and one models directory.

    ``items_changed`` is the seam for whatever follows the event stream (see
    ``graphrec.changefeed``): it re-embeds the changed items from their live neighbourhoods,
    and replays changes that arrived while a new model version was loading onto that version.
    gRPC health is SERVING while a model is loaded and the store's probe (every
    ``probe_every_s``) answers. With ``recommendation_log``, every Recommend answer is
    written there too (``serving.reclog``).
    """

    def __init__(
        self,
        store: GraphStore,
        models_dir: Path,
        recommender_config: RecommenderConfig | None = None,
        config: ServerConfig | None = None,
        trending_url: str = "",
        reload_every_s: float = 1.0,
        probe_every_s: float = 1.0,
        recommendation_log: RecommendationLogConfig | None = None,
    ) -> None:
        self.recommender_config = recommender_config or RecommenderConfig()
        self.metrics = Metrics()
        self.store_probe = StoreProbe(store, self._store_changed, probe_every_s)
        self.metrics.store_up.set(1)
        self.registry: ModelRegistry[Engine] = ModelRegistry(
            models_dir,
            lambda d: Engine.load(d, self.recommender_config.exact_threshold),
            reload_every_s,
            self._swapped,
        )
        self.trending = TrendingCache(http_trending(trending_url)) if trending_url else None
        self.recommender = Recommender(
            store,
            self.registry.current,
            self.recommender_config,
            self.trending,
            self.metrics.freshness.observe,
            lambda: self.store_probe.up,
            self.metrics.store_down_answers.inc,
        )
        self.recommendations = (
            RecommendationLog(recommendation_log, self.metrics.registry)
            if recommendation_log is not None
            else None
        )
        self.server = RecommenderServer(
            self.recommender, config or ServerConfig(), self.metrics, self.recommendations
        )
        self._pending: tuple[set[str], dict[str, ItemRecord]] = (set(), {})
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> int:
        """Load the current version (if any), start serving and watching; returns the port.

        Torch runs single-threaded from here on: requests are parallel across the server's
        workers, and intra-op threads on small per-request graphs only fight over the cores
        (a request took 5× longer with two of them on two cores).
        """
        torch.set_num_threads(1)
        if self.server.config.reuse_port:
            # A replica sharing the port listens once it can answer: connections stay with the
            # process the kernel gave them to, and one loading its model would answer UNAVAILABLE.
            self.registry.check()
        port = self.server.start()
        if self.trending is not None:  # its health needs the server running
            self.trending.start(LoopState(LOOP_NAME, self.metrics.loops, self.server.set_health))
        if self.recommendations is not None:
            self.recommendations.start(
                LoopState(RECLOG_LOOP, self.metrics.loops, self.server.set_health)
            )
        self._started = True
        if not self.registry.check() and self.registry.current() is None:
            log.warning(
                "no model in %s yet; answering UNAVAILABLE until one is published",
                self.registry.models_dir,
            )
        self._update_health()  # a version loaded before the server started is not in it yet
        self.registry.start()
        self.store_probe.start()
        return port

    def stop(self) -> None:
        if self.trending is not None:
            self.trending.stop()
        self.store_probe.stop()
        self.registry.stop()
        self.server.stop()
        if self.recommendations is not None:  # after the server: its last answers too
            self.recommendations.stop()

    def watermarks(self) -> Mapping[TopicPartition, int] | None:
        """The log positions the loaded version's item table reflects (None without a
        version): a change feed starts right after them."""
        engine = self.registry.current()
        return None if engine is None else engine.watermarks

    def items_changed(self, item_ids: Sequence[str], records: Sequence[ItemRecord] = ()) -> int:
        """Re-embed items whose neighbourhood or catalogue entry changed; returns how many."""
        if self.registry.loading.is_set():
            with self._lock:
                self._pending[0].update(item_ids)
                self._pending[1].update({r.item_id: r for r in records})
        done = self.recommender.refresh(item_ids, records)
        self.metrics.refreshed.inc(done)
        engine = self.registry.current()
        if engine is not None:
            self.metrics.items.set(engine.table.size)
        return done

    def _swapped(self, version: str, engine: Engine) -> None:
        with self._lock:
            ids, records = self._pending
            self._pending = (set(), {})
        if ids or records:
            self.recommender.refresh(sorted(ids), list(records.values()))
        self.metrics.model.info({"version": version})
        self.metrics.items.set(engine.table.size)
        if self._started:
            self._update_health()

    def _store_changed(self, up: bool) -> None:
        self.metrics.store_up.set(int(up))
        self._update_health()

    def _update_health(self) -> None:
        """SERVING while a model is loaded and the store answers."""
        self.server.set_serving(self.registry.current() is not None and self.store_probe.up)

"""``graphrec bench serve --processes N``: the service as N replica processes on one port
(``graphrec.replicas``, as ``graphrec serve --processes N`` runs them) over the world's store
and model, not following any log; the bench process loads the model too, for the top-K
figures only."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.serve_world import World
    from graphrec.replicas import Replicas
    from serving.engine import Engine

Progress = Callable[[str], None]
STARTUP_S = 600.0  # every replica loads the model (at 5M events, a minute each on 2 cores)


def start_replicas(
    world: World, processes: int, workers: int, max_inflight: int, say: Progress
) -> tuple[Replicas, int, float]:
    """The replicas, serving: (them, their port, seconds until all of them served)."""
    from graphrec.replicas import Replicas
    from graphrec.serving_cli import ServeJob, serve_replica
    from serving.recommender import RecommenderConfig
    from serving.server import ServerConfig

    job = ServeJob(
        store_url=world.store.url,
        models_dir=world.models,
        recommender=RecommenderConfig(),
        server=ServerConfig(address="127.0.0.1:0", workers=workers, max_inflight=max_inflight),
        trending_url="",
        recommendation_log=None,
        follow_url=None,
    )
    say(f"starting {processes} server processes (workers={workers}, max_inflight={max_inflight})")
    started = time.perf_counter()
    replicas = Replicas(serve_replica, (job,), processes, job.server.address)
    try:
        port = replicas.start()
        replicas.wait_ready(STARTUP_S)
    except BaseException:
        replicas.stop()
        raise
    return replicas, port, time.perf_counter() - started


def load_engine(world: World) -> Engine:
    """The world's current model version, as a replica loads it."""
    from gnn.checkpoint import current_version
    from serving.engine import Engine
    from serving.recommender import RecommenderConfig

    version = current_version(world.models)
    if version is None:
        raise RuntimeError(f"no model version in {world.models}")
    return Engine.load(world.models / version, RecommenderConfig().exact_threshold)

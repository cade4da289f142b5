"""A model version pinned by name beside the served one (the A/B split's other version, the
shadow): loaded once, never hot-reloaded.

The A/B split's version answers in the server's process through a ``Recommender`` of its own
over the same store, fallback and store probe as the served version; its item table is kept
fresh like the served one's: ``graphrec serve`` runs a change feed for it
(``graphrec.changefeed.ChangeFeed`` with ``refresh`` below) that starts after the pinned
version's own watermarks, so what the sink applied since its training snapshot is re-embedded
on it too. The shadow version answers in a process of its own, which opens the version, the
store and a change feed itself (``serving.shadow``, ``graphrec.shadowjob``).

``with_ab`` and ``with_shadow`` put a pinned version to work in a ``Serving`` before it
starts (``serving.abtest``, ``serving.shadow``).
"""

from __future__ import annotations

from pathlib import Path

from gnn.manifest import VersionError, check_name
from serving.abtest import ABSplit, ABTest
from serving.app import Serving
from serving.engine import Engine
from serving.recommender import Recommender
from serving.shadow import Shadow, ShadowConfig
from serving.shadowproc import ShadowWork


def load_pinned(models_dir: Path, version: str, exact_threshold: int) -> Engine:
    """The version ``models_dir/version``; ``VersionError`` naming what is wrong (not a
    version name, no such version, a damaged one)."""
    directory = models_dir / check_name(version)
    if not directory.is_dir():
        raise VersionError(f"no model version {version!r} in {models_dir}")
    return Engine.load(directory, exact_threshold)


def pinned_recommender(serving: Serving, engine: Engine) -> Recommender:
    """A recommender answering with ``engine`` on ``serving``'s store, config, popularity
    fallback and store probe (its answers do not feed the served version's metrics)."""
    probe = serving.store_probe
    return Recommender(
        serving.recommender.store,
        lambda: engine,
        serving.recommender_config,
        serving.trending,
        store_up=lambda: probe.up,
    )


def with_ab(serving: Serving, engine: Engine, fraction: float) -> Recommender:
    """Answer ``fraction`` of ``serving``'s subjects with ``engine`` (arm ``b``, logged so);
    returns the recommender of arm ``b``."""
    other = pinned_recommender(serving, engine)
    split = ABSplit(engine.version, fraction)
    serving.recommender.ab = ABTest(split, other)
    serving.server.servicer.split = split
    return other


def with_shadow(serving: Serving, work: ShadowWork, config: ShadowConfig | None = None) -> Shadow:
    """Score every Recommend request ``serving`` answers again in a process opening
    ``work``, which logs its lists beside the served ones; ``ValueError`` when ``serving``
    keeps no recommendation log. The caller starts the returned ``Shadow`` and stops it
    before ``serving``."""
    if serving.recommendations is None:
        raise ValueError("a shadow version needs the recommendation log to write its lists to")
    shadow = Shadow(work, serving.metrics.registry, config)
    serving.server.servicer.shadow = shadow
    return shadow

"""``graphrec serve --shadow VERSION`` and ``--ab VERSION:FRACTION``: the values checked and the
versions loaded before anything starts, then put to work on the service (``serving.pinned``)
with a change feed each, so their item tables stay as fresh as the served one's. The A/B
version answers in the server's process; the shadow in a process of its own
(``serving.shadow``), which loads the version again and follows the stream itself
(``graphrec.shadowjob``).

A bad value (not VERSION:FRACTION, a fraction outside (0, 1), a version the models directory
does not hold or cannot load, the version being served, a shadow without the recommendation
log or on a ``memory://`` store, which another process cannot open) stops ``serve`` with one
line and the usage exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Protocol

import typer

from gnn.checkpoint import current_version
from gnn.manifest import VersionError
from graphrec.changefeed import ChangeFeed, Positions
from graphrec.shadowjob import ShadowJob
from graphstore import GraphStore
from serving.app import Serving
from serving.engine import Engine
from serving.loops import LoopState
from serving.pinned import load_pinned, with_ab, with_shadow
from serving.recommender import Recommender, RecommenderConfig
from serving.shadow import LOOP_NAME as SHADOW_LOOP
from serving.shadow import Shadow

USAGE_EXIT = 2
ShadowOpt = Annotated[
    str | None,
    typer.Option(
        "--shadow",
        metavar="VERSION",
        help="Also score every Recommend request with this model version (of the models "
        "directory), off the request path, and log its list beside the served one (arm "
        "shadow); dropped and counted when it falls behind.",
    ),
]
AbOpt = Annotated[
    str | None,
    typer.Option(
        "--ab",
        metavar="VERSION:FRACTION",
        help="Answer FRACTION (between 0 and 1) of users and sessions, split by a stable hash "
        "of their id, with this model version (arm b).",
    ),
]


class BadPinned(ValueError):
    """A --shadow or --ab value serve cannot use; the message says why."""


class ServeSettings(Protocol):
    """What ``graphrec serve`` runs (``graphrec.serving_cli.ServeJob``), as far as the pinned
    versions need it."""

    @property
    def store_url(self) -> str: ...
    @property
    def models_dir(self) -> Path: ...
    @property
    def recommender(self) -> RecommenderConfig: ...
    @property
    def trending_url(self) -> str: ...
    @property
    def recommendation_log(self) -> str | None: ...
    @property
    def follow_url(self) -> str | None: ...
    @property
    def shadow(self) -> str | None: ...
    @property
    def ab(self) -> str | None: ...


@dataclass
class Pinned:
    """The shadow version (checked, for its process to load) and the A/B split's other
    version (loaded); and, once at work, what serves them."""

    shadow: ShadowJob | None = None
    ab: tuple[Engine, float] | None = None
    _shadow: Shadow | None = None
    _feeds: list[ChangeFeed] = field(default_factory=list)
    _recommenders: dict[str, Recommender] = field(default_factory=dict)  # by arm

    def attach(self, serving: Serving) -> None:
        """Put the versions to work on ``serving`` (before it starts)."""
        if self.ab is not None:
            self._recommenders["b"] = with_ab(serving, *self.ab)
        if self.shadow is not None:
            self._shadow = with_shadow(serving, self.shadow)

    def start(self, serving: Serving, graph: GraphStore, follow_url: str | None) -> None:
        """Start the shadow's process, and a change feed for the A/B version on
        ``follow_url``."""
        if self._shadow is not None:
            state = LoopState(SHADOW_LOOP, serving.metrics.loops, serving.server.set_health)
            self._shadow.start(state)
        if follow_url is None:
            return
        for arm, recommender in self._recommenders.items():
            engine = recommender.engine()
            name = f"change-feed-{arm}"
            state = LoopState(name, serving.metrics.loops, serving.server.set_health)
            feed = ChangeFeed(
                follow_url,
                graph,
                recommender.refresh,
                state=state,
                start_from=_always(engine.watermarks),
            )
            feed.start()
            self._feeds.append(feed)

    def stop(self) -> None:
        """Stop the feeds and the shadow (before the service: its last lists are logged)."""
        for feed in self._feeds:
            feed.stop()
        if self._shadow is not None:
            self._shadow.stop()

    def describe(self) -> str:
        """``; shadow V; A/B: V answers 10% of subjects`` for the start-up line."""
        text = f"; shadow {self.shadow.version}" if self.shadow is not None else ""
        if self.ab is not None:
            text += f"; A/B: {self.ab[0].version} answers {self.ab[1]:.0%} of subjects"
        return text


def _always(marks: Positions) -> Callable[[], Positions]:
    """The pinned version's watermarks, the same object every time (the feed's contract)."""
    return lambda: marks


def load_pinned_versions(job: ServeSettings) -> Pinned:
    """Check ``--shadow`` and ``--ab`` of ``job`` and load their versions; on a bad value
    print one line and exit with the usage code."""
    try:
        return _load(job)
    except BadPinned as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(USAGE_EXIT) from None


def parse_ab(text: str) -> tuple[str, float]:
    """``VERSION:FRACTION`` → (version, fraction in (0, 1)); ``BadPinned`` otherwise."""
    version, colon, share = text.rpartition(":")
    try:
        fraction = float(share)
    except ValueError:
        fraction = float("nan")
    if not (colon and version) or not 0.0 < fraction < 1.0:
        raise BadPinned(
            f"--ab takes VERSION:FRACTION with FRACTION between 0 and 1 (exclusive), got {text!r}"
        )
    return version, fraction


def _load(job: ServeSettings) -> Pinned:
    models_dir, shadow = job.models_dir, job.shadow
    exact_threshold = job.recommender.exact_threshold
    reclog = job.recommendation_log
    if shadow is not None and reclog is None:
        raise BadPinned(
            "--shadow writes its lists to the recommendation log: drop --no-recommendation-log"
        )
    split = parse_ab(job.ab) if job.ab is not None else None
    try:
        served = current_version(models_dir)
    except VersionError as exc:
        raise BadPinned(str(exc)) from None
    named = {"--shadow": shadow, "--ab": split[0] if split else None}
    for flag, version in named.items():
        if version is not None and version == served:
            raise BadPinned(f"{flag} names {version}, the version being served: name another one")
    pinned = Pinned()
    try:
        if shadow is not None and reclog is not None:
            pinned.shadow = _shadow_job(job, shadow, reclog)
        if split is not None:
            pinned.ab = (load_pinned(models_dir, split[0], exact_threshold), split[1])
    except VersionError as exc:
        raise BadPinned(str(exc)) from None
    return pinned


def _shadow_job(job: ServeSettings, shadow: str, reclog: str) -> ShadowJob:
    """What the shadow's process opens (logging to ``reclog``), once the version loads here
    and the store is one another process can open."""
    load_pinned(job.models_dir, shadow, job.recommender.exact_threshold)  # loaded again there
    if job.store_url.startswith("memory:"):
        raise BadPinned(
            "--shadow scores in a process of its own, which cannot open a memory:// store: "
            "use sqlite://PATH or neo4j://HOST:PORT"
        )
    return ShadowJob(
        job.store_url,
        job.models_dir,
        shadow,
        reclog,
        job.recommender,
        job.follow_url,
        job.trending_url,
    )

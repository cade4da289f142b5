"""``graphrec serve --shadow VERSION`` and ``--ab VERSION:FRACTION``: the values checked and the
versions loaded before anything starts, then put to work on the service (``serving.pinned``)
with a change feed each, so their item tables stay as fresh as the served one's.

A bad value (not VERSION:FRACTION, a fraction outside (0, 1), a version the models directory
does not hold or cannot load, the version being served, a shadow without the recommendation
log) stops ``serve`` with one line and the usage exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from gnn.checkpoint import current_version
from gnn.manifest import VersionError
from graphrec.changefeed import ChangeFeed, Positions
from graphstore import GraphStore
from serving.app import Serving
from serving.engine import Engine
from serving.loops import LoopState
from serving.pinned import load_pinned, with_ab, with_shadow
from serving.recommender import Recommender, RecommenderConfig
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


@dataclass
class Pinned:
    """The shadow version and the A/B split's other version, loaded; and, once at work, the
    threads that serve them."""

    shadow: Engine | None = None
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
            self._recommenders["shadow"] = self._shadow.recommender

    def start(self, serving: Serving, graph: GraphStore, follow_url: str | None) -> None:
        """Start the shadow's worker, and a change feed per version on ``follow_url``."""
        if self._shadow is not None:
            self._shadow.start()
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


def load_pinned_versions(
    models_dir: Path, shadow: str | None, ab: str | None, logged: bool, config: RecommenderConfig
) -> Pinned:
    """Check ``--shadow`` and ``--ab`` (``logged``: whether answers go to a recommendation
    log) and load their versions; on a bad value print one line and exit with the usage
    code."""
    try:
        return _load(models_dir, shadow, ab, logged, config.exact_threshold)
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


def _load(
    models_dir: Path, shadow: str | None, ab: str | None, logged: bool, exact_threshold: int
) -> Pinned:
    if shadow is not None and not logged:
        raise BadPinned(
            "--shadow writes its lists to the recommendation log: drop --no-recommendation-log"
        )
    split = parse_ab(ab) if ab is not None else None
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
        if shadow is not None:
            pinned.shadow = load_pinned(models_dir, shadow, exact_threshold)
        if split is not None:
            pinned.ab = (load_pinned(models_dir, split[0], exact_threshold), split[1])
    except VersionError as exc:
        raise BadPinned(str(exc)) from None
    return pinned

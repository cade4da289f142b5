"""``graphrec replay``: the events after a point in time, one by one, against the live service.

Before each event is produced it asks the service what a backend would ask at that moment:
Recommend for the event's user (or its session, with the session's events so far), ``k``
items, the subject's seen items excluded. The answer is scored against the event's item
(``graphrec.replay_score``). An event whose item the subject had already touched is produced
but not scored: an answer that excludes seen items cannot hold it (``repeats``).
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from graphrec.replay_score import KNOWN_USER, NEW_USER, SESSION, Scored, rank_of, reason_kind
from graphstore import Interaction, ItemRecord, NodeKind, NodeRef
from protos import graphrec_pb2 as pb
from streaming.codec import encode_event

SESSION_EVENTS = 50  # most recent events of a session sent with its requests

Recommend = Callable[[pb.RecommendRequest], pb.RecommendResponse]


def split_index(events: Sequence[Interaction], split_at: float) -> int:
    """Where the time-ordered ``events`` split: ``split_at`` in (0, 1) is the share of events
    before the split; a larger number is a Unix time (the first event at or after it)."""
    if 0 < split_at < 1:
        return round(len(events) * split_at)
    if split_at >= 1:
        return bisect.bisect_left([e.ts for e in events], split_at)
    raise ValueError(f"--split-at takes a share in (0, 1) or a time, got {split_at:g}")


class History:
    """What the stream held before the event in hand: each actor's items, every item any
    event touched, and each session's most recent events."""

    def __init__(self, events: Iterable[Interaction] = ()) -> None:
        self.seen: dict[NodeRef, set[str]] = {}
        self.items: set[str] = set()
        self.sessions: dict[str, deque[Interaction]] = {}
        for e in events:
            self.add(e)

    def add(self, e: Interaction) -> None:
        self.seen.setdefault(e.actor, set()).add(e.item_id)
        self.items.add(e.item_id)
        if e.actor.kind is NodeKind.SESSION:
            self.sessions.setdefault(e.actor.key, deque(maxlen=SESSION_EVENTS)).append(e)

    def is_repeat(self, e: Interaction) -> bool:
        """Whether ``e``'s actor had touched ``e``'s item before."""
        return e.item_id in self.seen.get(e.actor, ())

    def subject_kind(self, e: Interaction) -> str:
        if e.actor.kind is NodeKind.SESSION:
            return SESSION
        return KNOWN_USER if e.actor in self.seen else NEW_USER

    def subject(self, e: Interaction, with_events: bool = True) -> pb.Subject:
        """The request subject for ``e``'s actor: a user by id, a session by id with its
        events so far (``with_events``) as a backend holding the session would send them."""
        if e.actor.kind is NodeKind.USER:
            return pb.Subject(user_id=e.actor.key)
        events = self.sessions.get(e.actor.key, ()) if with_events else ()
        context = pb.SessionContext(
            session_id=e.actor.key, events=[pb.Event.FromString(encode_event(x)) for x in events]
        )
        return pb.Subject(session=context)

    def request(self, e: Interaction, k: int) -> pb.RecommendRequest:
        """What a backend asks before ``e``: Recommend ``k`` for its actor, seen excluded."""
        return pb.RecommendRequest(subject=self.subject(e), k=k)


@dataclass(frozen=True)
class Source:
    """The history to replay: catalogue and time-ordered events, split in two."""

    name: str
    items: list[ItemRecord]
    before: list[Interaction]
    after: list[Interaction]


@dataclass(frozen=True)
class ReplaySettings:
    k: int = 20
    speed: float = 0.0  # N× event time; 0: as fast as possible
    probe_every: int = 50  # offer every Nth event to the lag probe (0: no probe)


@dataclass
class Outcome:
    """What a replay scored and produced."""

    scored: list[Scored] = field(default_factory=list)
    repeats: int = 0  # produced, not scored: the subject had touched the item before
    produced: int = 0
    seconds: float = 0.0


class Pacer:
    """Sleeps until each event is due: ``(ts - first ts) / speed`` after the start."""

    def __init__(
        self,
        speed: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.speed, self._clock, self._sleep = speed, clock, sleep
        self._start: tuple[float, float] | None = None  # (clock, event time) of the first

    def wait(self, ts: float) -> None:
        if self.speed <= 0:
            return
        if self._start is None:
            self._start = (self._clock(), ts)
        due = self._start[0] + (ts - self._start[1]) / self.speed
        if due > self._clock():
            self._sleep(due - self._clock())


def replay(
    events: Sequence[Interaction],
    history: History,
    recommend: Recommend,
    send: Callable[[Interaction], None],
    settings: ReplaySettings,
    probe: Callable[[pb.Subject, str], object] | None = None,
    progress: Callable[[int], None] | None = None,
    pacer: Pacer | None = None,
) -> Outcome:
    """Ask, score, produce each of ``events`` in order; ``history`` holds what came before
    and is updated as events are produced. ``probe`` is offered every
    ``settings.probe_every``-th event right after it was produced (subject without request
    events, item)."""
    started = time.perf_counter()
    pacer = pacer or Pacer(settings.speed)
    outcome = Outcome()
    for index, e in enumerate(events):
        pacer.wait(e.ts)
        if history.is_repeat(e):
            outcome.repeats += 1
        else:
            outcome.scored.append(_ask(index, e, history, recommend, settings.k))
        send(e)
        outcome.produced += 1
        history.add(e)
        if probe is not None and settings.probe_every and index % settings.probe_every == 0:
            probe(history.subject(e, with_events=False), e.item_id)
        if progress is not None:
            progress(1)
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


def _ask(index: int, e: Interaction, history: History, recommend: Recommend, k: int) -> Scored:
    answer = recommend(history.request(e, k))
    return Scored(
        index=index,
        ts=e.ts,
        behaviour=e.behaviour.name.lower(),
        subject=history.subject_kind(e),
        cold_item=e.item_id not in history.items,
        rank=rank_of(e.item_id, [i.item_id for i in answer.items], k),
        model_version=answer.model_version,
        fallback=answer.fallback,
        fallback_reason=reason_kind(answer.fallback_reason) if answer.fallback else "",
    )

"""A local graph: a live neighbourhood as model-ready edge arrays (a request's subjects and
their one-hop edges, two hops for Explain; or the 2-hop neighbourhood of items re-embedded).

Actors (users and sessions) and items of the neighbourhood get local indices. The subjects of
the requests come first, in order (actor ``i`` is subject ``i``; a batch of requests shares one
graph), then any other actors. A session's request events that the graph does not hold yet are
added as edges of its subject (``in_graph`` False: the model uses them, explanations cannot draw
them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gnn.data import Interactions
from graphstore import INTERACTION_RELATIONSHIPS, Neighbourhood, NodeKind, NodeRef
from serving.types import SessionEvent

ACTOR_KINDS = (NodeKind.USER, NodeKind.SESSION)
BEHAVIOUR_OF = {rel: b for b, rel in enumerate(INTERACTION_RELATIONSHIPS)}


@dataclass(frozen=True)
class LocalGraph:
    actors: list[NodeRef]  # actors[i] is subject i for i < num_subjects
    items: list[str]
    edges: Interactions  # actor and item index the lists above
    in_graph: npt.NDArray[np.bool_]  # [E] False for request events the graph lacks
    num_subjects: int = 1

    def edges_of(self, actor: int) -> npt.NDArray[np.int64]:
        return np.flatnonzero(self.edges.actor == actor)

    def items_of(self, actor: int) -> list[str]:
        return [self.items[i] for i in self.edges.item[self.edges_of(actor)].tolist()]

    def newest_ts_of(self, actor: int) -> float | None:
        """Event time of the actor's newest edge in the graph (freshness metric)."""
        mine = self.edges_of(actor)
        mine = mine[self.in_graph[mine]]
        return float(self.edges.last_ts[mine].max()) if len(mine) else None

    @property
    def subject_edges(self) -> npt.NDArray[np.int64]:
        return self.edges_of(0)


def local_graph(
    hood: Neighbourhood | None,
    subjects: Sequence[NodeRef] = (),
    events: Sequence[Sequence[SessionEvent]] = (),
) -> LocalGraph:
    """The interaction edges of ``hood`` plus each subject's request ``events`` (aligned with
    ``subjects``). A subject without a key is never matched against the graph; a subject listed
    twice gets its edges twice. Without subjects (re-embedding items) actors are numbered in
    order of appearance."""
    slots: dict[NodeRef, list[int]] = {}
    for i, subject in enumerate(subjects):
        if subject.key:
            slots.setdefault(subject, []).append(i)
    others: dict[NodeRef, int] = {}
    items: dict[str, int] = {}
    rows: dict[tuple[int, int, int], list[float]] = {}  # (actor, item, b) → [count, last_ts]
    in_graph: dict[tuple[int, int, int], bool] = {}
    triples = [] if hood is None else hood.edge_keys_list()
    aggregates = (
        [] if hood is None else list(zip(hood.count.tolist(), hood.last_ts.tolist(), strict=True))
    )
    for (actor, rel, item), (count, last) in zip(triples, aggregates, strict=True):
        b = BEHAVIOUR_OF.get(rel)
        if b is None or actor.kind not in ACTOR_KINDS or item.kind is not NodeKind.ITEM:
            continue
        at = slots.get(actor)
        if at is None:
            at = [others.setdefault(actor, len(subjects) + len(others))]
        j = items.setdefault(item.key, len(items))
        for a in at:
            rows[(a, j, b)] = [count, last]
            in_graph[(a, j, b)] = True
    for a, subject_events in enumerate(events):
        for event in subject_events:
            key = (a, items.setdefault(event.item_id, len(items)), int(event.behaviour) - 1)
            if key not in rows:
                rows[key], in_graph[key] = [0, event.ts], False
            # the graph may already count this event: never count one event twice
            if not in_graph[key]:
                rows[key][0] += 1
            rows[key][1] = max(rows[key][1], event.ts)
    keys = list(rows)
    arr = np.array(keys, np.int64).reshape(-1, 3)
    values = np.array([rows[k] for k in keys], np.float64).reshape(-1, 2)
    edges = Interactions(
        arr[:, 0].copy(),
        arr[:, 1].copy(),
        arr[:, 2].copy(),
        values[:, 0].astype(np.int64),
        values[:, 1].copy(),
    )
    return LocalGraph(
        [*subjects, *others],
        list(items),
        edges,
        np.array([in_graph[k] for k in keys], bool),
        len(subjects),
    )

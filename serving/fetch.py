"""The live neighbourhoods of a request's subjects: one graph round trip for all of them."""

from __future__ import annotations

from collections.abc import Sequence

from graphstore import (
    INTERACTION_RELATIONSHIPS,
    MAX_SEEDS,
    GraphStore,
    InvalidInput,
    NodeKind,
    NodeRef,
)
from serving.subgraph import LocalGraph, local_graph
from serving.types import BadRequest, Subject

Failed = dict[int, Exception]  # subject slot → why the store refused its lookup


def fetch_subjects(
    store: GraphStore, subjects: Sequence[Subject], fanouts: Sequence[int], hops: int = 1
) -> tuple[LocalGraph, Failed]:
    """The subjects' live edges plus their request events, subject ``i`` as actor ``i``;
    with ``hops`` 2 also the other actors of the subjects' items (for explanations).
    Subjects whose lookup the store refused are returned with the reason, their slots left
    without edges.

    One hop is all the model needs: the item table holds every item's final embedding,
    kept fresh from live 2-hop neighbourhoods, and the output layer aggregates those over
    the subject's edges. A subject without a key (an item asked about as a session) has
    only its request events.
    """
    seeds: list[NodeRef] = []
    for subject in subjects:
        if subject.key:
            seeds.append(subject.node)
        if hops > 1:
            seeds += [NodeRef(NodeKind.ITEM, e.item_id) for e in subject.events]
    hood = None
    if seeds:
        caps = tuple(fanouts[:hops])
        if not any(s.key for s in subjects):
            caps = caps[1:] or caps
        try:
            hood = store.neighbourhood(
                list(dict.fromkeys(seeds))[:MAX_SEEDS], caps, INTERACTION_RELATIONSHIPS
            )
        except InvalidInput as exc:
            if len(subjects) == 1:
                raise BadRequest(str(exc)) from None
            return _fetch_apart(store, subjects, fanouts, hops)  # find whose key it was
    graph = local_graph(hood, [s.node for s in subjects], [s.events for s in subjects])
    return graph, {}


def _fetch_apart(
    store: GraphStore, subjects: Sequence[Subject], fanouts: Sequence[int], hops: int
) -> tuple[LocalGraph, Failed]:
    """``fetch_subjects`` one subject at a time, the refused ones without their edges."""
    failed: Failed = {}
    for slot, subject in enumerate(subjects):
        try:
            fetch_subjects(store, [subject], fanouts, hops)
        except BadRequest as exc:
            failed[slot] = exc
    fine = [s if i not in failed else Subject(s.kind, "") for i, s in enumerate(subjects)]
    graph, _ = fetch_subjects(store, fine, fanouts, hops)
    return graph, failed

"""The synthetic shop's shopping journeys: what a user bought and what they only viewed lead to
different next sessions."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

import pytest

from gnn.datasets import SyntheticConfig, generate
from gnn.datasets.synthetic import product_types, routine_next
from graphstore import Behaviour, Interaction, NodeKind


def test_a_purchase_closes_a_need_and_an_open_need_returns() -> None:
    dataset = generate(SyntheticConfig(seed=1, events=20_000, journeys=True))
    types = product_types()
    type_of = {item.item_id: types.index(item.category_path[:2]) for item in dataset.items}
    sessions: dict[str, list[Interaction]] = defaultdict(list)
    for event in dataset.interactions:
        if event.actor.kind is NodeKind.USER:
            sessions[event.event_id.rsplit("-", 1)[0]].append(event)
    # a user's sessions in time order, each as (need, bought); sessions that viewed two or more
    # items of one product type shopped for that need (window shopping spreads over the shop)
    journeys: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for events in sorted(sessions.values(), key=lambda s: s[0].ts):
        viewed = {type_of[e.item_id] for e in events if e.behaviour is Behaviour.VIEW}
        views = sum(e.behaviour is Behaviour.VIEW for e in events)
        if len(viewed) == 1 and views >= 2:
            bought = any(e.behaviour is Behaviour.PURCHASE for e in events)
            journeys[events[0].actor.key].append((viewed.pop(), bought))

    after_purchase, after_none = [], []
    for steps in journeys.values():
        for (need, bought), (next_need, _) in pairwise(steps):
            (after_purchase if bought else after_none).append((need, next_need))
    assert len(after_purchase) > 200 and len(after_none) > 500
    same_open = sum(a == b for a, b in after_none) / len(after_none)
    same_closed = sum(a == b for a, b in after_purchase) / len(after_purchase)
    to_routine = sum(routine_next(types, a) == b for a, b in after_purchase) / len(after_purchase)
    assert same_open > 0.6  # an open need is still being shopped for
    assert same_closed < 0.2  # a bought need is closed
    assert to_routine > 0.5  # shampoo → conditioner


@pytest.mark.parametrize("journeys", [False, True])
def test_same_seed_same_shop(journeys: bool) -> None:
    first = generate(SyntheticConfig(seed=4, events=3_000, journeys=journeys))
    again = generate(SyntheticConfig(seed=4, events=3_000, journeys=journeys))
    assert first.interactions == again.interactions and first.items == again.items
    assert len(first.interactions) == 3_000
    span = first.interactions[-1].ts - first.interactions[0].ts
    assert 0.7 * 30 * 86_400 < span < 1.3 * 30 * 86_400  # sessions spread over the timeline

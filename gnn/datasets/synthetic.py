"""A seeded synthetic multi-behaviour e-commerce stream, shaped like a cosmetics shop.

What it models (the REES46 cosmetics-shop data in the seeds has these properties):

* a three-level category tree; every item sits in one leaf and has a log-normal price;
* item popularity with a long tail (Zipf weights), items appearing over time;
* users with a few favourite subtrees, and anonymous sessions;
* sessions that go through a view → click → cart → purchase funnel, each step with a
  lower probability, mostly within one category; sessions outside a user's taste are window
  shopping: views that rarely convert (so behaviour types carry different signal);
* with ``journeys`` on, shopping journeys: a logged-in user's session serves one need, a
  product type such as shampoo. A need with no purchase yet is usually still open at the next
  visit; a purchase closes it, and the next visit often goes to the routine's next product
  type (shampoo → conditioner). So what a user viewed and what they bought point at different
  next purchases.

Same seed, same data. ``Dataset.ledger()`` gives the exact edge aggregates produced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gnn.datasets.base import Dataset
from graphstore import Behaviour, Interaction, ItemRecord, NodeKind, NodeRef

START_TS = 1_790_812_800.0  # 2026-10-01T00:00:00Z
TREE = {
    "face": ("cleansers", "moisturizers", "serums", "masks"),
    "makeup": ("lips", "eyes", "foundation", "nails"),
    "hair": ("shampoo", "conditioner", "styling"),
    "body": ("lotions", "wash", "deodorant"),
    "fragrance": ("women", "men", "unisex"),
}
LEAF_KINDS = ("basic", "premium")


@dataclass(frozen=True)
class SyntheticConfig:
    seed: int = 0
    events: int = 20_000  # interactions to produce (exactly)
    users: int = 1_000
    items: int = 2_000
    days: float = 30.0  # span of the timeline
    anonymous_share: float = 0.3  # sessions with no logged-in user
    late_item_share: float = 0.3  # items that first appear after the start
    zipf_exponent: float = 1.1  # item popularity long tail
    in_taste_share: float = 0.7  # sessions that browse one of the user's favourite subtrees
    browse_intent: float = 0.1  # conversion multiplier when browsing outside one's taste
    views_per_session: float = 4.0  # mean number of items viewed in a session
    p_click: float = 0.5  # view → click
    p_cart: float = 0.3  # click → cart
    p_purchase: float = 0.5  # cart → purchase
    journeys: bool = False  # sessions serve needs that persist until bought (off: each session
    # browses one of the user's favourite subtrees, independently of the last)
    p_need_open: float = 0.8  # journeys: a need not bought yet is the next session's need too
    p_routine_next: float = 0.7  # journeys: after a purchase, the routine's next type follows


def leaf_paths() -> list[tuple[str, ...]]:
    """Every leaf category path of the synthetic tree, root first."""
    return [(top, mid, kind) for top, mids in TREE.items() for mid in mids for kind in LEAF_KINDS]


def generate(config: SyntheticConfig = SyntheticConfig()) -> Dataset:
    """Generate the catalogue and exactly ``config.events`` time-ordered interactions."""
    rng = np.random.default_rng(config.seed)
    leaves = leaf_paths()
    leaf_of = rng.integers(0, len(leaves), config.items)
    items = _catalogue(rng, config, leaves, leaf_of)
    appear = np.array([i.ts for i in items])
    weight = 1.0 / np.arange(1, config.items + 1) ** config.zipf_exponent
    weight = weight[rng.permutation(config.items)]
    tops = list(TREE)
    taste = [
        rng.choice(len(tops), size=rng.integers(1, 4), replace=False) for _ in range(config.users)
    ]
    top_of_leaf = np.array([tops.index(leaves[j][0]) for j in leaf_of])
    types = product_types()
    type_of = np.array([types.index(leaves[j][:2]) for j in leaf_of])
    journeys = _Journeys(config, types, taste)

    span = config.days * 86_400.0
    gap = span / _expected_sessions(config)
    start = START_TS
    events: list[Interaction] = []
    n_session = 0
    while len(events) < config.events:
        n_session += 1
        # journeys need each user's sessions in time order; otherwise any order will do
        start = (
            start + float(rng.exponential(gap))
            if config.journeys
            else START_TS + float(rng.uniform(0, span))
        )
        user = int(rng.integers(config.users))
        anonymous = rng.random() < config.anonymous_share
        if anonymous:
            actor = NodeRef(NodeKind.SESSION, f"s{config.seed}-{n_session}")
        else:
            actor = NodeRef(NodeKind.USER, f"u{user}")
        in_taste = rng.random() < config.in_taste_share
        need, shelf = -1, np.ones(config.items, bool)
        if in_taste and config.journeys:
            need = journeys.need(rng, user, not anonymous)
            shelf = type_of == need
        elif in_taste:
            shelf = top_of_leaf == int(rng.choice(taste[user]))
        pool = np.flatnonzero((appear <= start) & shelf)
        if len(pool) == 0:
            continue
        p = weight[pool] / weight[pool].sum()
        n_views = 1 + int(rng.poisson(config.views_per_session - 1))
        seen = rng.choice(pool, size=min(n_views, len(pool)), replace=False, p=p)
        intent = 1.0 if in_taste else config.browse_intent
        session = _funnel(rng, config, actor, seen, start, n_session, intent)
        if not anonymous and need >= 0:
            bought = any(e.behaviour is Behaviour.PURCHASE for e in session)
            journeys.close(rng, user, need, bought)
        events.extend(session)
    events = sorted(events[: config.events], key=lambda i: (i.ts, i.event_id))
    return Dataset(f"synthetic-{config.seed}", items, events)


def product_types() -> list[tuple[str, str]]:
    """Every (top, mid) category pair: the needs a session shops for."""
    return [(top, mid) for top, mids in TREE.items() for mid in mids]


def routine_next(types: list[tuple[str, str]], need: int) -> int:
    """The product type a routine goes on to after ``need`` (an index into ``types``): the
    next one of its top-level category, shampoo → conditioner."""
    top, mid = types[need]
    return types.index((top, TREE[top][(TREE[top].index(mid) + 1) % len(TREE[top])]))


class _Journeys:
    """Each logged-in user's open need: kept until a purchase closes it, then (often) the
    routine's next product type within the same top-level category."""

    def __init__(
        self, config: SyntheticConfig, types: list[tuple[str, str]], taste: list[np.ndarray]
    ) -> None:
        self.config, self.types, self.taste = config, types, taste
        self.routine_next = [routine_next(types, need) for need in range(len(types))]
        self.open = np.full(config.users, -1)

    def need(self, rng: np.random.Generator, user: int, logged_in: bool) -> int:
        """The session's product type: the user's open need, or a fresh one in their taste
        (an anonymous session has a taste but no journey)."""
        if logged_in and self.open[user] >= 0:
            return int(self.open[user])
        top = list(TREE)[int(rng.choice(self.taste[user]))]
        return self.types.index((top, TREE[top][int(rng.integers(len(TREE[top])))]))

    def close(self, rng: np.random.Generator, user: int, need: int, bought: bool) -> None:
        if bought:
            keep = rng.random() < self.config.p_routine_next
            self.open[user] = self.routine_next[need] if keep else -1
        else:
            self.open[user] = need if rng.random() < self.config.p_need_open else -1


def _expected_sessions(config: SyntheticConfig) -> float:
    """Sessions needed for ``config.events`` interactions, from the funnel's probabilities."""
    deeper = config.p_cart * (1 + config.p_purchase)
    in_taste = 1 + config.p_click * (1 + deeper)
    outside = 1 + config.p_click * config.browse_intent * (1 + deeper)
    per_view = config.in_taste_share * in_taste + (1 - config.in_taste_share) * outside
    return max(1.0, config.events / (config.views_per_session * per_view))


def _catalogue(
    rng: np.random.Generator,
    config: SyntheticConfig,
    leaves: list[tuple[str, ...]],
    leaf_of: np.ndarray,
) -> list[ItemRecord]:
    span = config.days * 86_400.0
    late = rng.random(config.items) < config.late_item_share
    appear = np.where(late, START_TS + rng.uniform(0, 0.8 * span, config.items), START_TS)
    price = rng.lognormal(3.0, 0.8, config.items)
    return [
        ItemRecord(
            item_id=f"p{j}",
            category_path=leaves[int(leaf_of[j])],
            title=f"{leaves[int(leaf_of[j])][1]} #{j}",
            numeric_features=(("log_price", float(np.log1p(price[j]))),),
            ts=float(appear[j]),
        )
        for j in range(config.items)
    ]


def _funnel(
    rng: np.random.Generator,
    config: SyntheticConfig,
    actor: NodeRef,
    seen: np.ndarray,
    start: float,
    session: int,
    intent: float,
) -> list[Interaction]:
    out: list[Interaction] = []
    t = start
    for item in seen:
        steps = [Behaviour.VIEW]
        for behaviour, prob in (
            (Behaviour.CLICK, config.p_click * intent),
            (Behaviour.CART, config.p_cart),
            (Behaviour.PURCHASE, config.p_purchase),
        ):
            if rng.random() >= prob:
                break
            steps.append(behaviour)
        for behaviour in steps:
            t += float(rng.exponential(30.0)) + 1.0
            eid = f"e{config.seed}-{session}-{len(out)}"
            out.append(Interaction(eid, actor, f"p{int(item)}", behaviour, round(t, 3)))
    return out

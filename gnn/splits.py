"""Train/test splits over (actor, item) pairs: random per actor, temporal per actor, a global
time cut-off, cold items.

By default any interaction is a test target. With ``target`` behaviours (e.g. purchase), only
pairs where the actor did one of them are held out, as multi-behaviour recommenders are
evaluated: every behaviour feeds the model, the target behaviour is what it must predict. A
held-out pair loses all its edges (a purchase's view, click and cart too), so nothing of it
leaks into training and evaluation masks only what training saw.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from gnn.data import GraphData, IntArray, Interactions

SPLITS = ("random", "temporal", "cutoff", "cold-items")


@dataclass(frozen=True)
class Split:
    """``train`` edges; held-out ``(test_actor, test_item)`` pairs; candidate items to rank."""

    train: Interactions
    test_actor: IntArray
    test_item: IntArray
    candidates: npt.NDArray[np.bool_]  # [I]: items ranked at evaluation time
    name: str


def make_split(
    data: GraphData,
    kind: str,
    seed: int,
    test_share: float = 0.2,
    target: tuple[int, ...] = (),
) -> Split:
    """Hold out ``test_share`` of each actor's items (random or latest), or of all items.

    ``cutoff`` trains on every edge before the time by which ``1 − test_share`` of the edges
    had happened and tests on the pairs after it of actors seen before, of items new to them:
    whole sessions are hidden, as in deployment (the seed plays no part).

    ``target``: behaviour indices (into ``BEHAVIOURS``) whose pairs may be test pairs; empty
    means any behaviour. Per actor, ``test_share`` of its target pairs are held out (at least
    one, as long as the actor keeps another pair for training)."""
    if kind == "cutoff":
        return _cutoff_split(data, test_share, target)
    rng = np.random.default_rng(seed)
    pair_actor, pair_item, pair_ts = distinct_pairs(data.edges)
    eligible = _has_behaviour(data.edges, pair_actor, pair_item, target, data.num_items)
    if kind == "cold-items":
        cold = rng.random(data.num_items) < test_share
        removed = cold[pair_item]  # every pair of a cold item leaves training
        test = removed & eligible
        candidates = cold
    elif kind in ("random", "temporal"):
        key = rng.random(len(pair_actor)) if kind == "random" else pair_ts
        test = _last_share_per_actor(pair_actor, key, test_share, eligible)
        removed = test
        candidates = np.ones(data.num_items, bool)
    else:
        raise ValueError(f"unknown split {kind!r}: choose one of {', '.join(SPLITS)}")
    e = data.edges
    n = data.num_items
    keep = ~np.isin(pair_keys(e.actor, e.item, n), pair_keys(pair_actor, pair_item, n)[removed])
    return Split(e.take(keep), pair_actor[test], pair_item[test], candidates, kind)


def sample_actors(split: Split, most: int, seed: int) -> Split:
    """``split`` with the held-out pairs of at most ``most`` of its actors (a sample drawn
    with ``seed``) and only those actors' training edges, which is all evaluation reads of
    them; ``split`` itself when it holds no more actors than that."""
    actors = np.unique(split.test_actor)
    if len(actors) <= most:
        return split
    chosen = np.random.default_rng(seed).choice(actors, most, replace=False)
    held = np.isin(split.test_actor, chosen)
    return replace(
        split,
        train=split.train.take(np.isin(split.train.actor, chosen)),
        test_actor=split.test_actor[held],
        test_item=split.test_item[held],
    )


def _cutoff_split(data: GraphData, test_share: float, target: tuple[int, ...]) -> Split:
    e = data.edges
    cut = float(np.quantile(e.last_ts, 1.0 - test_share)) if len(e) else 0.0
    before = e.last_ts < cut
    train = e.take(before)
    seen_actor = np.zeros(data.num_actors, bool)
    seen_actor[train.actor] = True
    after = e.take(~before & seen_actor[e.actor])
    if target:
        after = after.take(np.isin(after.behaviour, target))
    n = data.num_items
    known = pair_keys(train.actor, train.item, n)
    later = np.unique(pair_keys(after.actor, after.item, n))  # sorted: by actor, then item
    test = later[~np.isin(later, known)]
    return Split(train, test // n, test % n, np.ones(data.num_items, bool), "cutoff")


def distinct_pairs(e: Interactions) -> tuple[IntArray, IntArray, npt.NDArray[np.float64]]:
    """Distinct (actor, item) pairs, sorted by actor then item, with their latest timestamp
    over behaviours."""
    order = np.lexsort((e.item, e.actor))
    a, i, t = e.actor[order], e.item[order], e.last_ts[order]
    new = np.ones(len(a), bool)
    new[1:] = (a[1:] != a[:-1]) | (i[1:] != i[:-1])
    starts = np.flatnonzero(new)
    return a[starts], i[starts], np.maximum.reduceat(t, starts) if len(t) else t


def pair_keys(actor: IntArray, item: IntArray, num_items: int) -> IntArray:
    """One int64 per (actor, item) pair (``actor * num_items + item``): pairs compare as
    numbers, with no Python object per edge."""
    return np.asarray(actor, np.int64) * num_items + item


def _has_behaviour(
    e: Interactions,
    pair_actor: IntArray,
    pair_item: IntArray,
    behaviours: tuple[int, ...],
    num_items: int,
) -> npt.NDArray[np.bool_]:
    """``[P]``: the pair has an edge of one of ``behaviours`` (all pairs when empty)."""
    if not behaviours:
        return np.ones(len(pair_actor), bool)
    m = np.isin(e.behaviour, behaviours)
    hit = pair_keys(e.actor[m], e.item[m], num_items)
    return np.isin(pair_keys(pair_actor, pair_item, num_items), hit)


def _last_share_per_actor(
    actor: IntArray,
    key: npt.NDArray[np.float64],
    share: float,
    eligible: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.bool_]:
    """Mark the ``share`` of each actor's eligible pairs with the largest ``key`` (at least
    one, if the actor has two or more pairs, so that one is left to train on)."""
    ok = np.ones(len(actor), bool) if eligible is None else eligible
    order = np.lexsort((key, ok, actor))  # per actor: ineligible first, then by key
    a = actor[order]
    starts = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
    sizes = np.diff(np.r_[starts, len(a)])
    n_ok = np.add.reduceat(ok[order].astype(np.int64), starts) if len(a) else sizes
    rank = np.arange(len(a)) - np.repeat(starts, sizes)
    n_test = np.where((sizes >= 2) & (n_ok >= 1), np.maximum(1, np.round(n_ok * share)), 0).astype(
        np.int64
    )
    n_test = np.minimum(n_test, sizes - 1)
    picked = rank >= np.repeat(sizes - n_test, sizes)
    out = np.zeros(len(actor), bool)
    out[order] = picked
    return out

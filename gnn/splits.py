"""Train/test splits over (actor, item) pairs: random per actor, temporal per actor, cold items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gnn.data import GraphData, IntArray, Interactions

SPLITS = ("random", "temporal", "cold-items")


@dataclass(frozen=True)
class Split:
    """``train`` edges; held-out ``(test_actor, test_item)`` pairs; candidate items to rank."""

    train: Interactions
    test_actor: IntArray
    test_item: IntArray
    candidates: npt.NDArray[np.bool_]  # [I]: items ranked at evaluation time
    name: str


def make_split(data: GraphData, kind: str, seed: int, test_share: float = 0.2) -> Split:
    """Hold out ``test_share`` of each actor's items (random or latest), or of all items."""
    rng = np.random.default_rng(seed)
    pair_actor, pair_item, pair_ts = _pairs(data.edges)
    if kind == "cold-items":
        cold = rng.random(data.num_items) < test_share
        test = cold[pair_item]
        candidates = cold
    elif kind in ("random", "temporal"):
        key = rng.random(len(pair_actor)) if kind == "random" else pair_ts
        test = _last_share_per_actor(pair_actor, key, test_share)
        candidates = np.ones(data.num_items, bool)
    else:
        raise ValueError(f"unknown split {kind!r}: choose one of {', '.join(SPLITS)}")
    held = set(zip(pair_actor[test].tolist(), pair_item[test].tolist(), strict=True))
    e = data.edges
    keep = np.fromiter(
        ((a, i) not in held for a, i in zip(e.actor.tolist(), e.item.tolist(), strict=True)),
        bool,
        len(e),
    )
    return Split(e.take(keep), pair_actor[test], pair_item[test], candidates, kind)


def _pairs(e: Interactions) -> tuple[IntArray, IntArray, npt.NDArray[np.float64]]:
    """Distinct (actor, item) pairs with their latest timestamp over behaviours."""
    order = np.lexsort((e.item, e.actor))
    a, i, t = e.actor[order], e.item[order], e.last_ts[order]
    new = np.ones(len(a), bool)
    new[1:] = (a[1:] != a[:-1]) | (i[1:] != i[:-1])
    starts = np.flatnonzero(new)
    return a[starts], i[starts], np.maximum.reduceat(t, starts) if len(t) else t


def _last_share_per_actor(
    actor: IntArray, key: npt.NDArray[np.float64], share: float
) -> npt.NDArray[np.bool_]:
    """Mark the ``share`` of each actor's pairs with the largest ``key`` (at least one, if
    the actor has two or more pairs)."""
    order = np.lexsort((key, actor))
    a = actor[order]
    starts = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
    sizes = np.diff(np.r_[starts, len(a)])
    rank = np.arange(len(a)) - np.repeat(starts, sizes)
    n_test = np.where(sizes >= 2, np.maximum(1, np.round(sizes * share)), 0).astype(np.int64)
    picked = rank >= np.repeat(sizes - n_test, sizes)
    out = np.zeros(len(actor), bool)
    out[order] = picked
    return out

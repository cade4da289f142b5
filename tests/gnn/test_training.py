"""Metrics, splits, checkpoints and training on small data (quality runs: test_quality)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gnn.checkpoint import snapshot_version, write_version
from gnn.data import GraphData
from gnn.inputs import to_graph
from gnn.metrics import hit_rate, mrr, ndcg, recall
from gnn.models import SageConfig
from gnn.splits import make_split
from gnn.train import GnnRecommender, TrainConfig, after_random_point
from gnn.version import load_version
from graphstore import CsrSnapshot


def test_metrics_on_a_hand_checked_ranking() -> None:
    hits = np.array([[0, 1, 0], [0, 0, 0]], np.float64)
    n_rel = np.array([2, 1])
    assert recall(hits, n_rel) == pytest.approx((0.5 + 0) / 2)
    assert mrr(hits, n_rel) == pytest.approx((1 / 2 + 0) / 2)
    assert hit_rate(hits, n_rel) == pytest.approx(0.5)
    ideal = 1 + 1 / np.log2(3)
    assert ndcg(hits, n_rel) == pytest.approx(((1 / np.log2(3)) / ideal + 0) / 2)


@pytest.mark.parametrize("kind", ["random", "temporal", "cutoff", "cold-items"])
def test_splits_hold_out_pairs_that_training_never_sees(small: GraphData, kind: str) -> None:
    split = make_split(small, kind, seed=0)
    train_pairs = set(zip(split.train.actor.tolist(), split.train.item.tolist(), strict=True))
    test_pairs = set(zip(split.test_actor.tolist(), split.test_item.tolist(), strict=True))
    assert test_pairs and not (train_pairs & test_pairs)
    if kind == "cold-items":
        assert not np.isin(split.train.item, np.flatnonzero(split.candidates)).any()
    if kind == "temporal":
        # every held-out pair of an actor is at least as recent as that actor's training pairs
        last_train = {}
        for a, t in zip(split.train.actor.tolist(), split.train.last_ts.tolist(), strict=True):
            last_train[a] = max(last_train.get(a, -np.inf), t)
        e = small.edges
        ts: dict[tuple[int, int], float] = {}
        for a, i, t in zip(e.actor.tolist(), e.item.tolist(), e.last_ts.tolist(), strict=True):
            ts[(a, i)] = max(ts.get((a, i), -np.inf), t)
        assert all(ts[p] >= last_train.get(p[0], -np.inf) - 1e-6 for p in test_pairs)


@pytest.mark.parametrize("kind", ["random", "temporal", "cold-items"])
def test_target_split_holds_out_only_target_pairs_with_all_their_edges(
    small: GraphData, kind: str
) -> None:
    purchase = 3  # index of PURCHASE in BEHAVIOURS
    split = make_split(small, kind, seed=0, target=(purchase,))
    e = small.edges
    bought = e.behaviour == purchase
    purchases = set(zip(e.actor[bought].tolist(), e.item[bought].tolist(), strict=True))
    test_pairs = set(zip(split.test_actor.tolist(), split.test_item.tolist(), strict=True))
    train_pairs = set(zip(split.train.actor.tolist(), split.train.item.tolist(), strict=True))
    assert test_pairs and test_pairs <= purchases
    assert not (train_pairs & test_pairs)  # the pair's view, click and cart left training too
    assert set(split.train.behaviour.tolist()) == {0, 1, 2, 3}  # every behaviour still feeds
    if kind != "cold-items":
        # every actor with a held-out purchase keeps something to train on
        assert set(split.test_actor.tolist()) <= set(split.train.actor.tolist())
    else:
        assert not np.isin(split.train.item, np.flatnonzero(split.candidates)).any()


def test_cutoff_split_trains_on_the_past_and_tests_what_known_actors_did_next(
    small: GraphData,
) -> None:
    purchase = 3
    split = make_split(small, "cutoff", seed=0, target=(purchase,))
    e = small.edges
    cut = np.quantile(e.last_ts, 0.8)
    assert len(split.train) == int((e.last_ts < cut).sum())  # every edge before the cut
    assert (split.train.last_ts < cut).all()
    late = (e.last_ts >= cut) & (e.behaviour == purchase)
    purchases_after = set(zip(e.actor[late].tolist(), e.item[late].tolist(), strict=True))
    test_pairs = set(zip(split.test_actor.tolist(), split.test_item.tolist(), strict=True))
    train_pairs = set(zip(split.train.actor.tolist(), split.train.item.tolist(), strict=True))
    assert test_pairs and test_pairs <= purchases_after
    assert not (test_pairs & train_pairs)  # items new to the actor
    assert set(split.test_actor.tolist()) <= set(split.train.actor.tolist())
    again = make_split(small, "cutoff", seed=1, target=(purchase,))
    assert np.array_equal(again.test_item, split.test_item)  # the seed plays no part


def test_temporal_supervision_predicts_each_actors_latest_pairs_from_its_earlier_ones() -> None:
    rng = np.random.default_rng(0)
    actor = rng.permutation(np.repeat(np.arange(400), rng.integers(1, 6, 400)))
    ts = rng.random(len(actor))
    supervised_counts = []
    for _ in range(20):
        sup = after_random_point(actor, ts, rng)
        for a in range(400):
            s, t = sup[actor == a], ts[actor == a]
            if len(s) == 1:
                assert not s.any()  # nothing to predict it from
                continue
            assert s.any() and (~s).any()
            assert t[s].min() > t[~s].max()  # the latest pairs, predicted from the earlier
            if len(s) == 5:
                supervised_counts.append(int(s.sum()))
    # the point is uniform over the four places between five pairs
    shares = np.bincount(supervised_counts, minlength=5)[1:] / len(supervised_counts)
    assert np.allclose(shares, 0.25, atol=0.06)


def test_temporal_supervision_learns_and_needs_full_graph_steps(small: GraphData) -> None:
    from gnn.evaluate import evaluate

    split = make_split(small, "cutoff", 0)
    config = TrainConfig(epochs=30, supervision="temporal", sage=SageConfig(dim=32))
    sage = GnnRecommender(config)
    sage.fit(small, split.train, 0)
    assert evaluate(sage, small, split)["recall@20"] > 3 * 20 / small.num_items
    with pytest.raises(ValueError, match="temporal supervision needs mode 'full'"):
        GnnRecommender(replace(config, mode="sampled")).fit(small, split.train, 0)
    with pytest.raises(ValueError, match="unknown supervision"):
        GnnRecommender(replace(config, supervision="future")).fit(small, split.train, 0)


@pytest.mark.parametrize("model", ["sage", "lightgcn"])
def test_training_is_bit_for_bit_the_same_for_a_seed_whatever_the_thread_count(
    small: GraphData, model: str
) -> None:
    split = make_split(small, "random", 0)
    threads = torch.get_num_threads()
    states = []
    try:
        for n in (2, 2, 1):
            torch.set_num_threads(n)
            rec = GnnRecommender(TrainConfig(model=model, epochs=3, eval_every=3))
            rec.fit(small, split.train, seed=0)
            states.append(rec.model.state_dict())
    finally:
        torch.set_num_threads(threads)
    for other in states[1:]:
        assert all(torch.equal(states[0][k], other[k]) for k in states[0])


@pytest.mark.parametrize("model", ["sage", "lightgcn"])
def test_checkpoint_round_trip_gives_bit_identical_scores(
    small: GraphData, small_snapshot: CsrSnapshot, tmp_path: Path, model: str
) -> None:
    split = make_split(small, "random", 0)
    rec = GnnRecommender(TrainConfig(model=model, epochs=2, eval_every=1))
    rec.fit(small, split.train, seed=0)
    write_version(tmp_path, snapshot_version("v1", rec, small, small_snapshot))
    version = load_version(tmp_path / "v1")
    loaded = version.model
    with torch.no_grad():
        if model == "sage":
            graph = to_graph(
                small,
                split.train,
                True,
                version.config.sage.half_life_days,
                torch.device("cpu"),
                rec.known_items,
            )
            h, z = loaded(graph)
        else:
            loaded.set_graph(torch.as_tensor(split.train.actor), torch.as_tensor(split.train.item))
            h, z = loaded()
    actors = np.arange(small.num_actors)
    assert np.array_equal(rec.score(actors), np.asarray(h.numpy() @ z.numpy().T, np.float32))


def test_training_learns_far_better_than_chance(small: GraphData) -> None:
    from gnn.evaluate import evaluate

    split = make_split(small, "random", 0)
    sage = GnnRecommender(TrainConfig(epochs=20, sage=SageConfig(dim=32)))
    sage.fit(small, split.train, 0)
    chance = 20 / small.num_items  # expected recall@20 of a random ranking
    assert evaluate(sage, small, split)["recall@20"] > 3 * chance
    assert sage.history and sage.history[-1]["loss"] < sage.history[0]["loss"]

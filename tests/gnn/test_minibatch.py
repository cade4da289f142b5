"""Training on sampled neighbourhoods: batches that cannot leak their answers, and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnn.data import BEHAVIOURS, GraphData
from gnn.evaluate import evaluate
from gnn.minibatch import PairSampler
from gnn.models import SageConfig
from gnn.splits import make_split
from gnn.train import GnnRecommender, TrainConfig


def _sampler(small: GraphData, typed: bool = True) -> PairSampler:
    known = np.zeros(small.num_items, bool)
    known[small.edges.item] = True
    return PairSampler(small, small.edges, known, typed, 3650.0, 10, torch.device("cpu"))


def test_batch_never_carries_its_own_pairs_and_labels_point_at_the_positives(
    small: GraphData,
) -> None:
    sampler = _sampler(small)
    pairs = sampler.pairs()
    rng = np.random.default_rng(0)
    for _ in range(5):
        index = rng.choice(len(pairs), 256, replace=False)
        batch = sampler.batch(index, negatives=64, hard_share=0.5, rng=rng)
        g = batch.graph
        assert len(g.edges) == len(BEHAVIOURS)
        items = g.item_ids.numpy()  # every item is known here, so its row is its global id
        actors_local = batch.actor.numpy()
        # Which global actor each local actor is: the batch's actors are the seeds, sorted.
        actors = np.unique(pairs[index, 0])
        assert np.array_equal(actors[actors_local], pairs[index, 0])
        assert np.array_equal(items[batch.candidates[batch.label].numpy()], pairs[index, 1])
        negative = items[batch.candidates[batch.negative].numpy()]
        assert (negative[:128] != pairs[index[:128], 1]).mean() > 0.95  # hard ones are near
        sampled = set()
        for e in g.edges:
            a, i = e.numpy()
            assert (a < g.num_actors).all() and (i < g.num_items).all()
            seed = a < len(actors)  # the batch's actors are listed first
            sampled |= set(zip(a[seed].tolist(), items[i[seed]].tolist(), strict=True))
        own = {(int(np.searchsorted(actors, a)), int(i)) for a, i in pairs[index]}
        assert sampled and not (sampled & own)


def test_merged_batch_has_one_edge_type_with_every_sampled_edge(small: GraphData) -> None:
    typed, merged = _sampler(small, True), _sampler(small, False)
    index = np.arange(300)
    a = typed.batch(index, 64, 0.0, np.random.default_rng(1))
    b = merged.batch(index, 64, 0.0, np.random.default_rng(1))
    assert len(b.graph.edges) == 1
    assert b.graph.edges[0].shape[1] == sum(e.shape[1] for e in a.graph.edges)
    assert torch.allclose(b.graph.weights[0].sum(), sum(w.sum() for w in a.graph.weights))


@pytest.mark.parametrize("loss", ["softmax", "bpr"])
def test_sampled_training_learns_and_is_deterministic(small: GraphData, loss: str) -> None:
    split = make_split(small, "random", 0)
    config = TrainConfig(
        epochs=12,
        mode="sampled",
        loss=loss,
        batch_size=512,
        negatives=128,
        hard_negative_share=0.5,
        sage=SageConfig(dim=32),
    )
    runs = []
    for _ in range(2):
        sage = GnnRecommender(config)
        sage.fit(small, split.train, 0)
        runs.append(sage)
    chance = 20 / small.num_items
    assert evaluate(runs[0], small, split)["recall@20"] > 3 * chance
    assert runs[0].history[-1]["loss"] < runs[0].history[0]["loss"]
    actors = np.arange(small.num_actors)
    assert np.array_equal(runs[0].score(actors), runs[1].score(actors))


def test_auto_mode_samples_only_above_the_edge_limit() -> None:
    rec = GnnRecommender(TrainConfig(full_graph_edges=1_000))
    assert rec.sampled(1_001) and not rec.sampled(1_000)
    assert not GnnRecommender(TrainConfig(model="lightgcn", mode="sampled")).sampled(10**9)

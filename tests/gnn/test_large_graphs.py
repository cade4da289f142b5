"""What keeps training bounded on large graphs: a forward without autograd sums messages in
chunks, an epoch can be a fixed number of steps, early stopping evaluates a sample of actors,
and splits compare pairs as numbers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from gnn.baselines import Pop
from gnn.data import GraphData
from gnn.evaluate import evaluate
from gnn.inputs import to_graph
from gnn.models import BehaviourConv, SageConfig, SageRec
from gnn.splits import Split, make_split, sample_actors
from gnn.train import GnnRecommender, TrainConfig


def test_a_forward_without_autograd_sums_messages_in_chunks_to_the_same_embeddings(
    small: GraphData, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = SageRec(
        SageConfig(dim=16), small.num_categories, small.item_features.shape[1], small.num_items
    )
    for conv in (model.to_actor, model.to_item, model.to_actor_out):
        torch.nn.init.normal_(conv.per_type, std=0.3)  # types that differ
    graph = to_graph(small, small.edges, True, 3650.0, torch.device("cpu"))
    with torch.no_grad():
        whole = model(graph)
        monkeypatch.setattr(BehaviourConv, "EDGE_CHUNK", 97)  # an uneven last chunk
        assert len(small.edges) > 10 * 97
        chunked = model(graph)
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["full", "sampled"])
def test_steps_per_epoch_bounds_the_optimiser_steps_of_an_epoch(
    small: GraphData, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[int] = []
    step = torch.optim.Adam.step

    def counted(self: torch.optim.Adam, *args: Any, **kwargs: Any) -> Any:
        steps.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counted)
    train = make_split(small, "random", 0).train
    config = TrainConfig(epochs=2, batch_size=64, mode=mode, sage=SageConfig(dim=8))
    GnnRecommender(config).fit(small, train, 0)
    every = len(steps)
    assert every > 2 * 4  # a pass over every pair takes more steps than the bound below
    steps.clear()
    GnnRecommender(replace(config, steps_per_epoch=4)).fit(small, train, 0)
    assert len(steps) == 2 * 4


def _actors(split: Split) -> np.ndarray:
    return np.unique(split.test_actor)


def test_a_sample_of_actors_keeps_all_their_pairs_and_evaluates_as_the_whole_split_does(
    small: GraphData,
) -> None:
    split = make_split(small, "random", 0)
    assert sample_actors(split, len(_actors(split)), 1) is split
    sample = sample_actors(split, 40, 1)
    chosen = _actors(sample)
    assert len(chosen) == 40 and np.isin(chosen, _actors(split)).all()
    assert np.array_equal(_actors(sample_actors(split, 40, 1)), chosen)  # seeded
    mine = np.isin(split.test_actor, chosen)
    assert np.array_equal(sample.test_actor, split.test_actor[mine])
    assert np.array_equal(sample.test_item, split.test_item[mine])
    assert np.array_equal(sample.train.actor, split.train.actor[np.isin(split.train.actor, chosen)])
    # the other actors' training edges play no part in these actors' evaluation
    pop = Pop()
    pop.fit(small, split.train, 0)
    restricted = replace(split, test_actor=split.test_actor[mine], test_item=split.test_item[mine])
    assert evaluate(pop, small, sample) == evaluate(pop, small, restricted)


def test_early_stopping_evaluates_at_most_validation_actors(
    small: GraphData, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    def evaluating(model: Any, data: GraphData, split: Split) -> dict[str, float]:
        seen.append(len(_actors(split)))
        return {"recall@20": 0.0}

    monkeypatch.setattr("gnn.train.evaluate", evaluating)
    train = make_split(small, "random", 0).train
    config = TrainConfig(epochs=2, eval_every=1, validation_share=0.3, sage=SageConfig(dim=8))
    GnnRecommender(replace(config, validation_actors=25)).fit(small, train, 0)
    assert seen == [25, 25]
    seen.clear()
    GnnRecommender(config).fit(small, train, 0)
    assert len(seen) == 2 and seen[0] == seen[1] > 25

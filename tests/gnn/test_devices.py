"""Where models live: the device chooser, and every parameter and buffer after ``.to``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gnn.data import GraphData
from gnn.models import LightGCN, LightGCNConfig, SageConfig, SageRec
from gnn.splits import make_split
from gnn.train import GnnRecommender, TrainConfig, pick_device


@pytest.mark.parametrize("cuda", [True, False])
def test_auto_picks_cuda_only_when_present(monkeypatch: pytest.MonkeyPatch, cuda: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert pick_device() == torch.device("cuda" if cuda else "cpu")
    assert pick_device("auto") == pick_device()
    assert pick_device("cpu") == torch.device("cpu")  # an explicit choice wins
    assert pick_device("cuda:1") == torch.device("cuda", 1)


def test_a_recommender_trains_on_the_device_its_config_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert GnnRecommender(TrainConfig()).device == torch.device("cuda")
    assert GnnRecommender(TrainConfig(device="cpu")).device == torch.device("cpu")


def _placement(model: nn.Module) -> dict[str, torch.device]:
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return {name: t.device for name, t in tensors}


def _lightgcn(small: GraphData) -> LightGCN:
    return LightGCN(LightGCNConfig(dim=8), small.num_actors, small.num_items)


def _edges(small: GraphData) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(small.edges.actor), torch.as_tensor(small.edges.item)


# ``meta`` is a second device on any host: tensors there have shapes but no data.
META = torch.device("meta")


def test_every_parameter_and_buffer_follows_to_device(small: GraphData) -> None:
    sage = SageRec(SageConfig(dim=8), small.num_categories, 3, small.num_items)
    lightgcn = _lightgcn(small)
    lightgcn.set_graph(*_edges(small))
    for model in (sage, lightgcn):
        on_cpu = _placement(model)
        assert set(on_cpu.values()) == {torch.device("cpu")}
        placed = _placement(model.to(META))
        assert placed.keys() == on_cpu.keys()
        assert set(placed.values()) == {META}, placed
    assert "adjacency" in _placement(lightgcn)  # the graph moves with the model
    assert set(SageRec.STAND_INS) <= set(_placement(sage))


def test_lightgcn_puts_its_graph_beside_its_embeddings(small: GraphData) -> None:
    model = _lightgcn(small).to(META)
    model.set_graph(*_edges(small))  # edges from numpy, on the CPU
    assert model.adjacency is not None and model.adjacency.device == META
    assert "adjacency" not in model.state_dict()  # derived from the graph, not saved


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("model", ["sage", "lightgcn"])
def test_a_short_fit_on_cuda(small: GraphData, model: str) -> None:
    split = make_split(small, "random", 0)
    rec = GnnRecommender(TrainConfig(model=model, epochs=2, eval_every=1, device="cuda"))
    rec.fit(small, split.train, seed=0)
    assert {d.type for d in _placement(rec.model).values()} == {"cuda"}
    assert rec.history and rec.score(split.test_actor[:4]).shape == (4, small.num_items)

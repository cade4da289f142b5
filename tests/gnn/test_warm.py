"""Warm start copies a previous version's rows by key; new keys keep their fresh rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gnn.checkpoint import current_version
from gnn.datasets import SyntheticConfig, generate
from gnn.datasets.base import load_into
from gnn.inputs import Content
from gnn.models import LightGCN, LightGCNConfig, SageConfig, SageRec
from gnn.train import TrainConfig
from gnn.trainer import train_once
from gnn.version import ModelIndex, ModelVersion, VersionItems, load_version
from gnn.warm import warm_start
from graphstore import open_store


def _version(model: torch.nn.Module, index: ModelIndex) -> ModelVersion:
    """A version of ``model`` whose item table is irrelevant here (zeros)."""
    n, f = len(index.items), len(index.features)
    items = VersionItems(
        np.zeros((n, 4), np.float32),
        Content(np.full((n, 2), -1), np.zeros((n, f), np.float32), index.id_rows),
        (None,) * n,
        ("",) * n,
        np.zeros((n, f)),
        np.zeros(f),
        np.ones(f),
        np.zeros(n),
        np.zeros(n, bool),
    )
    return ModelVersion("old", TrainConfig(), model, index, items, 0.0, {})


def test_sage_warm_start_copies_known_rows_by_key_and_keeps_fresh_rows_for_new_keys() -> None:
    config = SageConfig(dim=4, category_depth=2)
    torch.manual_seed(1)
    old_index = ModelIndex(("x", "y", "z"), np.array([0, -1, 2]), ("a", "b"), ("f1", "f2"))
    old = SageRec(config, 2, 2, 3)
    old.category_ids.fill_(7.0)
    torch.manual_seed(2)
    new_index = ModelIndex(
        ("z", "w", "x", "y"), np.arange(4), ("b", "c", "a"), ("f2", "f3"), ("u1",)
    )
    new = SageRec(config, 3, 2, 4)
    fresh = {k: v.clone() for k, v in new.state_dict().items()}

    copied = warm_start(new, new_index, _version(old, old_index))

    assert new.ids is not None and old.ids is not None
    cats, ids, feats = new.categories.weight, new.ids.weight, new.features.weight
    assert torch.equal(cats[0], old.categories.weight[1])  # b
    assert torch.equal(cats[2], old.categories.weight[0])  # a
    assert torch.equal(cats[1], fresh["categories.weight"][1])  # c is new
    assert torch.equal(ids[0], old.ids.weight[2])  # z
    assert torch.equal(ids[2], old.ids.weight[0])  # x
    for row in (1, 3):  # w is new; y had no ID in the old version
        assert torch.equal(ids[row], fresh["ids.weight"][row])
    assert torch.equal(feats[:, 0], old.features.weight[:, 1])  # f2
    assert torch.equal(feats[:, 1], fresh["features.weight"][:, 1])  # f3 is new
    assert torch.equal(new.level_weight, old.level_weight)
    assert torch.equal(new.to_item.per_type, old.to_item.per_type)
    assert not new.category_ids.any()  # stand-ins are recomputed by training, not copied
    assert copied["categories.weight"] == 2 and copied["ids.weight"] == 2
    assert copied["features.weight"] == 1


def test_lightgcn_warm_start_copies_actor_and_item_rows_by_key() -> None:
    config = LightGCNConfig(dim=4)
    torch.manual_seed(1)
    old_index = ModelIndex(("x", "y"), np.arange(2), (), (), ("u1", "u2"))
    old = LightGCN(config, 2, 2)
    torch.manual_seed(2)
    new_index = ModelIndex(("y", "z"), np.arange(2), (), (), ("u2", "u3", "u1"))
    new = LightGCN(config, 3, 2)
    fresh = new.embedding.weight.clone()

    warm_start(new, new_index, _version(old, old_index))

    e_new, e_old = new.embedding.weight, old.embedding.weight
    assert torch.equal(e_new[0], e_old[1]) and torch.equal(e_new[2], e_old[0])  # u2, u1
    assert torch.equal(e_new[3], e_old[2 + 1])  # item y
    assert torch.equal(e_new[1], fresh[1]) and torch.equal(e_new[4], fresh[4])  # u3, z: new


def test_train_once_starts_warm_from_a_version(tmp_path: Path) -> None:
    dataset = generate(SyntheticConfig(seed=3, events=3_000, users=200, items=150))
    with open_store("memory://") as store:
        load_into(store, dataset)
        snapshot = store.snapshot()
    models = tmp_path / "models"
    config = TrainConfig(epochs=2, eval_every=1, sage=SageConfig(dim=8))
    cold = train_once(snapshot, config, models)
    assert current_version(models) == cold["version"]

    warm = train_once(snapshot, config, models, warm_from=models / str(cold["version"]))

    version = load_version(Path(str(warm["path"])))
    assert version.metrics["warm_from"] == cold["version"]
    assert version.metrics["previous"] == cold["version"]
    assert [p.name for p in models.iterdir() if p.name.startswith(".")] == []

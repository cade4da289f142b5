"""SageRec's stand-ins for items it has no ID or no edges for, and weights that do not fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from gnn.checkpoint import snapshot_version, write_version
from gnn.data import GraphData
from gnn.inputs import to_graph
from gnn.manifest import VersionError, write_manifest
from gnn.models import Graph, SageConfig, SageRec
from gnn.splits import make_split
from gnn.train import GnnRecommender, TrainConfig
from gnn.version import load_version
from graphstore import CsrSnapshot


def remembering(data: GraphData, known: Tensor | None = None) -> tuple[SageRec, Graph]:
    """An untrained SageRec that remembered the category means of ``data``'s known items."""
    torch.manual_seed(0)
    model = SageRec(
        SageConfig(dim=8), data.num_categories, data.item_features.shape[1], data.num_items
    )
    graph = to_graph(
        data,
        data.edges,
        True,
        3650.0,
        torch.device("cpu"),
        None if known is None else known.numpy(),
    )
    model.remember_categories(graph)
    return model, graph


@pytest.fixture(scope="module")
def remembered(small: GraphData) -> tuple[SageRec, Graph]:
    return remembering(small)


def touched(graph: Graph) -> Tensor:
    """``[I]`` whether an item has edges (only those count as known)."""
    out = torch.zeros(graph.num_items, dtype=torch.bool)
    out[torch.cat([e[1] for e in graph.edges])] = True
    return out


def test_an_item_without_an_id_stands_in_as_the_mean_known_item_of_its_leaf(
    remembered: tuple[SageRec, Graph],
) -> None:
    model, graph = remembered
    assert model.ids is not None
    leaf = graph.ancestors[:, 0]
    some_leaf = int(leaf[0])
    expected = model.ids.weight[: graph.num_items][(leaf == some_leaf) & touched(graph)].mean(dim=0)
    stand_in = model.stand_in(model.category_ids, graph.ancestors[:1])[0]
    torch.testing.assert_close(stand_in, expected)


def test_without_known_items_in_its_leaf_an_item_borrows_from_the_nearest_ancestor(
    small: GraphData,
) -> None:
    anc = torch.as_tensor(small.category_ancestors())
    new_leaf = anc[:, 0] == anc[0, 0]  # a leaf whose items are all new
    model, graph = remembering(small, ~new_leaf)
    assert model.ids is not None
    ids = model.ids.weight[: graph.num_items]
    under_parent = (anc[:, 1] == anc[0, 1]) & ~new_leaf & touched(graph)
    assert under_parent.any()
    torch.testing.assert_close(
        model.stand_in(model.category_ids, anc[:1])[0], ids[under_parent].mean(dim=0)
    )
    nowhere = torch.full_like(anc[:1], -1)  # no category at all: the mean over every known item
    torch.testing.assert_close(
        model.stand_in(model.category_ids, nowhere)[0],
        ids[~new_leaf & touched(graph)].mean(dim=0),
    )


def test_an_item_without_edges_takes_its_categorys_mean_neighbour_message(
    remembered: tuple[SageRec, Graph],
) -> None:
    """A brand-new item (no ID, no edges) embeds as its content plus the average known item
    of its leaf: the mean ID and the mean message from actors, not content alone."""
    model, graph = remembered
    item = 0
    keep = [e[1] != item for e in graph.edges]
    cold = Graph(
        graph.num_actors,
        [e[:, k] for e, k in zip(graph.edges, keep, strict=True)],
        [w[k] for w, k in zip(graph.weights, keep, strict=True)],
        graph.ancestors,
        graph.features,
        torch.where(torch.arange(graph.num_items) == item, -1, graph.item_ids),
    )
    with torch.no_grad():
        _, z_cold = model(cold)
        x_cold = model.item_input(cold)[item]
        message = model.stand_in(model.category_messages, graph.ancestors[item : item + 1])[0]
        conv = model.to_item
        expected = x_cold + message + conv.shared.bias + conv.root(x_cold)
        content_only = (
            x_cold - model.stand_in(model.category_ids, graph.ancestors[item : item + 1])[0]
        )
    torch.testing.assert_close(z_cold[item], expected)
    assert message.norm() > 0 and not torch.allclose(x_cold, content_only)


def test_weights_that_do_not_fit_the_model_are_refused_even_with_a_fresh_manifest(
    small: GraphData, small_snapshot: CsrSnapshot, tmp_path: Path
) -> None:
    rec = GnnRecommender(TrainConfig(epochs=1, eval_every=1, sage=SageConfig(dim=8)))
    rec.fit(small, make_split(small, "random", 0).train, seed=0)
    directory = write_version(tmp_path, snapshot_version("v1", rec, small, small_snapshot))
    weights = load_file(str(directory / "model.safetensors"))

    def rewrite(tensors: dict[str, Tensor]) -> None:
        save_file(tensors, str(directory / "model.safetensors"))
        (directory / "manifest.json").unlink()
        write_manifest(directory, "v1")  # the files check out: only the weights are wrong

    old = {k: v for k, v in weights.items() if k not in SageRec.STAND_INS}
    rewrite(old)  # a version saved before the stand-ins existed
    with pytest.raises(VersionError, match=r"v1: model\.safetensors .*category_ids"):
        load_version(directory)
    rewrite({**weights, "stray": torch.zeros(1)})
    with pytest.raises(VersionError, match="stray"):
        load_version(directory)
    rewrite({**weights, "level_weight": torch.zeros(2)})
    with pytest.raises(VersionError, match="level_weight"):
        load_version(directory)
    rewrite(weights)
    assert isinstance(load_version(directory).model, SageRec)

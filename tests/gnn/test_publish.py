"""The publish gate: a new version goes live only if it is not worse than the current one on
the same held-out pairs of today's graph."""

from __future__ import annotations

from pathlib import Path

from gnn.checkpoint import current_version
from gnn.datasets import SyntheticConfig, generate
from gnn.datasets.base import load_into
from gnn.train import TrainConfig
from gnn.trainer import train_once
from graphstore import open_store


def test_a_worse_version_is_not_published_and_both_are_measured_on_the_same_pairs(
    tmp_path: Path,
) -> None:
    dataset = generate(SyntheticConfig(seed=3, events=6_000, users=300, items=400))
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        load_into(store, dataset)
        snapshot = store.snapshot()
    models = tmp_path / "models"

    good = train_once(snapshot, TrainConfig(epochs=20, seed=0), models)
    assert good["published"] and good["current_recall@20"] is None

    worse = train_once(snapshot, TrainConfig(epochs=1, seed=0), models)
    assert worse["version"] != good["version"]
    assert not worse["published"]
    assert worse["validation_recall@20"] < worse["current_recall@20"]
    # the current version was re-measured now, on the pairs its own training held out
    assert worse["current_recall@20"] == good["validation_recall@20"]
    assert current_version(models) == good["version"]

    again = train_once(snapshot, TrainConfig(epochs=20, seed=0), models)
    assert again["published"]  # the same training again is not worse
    assert current_version(models) == again["version"]

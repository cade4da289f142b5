"""Every model on every shape of users' data: with and without categories, behaviour types,
sessions and item features, from `eval --train/--test` files and from import → ingest → train."""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gnn.datasets import SyntheticConfig, generate
from gnn.datasets.files import Columns
from gnn.experiment import EvalSpec, run_eval
from gnn.train import TrainConfig
from gnn.trainer import train_once
from graphrec.importer import import_files
from graphrec.pipeline import ingest
from graphstore import Behaviour, NodeKind, open_store

MODELS = ("pop", "genre-pop", "itemknn", "ease", "lightgcn", "sage", "sage-merged")
SHAPES = [
    dict(zip(("categories", "types", "sessions", "features"), flags, strict=True))
    for flags in itertools.product((False, True), repeat=4)
]


def shape_id(shape: dict[str, bool]) -> str:
    return "+".join(k for k, on in shape.items() if on) or "bare"


def write_shape(tmp_path: Path, shape: dict[str, bool]) -> tuple[Path, Path]:
    """A small synthetic shop as train/test CSVs (last fifth of time in test) holding only the
    columns ``shape`` asks for: without sessions, anonymous rows are left out; without types,
    every row is an interaction of no stated type (a view)."""
    data = generate(SyntheticConfig(seed=3, events=900, users=40, items=60, anonymous_share=0.3))
    items = {i.item_id: i for i in data.items}
    header = ["user_id", "item_id", "timestamp"]
    header += ["session_id"] * shape["sessions"] + ["type"] * shape["types"]
    header += ["category"] * shape["categories"] + ["log_price"] * shape["features"]
    rows = []
    for e in data.interactions:
        anonymous = e.actor.kind is NodeKind.SESSION
        if (anonymous and not shape["sessions"]) or (
            not shape["types"] and e.behaviour is not Behaviour.VIEW
        ):
            continue
        row = {"user_id": "" if anonymous else e.actor.key, "item_id": e.item_id, "timestamp": e.ts}
        row |= {"session_id": e.actor.key if anonymous else "", "type": e.behaviour.name.lower()}
        row["category"] = "/".join(items[e.item_id].category_path)
        row["log_price"] = items[e.item_id].numeric_features[0][1]
        rows.append([row[c] for c in header])
    cut = int(len(rows) * 0.8)
    paths = (tmp_path / "train.csv", tmp_path / "test.csv")
    for path, part in zip(paths, (rows[:cut], rows[cut:]), strict=True):
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([header, *part])
    return paths


FAST = TrainConfig(epochs=1, eval_every=1)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_every_model_evaluates_on_train_test_files(tmp_path: Path, shape: dict[str, bool]) -> None:
    train, test = write_shape(tmp_path, shape)
    spec = EvalSpec(models=MODELS, seeds=1, train_file=train, test_file=test, config=FAST)
    report = run_eval(spec)
    assert set(report["results"]) == set(MODELS)
    for name, row in report["results"].items():
        recall = row["recall@20"][0]
        assert math.isfinite(recall) and 0.0 <= recall <= 1.0, (name, row)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("model", ["sage", "lightgcn"])
def test_import_ingest_train_on_every_shape(
    tmp_path: Path, shape: dict[str, bool], model: str
) -> None:
    """What `graphrec train` does on a store fed only by `graphrec import` (without
    categories or features: events only, no items topic at all)."""
    train, test = write_shape(tmp_path, shape)
    log_url = f"log://{tmp_path / 'log'}"
    columns = Columns(features=("log_price",) if shape["features"] else ())
    report = import_files([train, test], log_url, columns)
    assert report.rejected == 0
    with train.open() as a, test.open() as b:
        seen = {r["item_id"] for r in [*csv.DictReader(a), *csv.DictReader(b)]}
    assert report.items == (len(seen) if shape["categories"] or shape["features"] else 0)
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        summary = ingest(log_url, store, group="sink", idle_exit_s=0.3)
        assert summary.applied == report.events + report.items
        snapshot = store.snapshot()
    result = train_once(snapshot, replace(FAST, model=model), tmp_path / "models")
    assert result["published"] is True
    scores = result["validation_recall@20"]
    assert isinstance(scores, float) and np.isfinite(scores)

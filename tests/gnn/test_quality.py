"""Quality, all models on the same splits: the numbers the issue asks for.

ML-100K ships in the recbole wheel; these runs take a few minutes on 2 CPU cores, and so do
the comparisons on the synthetic shop's journeys (temporal vs random supervision, typed vs
merged behaviour edges).
"""

from __future__ import annotations

import pytest

from gnn.data import BEHAVIOURS, GraphData
from gnn.datasets import SyntheticConfig, generate, load_ml100k
from gnn.experiment import graph_of, run_experiment
from gnn.train import TrainConfig
from graphstore import Behaviour

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ml100k() -> GraphData:
    return graph_of(load_ml100k())


def test_ml100k_inductive_model_beats_itemknn_and_lightgcn_matches_it(ml100k: GraphData) -> None:
    results = run_experiment(
        ml100k, "random", ["itemknn", "ease", "sage", "lightgcn"], 3, TrainConfig()
    )
    recall = {name: row["recall@20"][0] for name, row in results.items()}
    print({name: {m: round(v[0], 4) for m, v in row.items()} for name, row in results.items()})
    assert recall["sage"] > recall["itemknn"]
    assert recall["lightgcn"] >= recall["itemknn"] * 0.97  # within noise of ItemKNN or above
    assert recall["ease"] > recall["itemknn"]  # the reference point from the literature holds


def test_cold_items_inductive_model_beats_genre_popularity(ml100k: GraphData) -> None:
    results = run_experiment(ml100k, "cold-items", ["genre-pop", "sage"], 1, TrainConfig())
    print(results)
    assert results["sage"]["recall@20"][0] >= 1.5 * results["genre-pop"]["recall@20"][0]


@pytest.fixture(scope="module")
def journeys() -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    """Next purchases after a global cut-off on the synthetic shop's journeys (100k events):
    SageRec typed and merged under temporal supervision (3 seeds), typed under random (2)."""
    data = graph_of(generate(SyntheticConfig(seed=0, events=100_000, journeys=True)))
    purchase = BEHAVIOURS.index(Behaviour.PURCHASE)
    out = {}
    for supervision, models, seeds in (
        ("temporal", ["sage", "sage-merged"], 3),
        ("random", ["sage"], 2),
    ):
        config = TrainConfig(target=(purchase,), supervision=supervision)
        out[supervision] = run_experiment(data, "cutoff", models, seeds, config)
    print(
        {
            s: {n: {m: round(v[0], 4) for m, v in r.items()} for n, r in rows.items()}
            for s, rows in out.items()
        }
    )
    return out


def test_temporal_supervision_predicts_next_purchases_better_than_random(
    journeys: dict[str, dict[str, dict[str, tuple[float, float]]]],
) -> None:
    """A global cut-off hides whole sessions; on shopping journeys what comes next depends on
    what came before, which random supervision ("what else") does not teach."""
    temporal = journeys["temporal"]["sage"]["recall@20"][0]
    assert temporal > journeys["random"]["sage"]["recall@20"][0] + 0.01  # .437 vs .392


def test_typed_edges_predict_next_purchases_better_than_merged_edges(
    journeys: dict[str, dict[str, dict[str, tuple[float, float]]]],
) -> None:
    """A bought need is closed and a viewed one still open: typed edges tell the two apart,
    merged edges cannot (docs/typed-vs-merged.md)."""
    typed, merged = journeys["temporal"]["sage"], journeys["temporal"]["sage-merged"]
    assert typed["recall@20"][0] > merged["recall@20"][0]  # .437 vs .425 measured
    # ranked no worse: .257 vs .254 here, typed ahead in 17 of 18 runs of the docs' table
    assert typed["ndcg@20"][0] > merged["ndcg@20"][0] - 0.005

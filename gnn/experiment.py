"""``graphrec eval``: every model on the same split, several seeds, one table (mean ± std)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gnn.baselines import EASE, FitScorer, GenrePop, ItemKNN, Pop
from gnn.data import BEHAVIOURS, GraphData, from_snapshot
from gnn.datasets import Dataset, SyntheticConfig, generate, load_into, load_ml1m, load_ml100k
from gnn.datasets.files import read_interactions
from gnn.evaluate import evaluate
from gnn.splits import SPLITS, Split, make_split
from gnn.train import GnnRecommender, TrainConfig
from graphstore import Interaction, ItemRecord, open_store

MODELS = ("pop", "genre-pop", "itemknn", "ease", "lightgcn", "sage", "sage-merged")


def make_model(name: str, config: TrainConfig) -> FitScorer:
    """A fresh, unfitted model by name."""
    factories: dict[str, Callable[[], FitScorer]] = {
        "pop": Pop,
        "genre-pop": GenrePop,
        "itemknn": ItemKNN,
        "ease": EASE,
        # LightGCN has no per-batch graph work to amortise: large batches, higher rate
        # (recall@20 .3605 in 88 s on ML-100K here, vs .3536 in 264 s at 2,048 / 3e-3).
        "lightgcn": lambda: GnnRecommender(
            replace(config, model="lightgcn", batch_size=8_192, lr=1e-2)
        ),
        "sage": lambda: GnnRecommender(replace(config, model="sage")),
        "sage-merged": lambda: GnnRecommender(
            replace(config, model="sage", sage=replace(config.sage, behaviour_typed=False))
        ),
    }
    if name not in factories:
        raise ValueError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    return factories[name]()


def graph_of(dataset: Dataset) -> GraphData:
    """Load a dataset into a fresh in-memory store and read it back as training data."""
    with open_store("memory://") as store:
        load_into(store, dataset)
        return from_snapshot(store.snapshot())


def run_experiment(
    data: GraphData,
    split_kind: str,
    models: list[str],
    seeds: int,
    config: TrainConfig,
    k: int = 20,
    fixed_split: Split | None = None,
    progress: Callable[[str], None] | None = None,
    histories: dict[str, list[dict[str, float]]] | None = None,
) -> dict[str, dict[str, tuple[float, float]]]:
    """``{model: {metric: (mean, std)}}`` over ``seeds`` seeds, all models on the same splits.

    GNN training curves of the last seed go into ``histories`` when given."""
    results: dict[str, list[dict[str, float]]] = {m: [] for m in models}
    for seed in range(seeds):
        split = fixed_split or make_split(data, split_kind, seed, target=tuple(config.target))
        for name in models:
            started = time.perf_counter()
            model = make_model(name, config)
            model.fit(data, split.train, seed)
            scores = evaluate(model, data, split, k)
            scores["seconds"] = time.perf_counter() - started
            results[name].append(scores)
            if histories is not None and isinstance(model, GnnRecommender):
                histories[name] = model.history
            if progress is not None:
                progress(f"seed {seed} {name}: recall@{k}={scores[f'recall@{k}']:.4f}")
    return {
        name: {
            metric: (
                float(np.mean([r[metric] for r in runs])),
                float(np.std([r[metric] for r in runs])),
            )
            for metric in runs[0]
        }
        for name, runs in results.items()
    }


def fixed_split_from(data: GraphData, test: list[Interaction]) -> Split:
    """A split whose test pairs come from a file (``--train/--test`` CSVs)."""
    actors = {k: i for i, k in enumerate(data.actor_keys)}
    items = {k: i for i, k in enumerate(data.item_keys)}
    pairs = {
        (actors[t.actor.key], items[t.item_id])
        for t in test
        if t.actor.key in actors and t.item_id in items
    }
    a = np.array([p[0] for p in sorted(pairs)], np.int64)
    i = np.array([p[1] for p in sorted(pairs)], np.int64)
    e = data.edges
    keep = np.fromiter(
        ((x, y) not in pairs for x, y in zip(e.actor.tolist(), e.item.tolist(), strict=True)),
        bool,
        len(e),
    )
    return Split(e.take(keep), a, i, np.ones(data.num_items, bool), "files")


@dataclass(frozen=True)
class EvalSpec:
    """What ``graphrec eval`` runs: a dataset (or train/test files, read by
    ``gnn.datasets.files``), a split, models and seeds; ``config`` trains the GNNs (its
    ``target`` says which behaviours are held out)."""

    dataset: str = "ml-100k"  # ml-100k, ml-1m or synthetic (ignored with files)
    split: str = "random"
    models: tuple[str, ...] = ("pop", "itemknn", "ease", "lightgcn", "sage")
    seeds: int = 3
    k: int = 20
    train_file: Path | None = None
    test_file: Path | None = None
    events: int = 50_000  # synthetic interactions
    journeys: bool = False  # synthetic shopping journeys (gnn.datasets.synthetic)
    config: TrainConfig = field(default_factory=TrainConfig)

    def check(self) -> None:
        """Raise ``ValueError`` for an unknown model, split or dataset, or half a file pair."""
        unknown = sorted(set(self.models) - set(MODELS))
        if unknown or self.split not in SPLITS:
            raise ValueError(f"unknown models {unknown} or split {self.split!r}")
        if (self.train_file is None) != (self.test_file is None):
            raise ValueError("--train and --test go together")
        if self.train_file is None and self.dataset not in ("ml-100k", "ml-1m", "synthetic"):
            raise ValueError(f"unknown dataset {self.dataset!r}: ml-100k, ml-1m or synthetic")


def behaviour_indices(names: Sequence[str]) -> tuple[int, ...]:
    """Indices into ``BEHAVIOURS`` of behaviour names (any case); ``ValueError`` for others."""
    upper = {n.strip().upper() for n in names if n.strip()}
    bad = sorted(upper - {b.name for b in BEHAVIOURS})
    if bad:
        raise ValueError(f"unknown behaviours {bad}: view, click, cart or purchase")
    return tuple(i for i, b in enumerate(BEHAVIOURS) if b.name in upper)


def eval_data(spec: EvalSpec) -> tuple[GraphData, Split | None]:
    """The spec's data, and its fixed split when the test pairs come from a file."""
    if spec.train_file is not None and spec.test_file is not None:
        train, test = read_interactions([spec.train_file, spec.test_file])
        items: dict[str, ItemRecord] = {}
        for item in train.items + test.items:
            items.setdefault(item.item_id, item)
        data = graph_of(
            Dataset("files", list(items.values()), train.interactions + test.interactions)
        )
        return data, fixed_split_from(data, test.interactions)
    if spec.dataset in ("ml-100k", "ml-1m"):
        return graph_of(load_ml100k() if spec.dataset == "ml-100k" else load_ml1m()), None
    synthetic = SyntheticConfig(seed=0, events=spec.events, journeys=spec.journeys)
    return graph_of(generate(synthetic)), None


def run_eval(
    spec: EvalSpec,
    progress: Callable[[str], None] | None = None,
    plot_path: Path | None = None,
) -> dict[str, Any]:
    """Run ``spec`` (checked first); the results (``run_experiment``) with what produced
    them. With ``plot_path``, also the metric bars and training curves as a PNG."""
    spec.check()
    data, fixed = eval_data(spec)
    histories: dict[str, list[dict[str, float]]] = {}
    results = run_experiment(
        data,
        spec.split,
        list(spec.models),
        spec.seeds,
        spec.config,
        spec.k,
        fixed,
        progress=progress,
        histories=histories,
    )
    if plot_path is not None:
        plot(results, histories, plot_path, spec.k)
    return {
        "dataset": spec.dataset,
        "split": spec.split,
        "target": [BEHAVIOURS[b].name.lower() for b in spec.config.target],
        "supervision": spec.config.supervision,
        "seeds": spec.seeds,
        "results": results,
    }


def format_table(results: dict[str, dict[str, tuple[float, float]]]) -> str:
    metrics = [m for m in next(iter(results.values())) if m != "seconds"] + ["seconds"]
    lines = ["model        " + "".join(f"{m:>18}" for m in metrics)]
    for name, row in results.items():
        lines.append(
            f"{name:<13}" + "".join(f"{row[m][0]:>11.4f} ±{row[m][1]:.3f}" for m in metrics)
        )
    return "\n".join(lines)


def plot(
    results: dict[str, dict[str, tuple[float, float]]],
    histories: dict[str, list[dict[str, float]]],
    path: Path,
    k: int = 20,
) -> None:
    """Metric table as bars (mean ± std) and GNN validation curves, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(results)
    for j, metric in enumerate((f"recall@{k}", f"ndcg@{k}")):
        means = [results[n][metric][0] for n in names]
        stds = [results[n][metric][1] for n in names]
        left.bar(np.arange(len(names)) + 0.4 * j, means, 0.4, yerr=stds, label=metric)
    left.set_xticks(np.arange(len(names)) + 0.2, names, rotation=30)
    left.legend()
    left.set_title("test metrics (mean ± std over seeds)")
    for name, history in histories.items():
        right.plot([h["epoch"] for h in history], [h["val_recall@20"] for h in history], label=name)
    right.set_xlabel("epoch")
    right.set_ylabel("validation recall@20")
    right.set_title("training curves")
    if histories:
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

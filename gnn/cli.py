"""Commands of the learning half, mounted into the ``graphrec`` CLI: eval and train."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from gnn.checkpoint import current_version, save, update_meta
from gnn.data import BEHAVIOURS, from_snapshot
from gnn.datasets import Dataset, SyntheticConfig, generate, load_ml100k
from gnn.experiment import (
    MODELS,
    fixed_split_from,
    format_table,
    graph_of,
    plot,
    read_csv_interactions,
    run_experiment,
)
from gnn.publish import version_recall
from gnn.splits import SPLITS, make_split
from gnn.train import SUPERVISION, TRAINING_MODES, GnnRecommender, TrainConfig
from graphstore import open_store

log = logging.getLogger(__name__)

TrainingModeOpt = Annotated[
    str,
    typer.Option(
        help="sage: train on the full graph each step (full), on sampled neighbourhoods "
        "(sampled), or sampled above 1M training edges (auto)."
    ),
]

SupervisionOpt = Annotated[
    str,
    typer.Option(
        help="sage, full mode: each epoch predicts a random half of the training pairs from "
        "the rest (random), or each actor's pairs after a random point of its history from "
        "the edges before it (temporal: learns what comes next; pairs with --split cutoff)."
    ),
]


def _needs_matplotlib(path: Path | None) -> Path | None:
    """``--plot`` needs the ``plot`` extra: say so in one line before any work starts."""
    if path is not None and importlib.util.find_spec("matplotlib") is None:
        typer.echo("error: --plot needs matplotlib: pip install 'graphrec[plot]'", err=True)
        raise typer.Exit(2)
    return path


def eval_command(
    dataset: Annotated[str, typer.Option(help="ml-100k or synthetic.")] = "ml-100k",
    split: Annotated[str, typer.Option(help=f"One of: {', '.join(SPLITS)}.")] = "random",
    models: Annotated[
        str, typer.Option(help=f"Comma-separated, from: {', '.join(MODELS)}.")
    ] = "pop,itemknn,ease,lightgcn,sage",
    seeds: Annotated[
        int, typer.Option(min=1, help="Seeds (splits and inits) to average over.")
    ] = 3,
    k: Annotated[int, typer.Option(min=1, help="Cut-off K of the metrics.")] = 20,
    epochs: Annotated[int, typer.Option(min=1, help="Max epochs for GNN models.")] = 60,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
    train_file: Annotated[
        Path | None, typer.Option("--train", help="CSV user_id,item_id,timestamp[,type].")
    ] = None,
    test_file: Annotated[
        Path | None, typer.Option("--test", help="CSV of held-out interactions.")
    ] = None,
    plot_path: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            callback=_needs_matplotlib,
            help="Write metric bars and training curves to a PNG (needs graphrec[plot]).",
        ),
    ] = None,
    events: Annotated[int, typer.Option(help="Synthetic interactions.")] = 50_000,
    journeys: Annotated[
        bool,
        typer.Option(
            help="Synthetic: sessions serve needs that stay open until bought, then move on "
            "(what comes next depends on what was bought, not only viewed)."
        ),
    ] = False,
    target: Annotated[
        str,
        typer.Option(
            help="Behaviours to predict, comma-separated (view, click, cart, purchase): only "
            "pairs with one of them are held out; every behaviour still feeds the models. "
            "Empty: any interaction."
        ),
    ] = "",
    mode: TrainingModeOpt = "auto",
    supervision: SupervisionOpt = "random",
) -> None:
    """Evaluate models on one split, same split for all, mean ± std over seeds (full ranking,
    training items masked; Recall, NDCG, MRR, HitRate at K)."""
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown or split not in SPLITS:
        raise typer.BadParameter(f"unknown models {unknown} or split {split!r}")
    behaviours = [t.strip().upper() for t in target.split(",") if t.strip()]
    bad = sorted(set(behaviours) - {b.name for b in BEHAVIOURS})
    if bad:
        raise typer.BadParameter(f"unknown behaviours {bad}: view, click, cart or purchase")
    target_idx = tuple(i for i, b in enumerate(BEHAVIOURS) if b.name in behaviours)
    mode = _mode(mode)
    supervision = _supervision(supervision)
    fixed = None
    if train_file or test_file:
        if not (train_file and test_file):
            raise typer.BadParameter("--train and --test go together")
        train, test = read_csv_interactions(train_file), read_csv_interactions(test_file)
        data = graph_of(Dataset("files", [], train + test))
        fixed = fixed_split_from(data, test)
    elif dataset == "ml-100k":
        data = graph_of(load_ml100k())
    elif dataset == "synthetic":
        data = graph_of(generate(SyntheticConfig(seed=0, events=events, journeys=journeys)))
    else:
        raise typer.BadParameter(f"unknown dataset {dataset!r}: ml-100k or synthetic")
    histories: dict[str, list[dict[str, float]]] = {}
    results = run_experiment(
        data,
        split,
        names,
        seeds,
        TrainConfig(epochs=epochs, target=target_idx, mode=mode, supervision=supervision),
        k,
        fixed,
        progress=lambda line: typer.echo(line, err=True),
        histories=histories,
    )
    if plot_path is not None:
        plot(results, histories, plot_path, k)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "dataset": dataset,
                    "split": split,
                    "target": [b.lower() for b in behaviours],
                    "supervision": supervision,
                    "seeds": seeds,
                    "results": results,
                }
            )
        )
    else:
        typer.echo(format_table(results))


def train_command(
    store: Annotated[
        str, typer.Option("--store", help="Graph store URL to train from.")
    ] = "sqlite://data/graph",
    models_dir: Annotated[Path, typer.Option(help="Where versions are written.")] = Path(
        "data/models"
    ),
    model: Annotated[str, typer.Option(help="sage or lightgcn.")] = "sage",
    epochs: Annotated[int, typer.Option(min=1)] = 60,
    every_minutes: Annotated[
        float, typer.Option(help="Periodic mode: retrain this often (0: once).")
    ] = 0.0,
    every_events: Annotated[
        int, typer.Option(help="Periodic mode: or after this many new events.")
    ] = 0,
    seed: Annotated[int, typer.Option()] = 0,
    mode: TrainingModeOpt = "auto",
    supervision: SupervisionOpt = "random",
) -> None:
    """Train on the graph's current snapshot and publish models/<version>/ when its recall@20
    on held-out pairs is not worse than the current version's on the same pairs."""
    config = TrainConfig(
        model=model,
        epochs=epochs,
        seed=seed,
        mode=_mode(mode),
        supervision=_supervision(supervision),
    )
    last_events = -1
    while True:
        with open_store(store) as graph:
            events = graph.stats().interactions
            if events != last_events:
                typer.echo(json.dumps(train_once(graph.snapshot(), config, models_dir)))
                last_events = events
        if every_minutes <= 0 and every_events <= 0:
            return
        deadline = time.monotonic() + (every_minutes * 60 if every_minutes > 0 else float("inf"))
        while time.monotonic() < deadline:
            time.sleep(5)
            if every_events > 0:
                with open_store(store) as graph:
                    if graph.stats().interactions - last_events >= every_events:
                        break


def _mode(mode: str) -> str:
    if mode not in TRAINING_MODES:
        raise typer.BadParameter(f"unknown mode {mode!r}: {', '.join(TRAINING_MODES)}")
    return mode


def _supervision(supervision: str) -> str:
    if supervision not in SUPERVISION:
        raise typer.BadParameter(f"unknown supervision {supervision!r}: {', '.join(SUPERVISION)}")
    return supervision


def train_once(snapshot, config: TrainConfig, models_dir: Path) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Train one version; publish it (``current`` pointer) only if its recall on held-out
    pairs is not worse than the current version's on the same pairs."""
    data = from_snapshot(snapshot)
    split = make_split(data, "random", config.seed, 0.1)
    model = GnnRecommender(config)
    model.fit(data, split.train, config.seed)
    version = _new_version(models_dir)
    directory = save(
        model,
        data,
        models_dir / version,
        {"watermarks": snapshot.watermarks, "history": model.history},
    )
    metric = version_recall(directory, data, split)
    if metric is None:  # LightGCN cannot embed today's graph: its own validation score
        metric = model.best_validation
    current = _current(models_dir)
    current_metric = None
    if current is not None:
        current_metric = version_recall(models_dir / current[0], data, split)
        if current_metric is None:
            current_metric = current[1]
    published = current_metric is None or metric >= current_metric
    log.info(
        "version %s: held-out recall@20 %.4f against %s for the current version: %s",
        version,
        metric,
        "none" if current_metric is None else f"{current_metric:.4f}",
        "published" if published else "kept, not published",
    )
    update_meta(
        directory,
        {
            "validation_recall@20": metric,
            "best_validation_recall@20": model.best_validation,
            "current_recall@20": current_metric,
            "published": published,
        },
    )
    if published:
        tmp = models_dir / ".current.tmp"
        tmp.write_text(version)
        tmp.replace(models_dir / "current")  # atomic switch for readers
    return {
        "version": version,
        "path": str(directory),
        "validation_recall@20": round(metric, 4),
        "current_recall@20": None if current_metric is None else round(current_metric, 4),
        "published": published,
        "previous": current[0] if current else None,
        "config": asdict(config),
    }


def _new_version(models_dir: Path) -> str:
    """A UTC timestamp name, suffixed when a version was already written in that second."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    version, n = stamp, 1
    while (models_dir / version).exists():
        n += 1
        version = f"{stamp}-{n}"
    return version


def _current(models_dir: Path) -> tuple[str, float] | None:
    version = current_version(models_dir)
    if version is None:
        return None
    meta = json.loads((models_dir / version / "meta.json").read_text())
    return version, float(meta["validation_recall@20"])

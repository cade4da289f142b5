"""The learning half's ``eval`` command, mounted into the ``graphrec`` CLI, and the options
it shares with ``graphrec train`` (``graphrec/train_cli.py``).

``eval`` parses options and calls ``gnn.experiment.run_eval``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated

import typer

from gnn.experiment import MODELS, EvalSpec, behaviour_indices, format_table, run_eval
from gnn.splits import SPLITS
from gnn.train import SUPERVISION, TRAINING_MODES, TrainConfig

__all__ = [
    "TRAINABLE_MODELS",
    "SupervisionOpt",
    "TrainingModeOpt",
    "check_mode",
    "check_supervision",
    "eval_command",
]
TRAINABLE_MODELS = ("sage", "lightgcn")  # what `train` publishes; `eval` compares more

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

JourneysOpt = Annotated[
    bool,
    typer.Option(
        help="Synthetic: sessions serve needs that stay open until bought, then move on "
        "(what comes next depends on what was bought, not only viewed)."
    ),
]

TargetOpt = Annotated[
    str,
    typer.Option(
        help="Behaviours to predict, comma-separated (view, click, cart, purchase): only "
        "pairs with one of them are held out; every behaviour still feeds the models. "
        "Empty: any interaction."
    ),
]


TrainFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--train",
        help="Training interactions: CSV, TSV, JSON lines, Parquet or RecBole .inter, "
        "columns user_id, item_id[, timestamp, type, session_id, category] (as import).",
    ),
]


def _needs_matplotlib(path: Path | None) -> Path | None:
    """``--plot`` needs the ``plot`` extra: say so in one line before any work starts."""
    if path is not None and importlib.util.find_spec("matplotlib") is None:
        typer.echo("error: --plot needs matplotlib: pip install 'graphrec[plot]'", err=True)
        raise typer.Exit(2)
    return path


def eval_command(
    dataset: Annotated[str, typer.Option(help="ml-100k, ml-1m or synthetic.")] = "ml-100k",
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
    train_file: TrainFileOpt = None,
    test_file: Annotated[
        Path | None, typer.Option("--test", help="Held-out interactions, same formats as --train.")
    ] = None,
    plot_path: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            callback=_needs_matplotlib,
            help="Write metric bars and training curves to a PNG (needs graphrec\\[plot]).",
        ),
    ] = None,
    events: Annotated[int, typer.Option(help="Synthetic interactions.")] = 50_000,
    journeys: JourneysOpt = False,
    target: TargetOpt = "",
    mode: TrainingModeOpt = "auto",
    supervision: SupervisionOpt = "random",
) -> None:
    """Evaluate models on one split, same split for all, mean ± std over seeds (full ranking,
    training items masked; Recall, NDCG, MRR, HitRate at K)."""
    try:
        config = TrainConfig(
            epochs=epochs,
            target=behaviour_indices(target.split(",")),
            mode=check_mode(mode),
            supervision=check_supervision(supervision),
        )
        spec = EvalSpec(
            dataset=dataset,
            split=split,
            models=tuple(m.strip() for m in models.split(",") if m.strip()),
            seeds=seeds,
            k=k,
            train_file=train_file,
            test_file=test_file,
            events=events,
            journeys=journeys,
            config=config,
        )
        spec.check()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    report = run_eval(spec, lambda line: typer.echo(line, err=True), plot_path)
    typer.echo(json.dumps(report) if as_json else format_table(report["results"]))


def check_mode(mode: str) -> str:
    if mode not in TRAINING_MODES:
        raise typer.BadParameter(f"unknown mode {mode!r}: {', '.join(TRAINING_MODES)}")
    return mode


def check_supervision(supervision: str) -> str:
    if supervision not in SUPERVISION:
        raise typer.BadParameter(f"unknown supervision {supervision!r}: {', '.join(SUPERVISION)}")
    return supervision

"""``graphrec train``: once, or on a schedule that outlives its store.

A periodic trainer's first round fails the command at once (a wrong URL or password is told
in one line, like every command); after that a failed round (the store unreachable, Neo4j
restarting) is retried with back-off, one log line per failure (``serving.loops``), shown
as ``graphrec_background_*{loop="trainer"}`` on ``--metrics-port``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry

from gnn.cli import (
    TRAINABLE_MODELS,
    SupervisionOpt,
    TrainingModeOpt,
    check_mode,
    check_supervision,
)
from gnn.train import TrainConfig
from gnn.trainer import PeriodicTrainer, Schedule
from graphstore import open_store
from serving.loops import LoopMetrics, LoopState, run_forever
from serving.metrics import serve_metrics

LOOP_NAME = "trainer"


def train_command(
    store: Annotated[
        str, typer.Option("--store", help="Graph store URL to train from.")
    ] = "sqlite://data/graph",
    models_dir: Annotated[Path, typer.Option(help="Where versions are written.")] = Path(
        "data/models"
    ),
    model: Annotated[str, typer.Option(help=f"One of: {', '.join(TRAINABLE_MODELS)}.")] = "sage",
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
    metrics_port: Annotated[
        int,
        typer.Option(help="Periodic mode: Prometheus /metrics port on 127.0.0.1 (0: off)."),
    ] = 9465,
) -> None:
    """Train on the graph's current snapshot and publish models/<version>/ when its recall@20
    on held-out pairs is not worse than the current version's on the same pairs.

    Periodic mode keeps going through failed rounds, retrying with back-off."""
    if model not in TRAINABLE_MODELS:
        raise typer.BadParameter(f"unknown model {model!r}: {', '.join(TRAINABLE_MODELS)}")
    config = TrainConfig(
        model=model,
        epochs=epochs,
        seed=seed,
        mode=check_mode(mode),
        supervision=check_supervision(supervision),
    )
    trainer = PeriodicTrainer(
        lambda: open_store(store),
        config,
        models_dir,
        Schedule(every_minutes, every_events),
        report=lambda summary: typer.echo(json.dumps(summary)),
    )
    if not trainer.schedule.periodic:
        trainer.run()
        return
    registry = CollectorRegistry()
    state = LoopState(LOOP_NAME, LoopMetrics(registry))
    if metrics_port:
        serve_metrics(registry, metrics_port)
    keep_training(trainer, state, threading.Event())


def keep_training(
    trainer: PeriodicTrainer,
    state: LoopState,
    stopping: threading.Event,
    first_wait_s: float = 1.0,
    max_wait_s: float = 60.0,
) -> None:
    """Run ``trainer`` until ``stopping`` is set: its first round fails here, later failed
    rounds are retried with back-off and shown in ``state``."""
    trainer.round()
    state.succeeded()
    run_forever(
        lambda: trainer.run(stopping, state.succeeded),
        state,
        stopping,
        first_wait_s,
        max_wait_s,
    )

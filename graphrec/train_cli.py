"""``graphrec train``: once, or on a schedule that outlives its store.

It reads the configuration ``graphrec serve`` reads (``graphrec.config``: the store, the
log, the models directory), and starts from the current version's weights unless ``--cold``.
``--every-events`` counts the interactions the sink reports on the log's change stream
(``graphrec.changecount``).

A periodic trainer's first round fails the command at once (a wrong URL or password is told
in one line, like every command); after that a failed round (the store unreachable, Neo4j
restarting) is retried with back-off, one log line per failure (``serving.loops``), shown
as ``graphrec_background_*{loop="trainer"}`` on ``--metrics-port``.
"""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack, closing
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
from gnn.distributed import joined
from gnn.train import TrainConfig, pick_device
from gnn.trainer import PeriodicTrainer, Schedule
from graphrec.changecount import ChangeCount
from graphrec.config import load_config
from graphstore import open_store
from serving.loops import LoopMetrics, LoopState, run_forever
from serving.metrics import serve_metrics
from streaming.urls import parse_log_url

LOOP_NAME = "trainer"


StoreOpt = Annotated[
    str | None, typer.Option("--store", help="Graph store URL to train from (default: config).")
]
ModelsOpt = Annotated[
    Path | None, typer.Option(help="Where versions are written (default: config).")
]
LogOpt = Annotated[
    str | None,
    typer.Option(
        "--from", help="Log URL whose change stream --every-events counts (default: config)."
    ),
]
ModelOpt = Annotated[str, typer.Option(help=f"One of: {', '.join(TRAINABLE_MODELS)}.")]
EveryMinutesOpt = Annotated[
    float, typer.Option(help="Periodic mode: retrain this often (0: once).")
]
EveryEventsOpt = Annotated[int, typer.Option(help="Periodic mode: or after this many new events.")]
ColdOpt = Annotated[
    bool, typer.Option("--cold", help="Train from scratch, not from the current version's weights.")
]
EarlyStoppingOpt = Annotated[
    bool,
    typer.Option(
        help=f"Validate every {TrainConfig.eval_every} epochs, stop after "
        f"{TrainConfig.patience} validations without improvement and keep the best epoch's "
        "weights. --no-early-stopping: train all --epochs, keep the last epoch's weights "
        "(validated once, after it).",
    ),
]
MetricsPortOpt = Annotated[
    int, typer.Option(help="Periodic mode: Prometheus /metrics port on 127.0.0.1 (0: off).")
]


def train_command(
    store: StoreOpt = None,
    models_dir: ModelsOpt = None,
    log: LogOpt = None,
    model: ModelOpt = "sage",
    epochs: Annotated[int, typer.Option(min=1)] = 60,
    every_minutes: EveryMinutesOpt = 0.0,
    every_events: EveryEventsOpt = 0,
    seed: Annotated[int, typer.Option()] = 0,
    mode: TrainingModeOpt = "auto",
    supervision: SupervisionOpt = "random",
    cold: ColdOpt = False,
    early_stopping: EarlyStoppingOpt = True,
    metrics_port: MetricsPortOpt = 9465,
) -> None:
    """Train on the graph's current snapshot and publish models/<version>/ when its recall@20
    on held-out pairs is not worse than the current version's on the same pairs. Starts from
    the current version's weights (a model of the same kind) unless --cold.

    Periodic mode keeps going through failed rounds, retrying with back-off.

    Under torchrun (`torchrun --nproc-per-node N -m graphrec train`) the N processes train
    one version together (DistributedDataParallel, gloo on CPU, NCCL on GPUs); rank 0 reads
    the graph, evaluates and publishes. Once only: no --every-minutes/--every-events."""
    settings = load_config()
    if model not in TRAINABLE_MODELS:
        raise typer.BadParameter(f"unknown model {model!r}: {', '.join(TRAINABLE_MODELS)}")
    config = TrainConfig(
        model=model,
        epochs=epochs,
        seed=seed,
        mode=check_mode(mode),
        supervision=check_supervision(supervision),
        # the last epoch is always validated: validating only then keeps its weights
        eval_every=TrainConfig.eval_every if early_stopping else epochs,
    )
    log_url = log or settings.log_url
    parse_log_url(log_url)  # a bad URL fails here, before anything starts
    with ExitStack() as stack:
        group = stack.enter_context(joined(pick_device(config.device)))
        schedule = Schedule(every_minutes, every_events)
        changes = None
        if every_events > 0 and group.size == 1:  # a group refuses schedules (PeriodicTrainer)
            changes = stack.enter_context(closing(ChangeCount(log_url)))
        trainer = PeriodicTrainer(
            lambda: open_store(store or settings.store_url),
            config,
            models_dir or settings.models_path,
            schedule,
            report=lambda summary: typer.echo(json.dumps(summary)),
            new_events=changes,
            warm=not cold,
            group=group,
        )
        with closing(trainer):
            _train(trainer, metrics_port, settings.metrics_host)


def _train(trainer: PeriodicTrainer, metrics_port: int, metrics_host: str) -> None:
    """One round, or rounds on the trainer's schedule until the process is stopped."""
    if not trainer.schedule.periodic:
        trainer.run()
        return
    registry = CollectorRegistry()
    state = LoopState(LOOP_NAME, LoopMetrics(registry))
    if metrics_port:
        serve_metrics(registry, metrics_port, metrics_host)
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

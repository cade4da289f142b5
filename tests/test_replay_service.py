"""graphrec replay against a real service: a small synthetic shop loaded through the embedded
log by the replay itself (a sink following it in the background), a model trained on it, the
gRPC server on port 0; then the rest of the history replayed through the same log.

With K at least the catalogue size every answer holds every unseen item, so every scored
event is a hit: a known answer that goes through the whole path (the request, the seen-item
exclusion, reading the rank out of the answer), online and over the frozen graph."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gnn.datasets import SyntheticConfig, generate
from gnn.train import TrainConfig
from gnn.trainer import train_once
from graphrec.cli import app
from graphrec.console import ExitCode
from graphrec.pipeline import running_sink
from graphrec.replay import ReplaySettings, Source, split_index
from graphrec.replay_cli import Server, load_past, run
from graphrec.replay_report import plot
from graphrec.replay_score import COLD_ITEM, KNOWN_USER, NEW_USER, SESSION
from graphstore import open_store
from serving.app import Serving
from serving.server import ServerConfig

GROUP = "sink"
ITEMS = 60
runner = CliRunner()


@dataclass
class World:
    root: Path
    log_url: str
    models: Path
    source: Source
    address: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("replay")
    data = generate(SyntheticConfig(seed=4, events=1_200, users=50, items=ITEMS))
    cut = split_index(data.interactions, 0.9)
    source = Source(data.name, data.items, data.interactions[:cut], data.interactions[cut:])
    log_url, store_url = f"log://{root / 'log'}", f"sqlite://{root / 'graph'}"
    with open_store(store_url) as sink_store, running_sink(log_url, sink_store, GROUP):
        load_past(source, log_url, GROUP, timeout_s=120)
        train_once(sink_store.snapshot(), TrainConfig(epochs=3, seed=0), root / "models")
        with open_store(store_url) as store:
            serving = Serving(store, root / "models", config=ServerConfig(address="127.0.0.1:0"))
            port = serving.start()
            try:
                yield World(root, log_url, root / "models", source, f"127.0.0.1:{port}")
            finally:
                serving.stop()


def test_replay_against_the_live_service(world: World) -> None:
    settings = ReplaySettings(k=ITEMS, probe_every=5)
    report = run(world.source, world.log_url, Server(world.address), settings, world.models)
    outcome = report.outcome
    assert outcome.produced == len(world.source.after)
    assert len(outcome.scored) + outcome.repeats == outcome.produced
    figures = report.as_dict()
    assert figures["online"]["all"]["hit_rate"] == 1.0  # type: ignore[index]
    assert figures["offline"]["all"]["hit_rate"] == 1.0  # type: ignore[index]
    # Offline falls back only for subjects the frozen graph lacks, never for a slow store.
    reasons = figures["offline_fallback_reasons"]
    assert reasons and not [r for r in reasons if "unavailable" in r], reasons  # type: ignore[union-attr]
    assert set(figures["online"]) <= {
        "all",
        "view",
        "click",
        "cart",
        "purchase",  # type: ignore[arg-type]
        KNOWN_USER,
        NEW_USER,
        SESSION,
        COLD_ITEM,
    }
    served = {s.model_version for s in outcome.scored}
    assert served == {figures["offline_version"]}  # no retraining in this world
    lag = report.lag
    assert lag is not None and lag["probed"] >= 1 and lag["timeouts"] == 0
    assert 0 < lag["p50_s"] < 30
    json.dumps(figures)
    plot(report, 20, world.root / "replay.png")
    assert (world.root / "replay.png").stat().st_size > 0


def test_files_without_types_sessions_or_categories(world: World, tmp_path: Path) -> None:
    """A CSV of user, item, timestamp only: one behaviour row, no session row."""
    touched: dict[str, set[str]] = {}
    for e in world.source.before + world.source.after:
        touched.setdefault(e.actor.key, set()).add(e.item_id)
    users = sorted(u for u in touched if u.startswith("u"))[:6]
    catalogue = sorted(i.item_id for i in world.source.items)
    last = max(e.ts for e in world.source.after)
    rows = ["user_id,item_id,timestamp"]
    for n, user in enumerate(users):
        fresh = [i for i in catalogue if i not in touched[user]][:2]  # never touched: no repeat
        rows += [f"{user},{item},{int(last) + 10 * n + j + 1}" for j, item in enumerate(fresh)]
    csv = tmp_path / "ratings.csv"
    csv.write_text("\n".join(rows) + "\n")
    result = runner.invoke(
        app,
        [
            "replay",
            str(csv),
            "--split-at",
            "0.5",
            "--assume-loaded",
            "--to",
            world.log_url,
            "--address",
            world.address,
            "-k",
            str(ITEMS),
            "--no-offline",
            "--probe-every",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["offline"] is None and report["lag"] is None
    online = report["online"]
    assert "view" in online and not {"click", "cart", "purchase", SESSION} & set(online)
    assert online["all"]["n"] == report["scored"] == report["events_after"]
    assert online["all"]["hit_rate"] == 1.0


def test_server_down_is_one_line_and_exit_code_3(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "replay",
            "--dataset",
            "synthetic",
            "--events",
            "200",
            "--assume-loaded",
            "--to",
            f"log://{tmp_path / 'log'}",
            "--address",
            "127.0.0.1:1",
            "--no-offline",
        ],
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == ExitCode.UNREACHABLE, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "graphrec serve" in lines[0]


def test_no_sink_on_the_log_is_one_line_and_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "replay",
            "--dataset",
            "synthetic",
            "--events",
            "200",
            "--load-only",
            "--to",
            f"log://{tmp_path / 'log'}",
            "--group",
            "nobody",
            "--load-timeout",
            "0.5",
        ],
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert lines[-1].startswith("error: ") and "sink" in lines[-1] and "--group" in lines[-1]

"""``graphrec serve --shadow VERSION`` and ``--ab VERSION:FRACTION``: good values reach the
service loaded; bad ones stop it with one line and the usage exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gnn.checkpoint import current_version
from graphrec import serving_cli
from graphrec.cli import app
from tests.serving.conftest import World
from tests.serving.test_shadow import OTHER, models_with_another_version

runner = CliRunner()


@pytest.fixture(scope="module")
def models(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models_with_another_version(world, tmp_path_factory.mktemp("ab-cli"))


def serve(models: Path, *args: str, store: str = "memory://") -> Any:
    return runner.invoke(app, ["serve", "--store", store, "--models-dir", str(models), *args])


def test_both_versions_reach_the_service_loaded(
    models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(serving_cli, "Serving", lambda *_, **__: None)
    monkeypatch.setattr(serving_cli, "_run", lambda *args: seen.extend(args))
    store = f"sqlite://{models.parent / 'graph'}"  # the shadow's process opens it too
    result = serve(models, "--shadow", OTHER, "--ab", f"{OTHER}:0.25", store=store)
    assert result.exit_code == 0, result.output
    pinned = seen[-1]
    assert pinned.shadow.version == OTHER and pinned.shadow.store_url == store
    assert (pinned.ab[0].version, pinned.ab[1]) == (OTHER, 0.25)
    assert "shadow other-version; A/B: other-version answers 25% of subjects" in (pinned.describe())


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--ab", OTHER], "VERSION:FRACTION"),
        (["--ab", f"{OTHER}:1.5"], "between 0 and 1"),
        (["--ab", f"{OTHER}:0"], "between 0 and 1"),
        (["--ab", f"{OTHER}:half"], "between 0 and 1"),
        (["--ab", ":0.5"], "VERSION:FRACTION"),
        (["--ab", "no-such-version:0.5"], "no model version 'no-such-version'"),
        (["--shadow", "no-such-version"], "no model version 'no-such-version'"),
        (["--shadow", "../outside"], "is not a version name"),
        (["--shadow", OTHER, "--no-recommendation-log"], "recommendation log"),
        (["--shadow", OTHER], "cannot open a memory:// store"),
    ],
)
def test_bad_values_stop_serve_with_one_line(models: Path, args: list[str], says: str) -> None:
    result = serve(models, *args)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("flag", ["--shadow", "--ab"])
def test_naming_the_served_version_is_refused(models: Path, flag: str) -> None:
    served = current_version(models)
    result = serve(models, flag, f"{served}:0.5" if flag == "--ab" else str(served))
    assert result.exit_code == 2, result.output
    assert f"{flag} names {served}, the version being served" in result.output

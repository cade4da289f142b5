"""Commands that need no model start without torch: the ``graphrec`` CLI loads the model
commands' modules (``graphrec.cli.MODEL_COMMANDS``) only when one of them runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from graphrec.cli import MODEL_COMMANDS

HEAVY = ("torch", "torch_geometric")
LIGHT_INVOCATIONS = [
    ["--help"],
    ["ingest", "--help"],
    ["produce", "--help"],
    ["stats", "--help"],
    ["import", "--help"],
    ["report", "--help"],
    ["recommend", "--help"],
    ["explain", "--help"],
    ["bench", "--help"],
    ["ingest", "--no-such-option"],
    ["no-such-command"],
]
# Runs each invocation in one fresh interpreter and says which heavy modules each left loaded.
SWEEP = """
import json, sys
from typer.testing import CliRunner
from graphrec.cli import app
seen = []
for args in json.loads(sys.argv[1]):
    CliRunner().invoke(app, args)
    seen.append([m for m in {heavy!r} if m in sys.modules])
print(json.dumps(seen))
"""


def _imported_modules(importtime_log: str) -> set[str]:
    """Module names from ``python -X importtime``'s stderr."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in importtime_log.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def test_graphrec_ingest_help_does_not_import_torch() -> None:
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "graphrec", "ingest", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--group" in run.stdout  # the whole help was printed
    modules = _imported_modules(run.stderr)
    assert "graphrec.cli" in modules  # the log is read right
    assert not modules & set(HEAVY)


def test_only_the_model_commands_import_torch() -> None:
    invocations = [*LIGHT_INVOCATIONS, ["train", "--help"]]
    run = subprocess.run(
        [sys.executable, "-c", SWEEP.format(heavy=HEAVY), json.dumps(invocations)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout)
    light = dict(zip((" ".join(a) for a in LIGHT_INVOCATIONS), seen, strict=False))
    assert light == {name: [] for name in light}
    assert seen[-1] == list(HEAVY)  # train loads the model code: the check sees it


@pytest.mark.parametrize("name", sorted(MODEL_COMMANDS))
def test_a_model_command_is_listed_with_its_own_first_paragraph(name: str) -> None:
    lazy = MODEL_COMMANDS[name]
    command = lazy.load(name)
    assert command.help is not None
    assert lazy.short_help == command.help.split("\n\n")[0]

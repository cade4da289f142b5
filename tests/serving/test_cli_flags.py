"""``graphrec serve`` flags read as positive switches."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from graphrec.cli import app


def test_serve_follows_the_log_unless_told_not_to() -> None:
    shown = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    text = re.sub(r"\x1b\[[0-9;]*m", "", shown.output)
    follow = next(line for line in text.splitlines() if "--no-follow" in line)
    assert "--follow" in follow and "--no-no-" not in text
    assert "[default: follow]" in text
    assert "--from" in text  # the log to follow is a URL option of its own

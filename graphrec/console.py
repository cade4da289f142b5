"""The CLI's error console, and the rule turning mistakes a user can fix into exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from gnn.datasets.movielens import DatasetUnavailable
from graphstore import GraphStoreError
from streaming.urls import UnknownLogUrl

err = Console(stderr=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn mistakes a user can fix (bad URL, unknown name, missing file) into exit code 2."""
    try:
        yield
    except (GraphStoreError, UnknownLogUrl, DatasetUnavailable, ValueError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None

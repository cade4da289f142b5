"""Commands whose module is heavy (torch, torch_geometric: seconds to import) and loaded only
when that command runs or shows its own help.

``graphrec --help`` lists such a command from its short help written here
(``tests/test_cli_imports.py`` checks it against the command's docstring), so every other
command starts without importing the model code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand

from graphrec.console import GraphrecGroup


@dataclass(frozen=True)
class LazyCommand:
    """A command as ``module:function`` and the one line ``graphrec --help`` shows for it."""

    target: str
    short_help: str

    def load(self, name: str) -> Any:  # typer's own (vendored) click Command
        """The command, built by typer from the function once its module is imported."""
        module, function = self.target.split(":")
        single = typer.Typer(add_completion=False)
        single.command(name)(getattr(importlib.import_module(module), function))
        return typer.main.get_command(single)


class Placeholder(TyperCommand):
    """What the group lists for a lazy command until it is resolved to run."""

    def __init__(self, name: str, lazy: LazyCommand) -> None:
        super().__init__(name, short_help=lazy.short_help, help=lazy.short_help)
        self.lazy = lazy


def lazy_group(commands: dict[str, LazyCommand]) -> type[GraphrecGroup]:
    """A ``GraphrecGroup`` class that also offers ``commands``, loading one when it runs."""

    class LazyGroup(GraphrecGroup):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for name, lazy in commands.items():
                self.commands.setdefault(name, Placeholder(name, lazy))

        def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
            name, command, rest = super().resolve_command(ctx, args)
            if isinstance(command, Placeholder) and name is not None:
                command = command.lazy.load(name)
            return name, command, rest

    return LazyGroup

"""The CLI's error console: every failure of a command becomes one line on stderr and an exit
code saying what kind of failure it was (``EXIT_CODES``), whichever command it came from.

``describe`` maps an exception to a ``Failure``, looking through its causes (a store error
raised from a driver error is classified by the driver error). ``GraphrecGroup`` applies it
around every command, usage errors included; ``-v`` adds the traceback.
"""

from __future__ import annotations

import errno
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import typer
from rich.console import Console

from gnn.datasets.movielens import DatasetUnavailable
from graphstore import GraphStoreError
from streaming.urls import UnknownLogUrl

err = Console(stderr=True)


class ExitCode(IntEnum):
    """What a command's exit status means (the README's "Exit codes" table)."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    UNREACHABLE = 3
    AUTH_REFUSED = 4
    ADDRESS_IN_USE = 5
    INTERRUPTED = 130


EXIT_CODES = {
    ExitCode.OK: "done",
    ExitCode.UNEXPECTED: "any other failure: the service answered an error, or a bug "
    "(`graphrec -v ...` shows the traceback)",
    ExitCode.USAGE: "usage or configuration: bad option, URL, name, file or setting; or "
    "nothing to work on (train on a graph without interactions)",
    ExitCode.UNREACHABLE: "a server is unreachable: Kafka, Neo4j or the graphrec service",
    ExitCode.AUTH_REFUSED: "authentication refused: wrong Neo4j password, rate limit, token",
    ExitCode.ADDRESS_IN_USE: "cannot listen: the port is in use or the address is not local",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}
# Our packages: a ValueError they raise is about the user's input, one from a library is a bug.
OWN_PACKAGES = frozenset({"graphrec", "graphstore", "streaming", "gnn", "serving", "benchmarks"})
NEO4J_PASSWORD_HINT = (
    "set GRAPHREC_NEO4J_PASSWORD or put it in the URL (`graphrec services password` prints "
    "the local server's)"
)


@dataclass(frozen=True)
class Failure:
    """What to tell the user, and the exit code."""

    code: ExitCode
    message: str


def exit_codes_help() -> str:
    """The exit-code table as help-epilog text."""
    return "Exit codes:\n\n" + "\n".join(f"{int(c):>3}  {text}" for c, text in EXIT_CODES.items())


def describe(exc: BaseException) -> Failure:
    """The one-line message and exit code for ``exc`` (or any exception it was raised from)."""
    chain = list(_chain(exc))
    for rule in RULES:
        for cause in chain:
            failure = rule(cause, chain)
            if failure is not None:
                return failure
    return Failure(
        ExitCode.UNEXPECTED,
        f"unexpected {type(exc).__name__}: {_one_line(exc)} "
        "(run `graphrec -v ...` for the traceback)",
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _one_line(exc: BaseException) -> str:
    """The exception's text on one line, without the Neo4j driver's ``{code: ...}`` dump."""
    text = getattr(exc, "message", None) if _is(exc, "neo4j.exceptions", "Neo4jError") else None
    text = str(text or exc).split(" {code:")[0]
    return " ".join(text.split()).rstrip(":") or type(exc).__name__


def _is(exc: BaseException, module: str, name: str) -> bool:
    """``isinstance`` against a class of a library, without importing the library: if it was
    never imported, ``exc`` cannot be one of its exceptions."""
    cls = getattr(sys.modules.get(module), name, None)
    return cls is not None and isinstance(exc, cls)


def _neo4j_at(chain: list[BaseException]) -> str:
    """`` at URI`` when an error of the chain names the Neo4j server."""
    text = " ".join(str(e) for e in chain)
    found = re.search(r"\b(?:neo4j|bolt)(?:\+s)?://[\w.\-\[\]]+(?::\d+)?", text)
    return f" at {found.group(0)}" if found else ""


def _auth_rate_limit(exc: BaseException, chain: list[BaseException]) -> Failure | None:
    if not _is(exc, "neo4j.exceptions", "ClientError"):
        return None
    if getattr(exc, "code", "") != "Neo.ClientError.Security.AuthenticationRateLimit":
        return None
    return Failure(
        ExitCode.AUTH_REFUSED,
        "Neo4j refuses logins for now after repeated wrong passwords: wait a few minutes, "
        f"then {NEO4J_PASSWORD_HINT}",
    )


def _neo4j_auth(exc: BaseException, chain: list[BaseException]) -> Failure | None:
    if not _is(exc, "neo4j.exceptions", "AuthError"):
        return None
    return Failure(
        ExitCode.AUTH_REFUSED,
        f"Neo4j{_neo4j_at(chain)} refused the user name or password: {NEO4J_PASSWORD_HINT}",
    )


def _neo4j_unreachable(exc: BaseException, chain: list[BaseException]) -> Failure | None:
    if not (
        _is(exc, "neo4j.exceptions", "ServiceUnavailable")
        or _is(exc, "neo4j.exceptions", "SessionExpired")
    ):
        return None
    return Failure(
        ExitCode.UNREACHABLE,
        f"Neo4j{_neo4j_at(chain)} is unreachable ({_one_line(exc)}): start it "
        "(`graphrec services up neo4j`) or fix the neo4j:// URL",
    )


def _kafka_unreachable(exc: BaseException, chain: list[BaseException]) -> Failure | None:
    if not any(
        _is(exc, "kafka.errors", name)
        for name in ("NoBrokersAvailable", "KafkaConnectionError", "KafkaTimeoutError")
    ):
        return None
    return Failure(
        ExitCode.UNREACHABLE,
        f"no Kafka broker answers ({type(exc).__name__}): start it (`graphrec services up "
        "kafka`) or fix the kafka:// URL (--from/--to, GRAPHREC_LOG)",
    )


def _address_in_use(exc: BaseException, chain: list[BaseException]) -> Failure | None:
    bind = re.search(r"Failed to bind to address (\S+?);", str(exc))
    if isinstance(exc, RuntimeError) and bind:
        where = bind.group(1)
    elif isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
        where = "the address"
    elif isinstance(exc, OSError) and str(exc).startswith("cannot listen on "):
        where = str(exc).removeprefix("cannot listen on ")
    else:
        return None
    return Failure(
        ExitCode.ADDRESS_IN_USE,
        f"cannot listen on {where}: the port is in use or the host is not this machine's; "
        "choose another (--address, --metrics-port, --web-port) or stop what holds it",
    )


def _rpc_error(exc: BaseException, chain: list[BaseException]) -> Failure | None:
    if not _is(exc, "grpc", "RpcError") or not hasattr(exc, "code"):
        return None
    code = exc.code()
    detail = f"{code.name}: {exc.details()}"  # type: ignore[attr-defined]
    if code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return Failure(
            ExitCode.UNREACHABLE,
            f"the graphrec service did not answer ({detail}): start `graphrec serve` or fix "
            "--address",
        )
    if code.name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return Failure(ExitCode.AUTH_REFUSED, f"{detail}: pass the server's --token")
    if code.name == "INVALID_ARGUMENT":
        return Failure(ExitCode.USAGE, detail)
    return Failure(ExitCode.UNEXPECTED, f"the service answered {detail}")


def _usage(exc: BaseException, chain: list[BaseException]) -> Failure | None:
    if _is_named(exc, "UsageError"):
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "graphrec"
        text = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        return Failure(ExitCode.USAGE, f"{text} (see `{command} --help`)")
    if isinstance(exc, (GraphStoreError, UnknownLogUrl, DatasetUnavailable, FileNotFoundError)):
        return Failure(ExitCode.USAGE, _one_line(exc))
    if isinstance(exc, ValueError) and _raised_by_us(exc):
        return Failure(ExitCode.USAGE, _one_line(exc))
    return None


def _is_named(exc: BaseException, *names: str) -> bool:
    """Whether a class of ``exc``'s is named so: click's exceptions, whether typer vendors
    click (typer._click) or uses the click package."""
    return any(cls.__name__ in names for cls in type(exc).__mro__)


def _raised_by_us(exc: BaseException) -> bool:
    tb = exc.__traceback__
    module = ""
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        tb = tb.tb_next
    return module.split(".")[0] in OWN_PACKAGES


# Most specific first: a store error caused by a refused login is an authentication failure.
RULES: tuple[Callable[[BaseException, list[BaseException]], Failure | None], ...] = (
    _auth_rate_limit,
    _neo4j_auth,
    _neo4j_unreachable,
    _kafka_unreachable,
    _address_in_use,
    _rpc_error,
    _usage,
)


def fail(exc: BaseException, verbose: bool) -> typer.Exit:
    """Print ``exc`` as one line (after its traceback when ``verbose``); the Exit to raise."""
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    failure = describe(exc)
    print(f"error: {failure.message}", file=sys.stderr, flush=True)
    return typer.Exit(int(failure.code))


class GraphrecGroup(typer.core.TyperGroup):
    """The ``graphrec`` group: runs each command under ``describe``'s exit-code mapping
    (typer's ``Exit``, ``Abort`` and help for a bare group pass through)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if _is_named(exc, "Exit", "Abort", "NoArgsIsHelpError"):
                raise
            raise fail(exc, bool(ctx.params.get("verbose"))) from None

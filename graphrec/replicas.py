"""Several serving processes on one port, supervised: ``graphrec serve --processes N``.

The parent reserves the port first: a plain bind (no ``SO_REUSEPORT``) fails when anything
listens there, and the command stops with one line and exit code 5 (``ExitCode.ADDRESS_IN_USE``);
then it keeps a socket bound with ``SO_REUSEPORT`` (never listening, so it takes no
connections) for as long as it runs, so nothing else takes the port while a replica restarts.
Each replica is a spawned process listening on that port with ``SO_REUSEPORT``: the kernel
spreads new connections across the replicas listening (a connection, with all of its calls,
stays with one replica).

The parent supervises: SIGTERM or SIGINT is forwarded to every replica as SIGTERM (each
finishes its calls in flight and stops); a replica that exits is started again after a
back-off (doubling from ``FIRST_BACKOFF_S`` to ``MAX_BACKOFF_S``, afresh once it ran
``STABLE_S``), logged as a warning. A replica that fails before it ever started serving
stops them all with its exit code (a bad setting fails every replica alike). A replica
stops by itself when its parent is gone.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import Any

from graphrec.console import describe, err

log = logging.getLogger(__name__)
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STABLE_S = 60.0  # a replica that ran this long restarts after FIRST_BACKOFF_S again
POLL_S = 0.2  # how often the parent looks at its replicas
STOP_GRACE_S = 20.0  # after SIGTERM, how long a replica may take before it is killed
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# target(*args, index, address, ready, parent_pid): serve on ``address`` and set ``ready``
Target = Callable[..., None]


class ReplicaFailed(Exception):
    """A replica exited before it ever started serving (its own error is on stderr)."""

    def __init__(self, index: int, exit_code: int) -> None:
        super().__init__(f"replica {index} failed to start (exit code {exit_code})")
        self.index, self.exit_code = index, exit_code


@dataclass
class _Replica:
    index: int
    process: BaseProcess
    ready: Event
    started: float  # time.monotonic() of its start
    backoff_s: float  # wait before its next start, should it exit
    restart_at: float | None = None  # set while it waits to start again
    served: bool = False  # some process of this index has started serving


class Replicas:
    """``processes`` spawned processes each running ``target(*args, index, address, ready,
    parent_pid)`` on one shared port; ``start``, then ``supervise`` until stopped, then
    ``stop``."""

    def __init__(self, target: Target, args: Sequence[Any], processes: int, address: str) -> None:
        self.target, self.args, self.processes = target, tuple(args), processes
        self.host, self.port = split_address(address)
        self._context = multiprocessing.get_context("spawn")
        self._reservation: list[socket.socket] = []
        self._replicas: list[_Replica] = []

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def pids(self) -> list[int]:
        """The running replicas' process ids."""
        return [r.process.pid for r in self._replicas if r.process.pid and r.restart_at is None]

    def start(self) -> int:
        """Reserve the port (``OSError`` "cannot listen on …" when it is taken), start every
        replica; returns the port."""
        self._reservation, self.port = reserve_port(self.host, self.port)
        self._replicas = [
            self._spawn(i, FIRST_BACKOFF_S, served=False) for i in range(self.processes)
        ]
        return self.port

    def wait_ready(self, timeout_s: float) -> None:
        """Until every replica serves: ``ReplicaFailed`` when one fails first,
        ``TimeoutError`` past ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        self.check()
        while not all(r.served for r in self._replicas):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replicas did not start serving in {timeout_s:g} s")
            time.sleep(POLL_S)
            self.check()

    def supervise(self, stopping: threading.Event) -> None:
        """Restart replicas that exit until ``stopping`` is set; ``ReplicaFailed`` when one
        fails before it ever served."""
        while not stopping.wait(POLL_S):
            self.check()

    def check(self) -> None:
        """Note the replicas that started serving or exited; start those that are due."""
        now = time.monotonic()
        for n, replica in enumerate(self._replicas):
            if replica.restart_at is not None:
                if now >= replica.restart_at:
                    self._replicas[n] = self._spawn(replica.index, replica.backoff_s, True)
                continue
            replica.served = replica.served or replica.ready.is_set()
            if replica.process.is_alive():
                continue
            code = replica.process.exitcode
            if not replica.served:
                raise ReplicaFailed(replica.index, code if code and code > 0 else 1)
            if now - replica.started >= STABLE_S:
                replica.backoff_s = FIRST_BACKOFF_S
            log.warning(
                "replica %d (pid %s) exited with %s; starting it again in %.1f s",
                replica.index,
                replica.process.pid,
                _exit_status(code),
                replica.backoff_s,
            )
            replica.restart_at = now + replica.backoff_s
            replica.backoff_s = min(MAX_BACKOFF_S, 2 * replica.backoff_s)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM every replica, wait up to ``grace_s`` for all, kill the rest, free the port."""
        running = [r.process for r in self._replicas if r.process.is_alive()]
        for process in running:
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning(
                    "replica pid %s did not stop in %.0f s: killing it", process.pid, grace_s
                )
                process.kill()
                process.join(5.0)
        for sock in self._reservation:
            sock.close()
        self._reservation = []

    def _spawn(self, index: int, backoff_s: float, served: bool) -> _Replica:
        ready = self._context.Event()
        process = self._context.Process(
            target=_replica_main,
            args=(self.target, self.args, index, self.address, ready, os.getpid(), _log_levels()),
            name=f"graphrec-replica-{index}",
        )
        process.start()
        return _Replica(index, process, ready, time.monotonic(), backoff_s, served=served)


def run_replicas(replicas: Replicas, announce: Callable[[int], None]) -> None:
    """Start ``replicas``, ``announce(port)``, supervise until SIGTERM/SIGINT, stop them all;
    ``SystemExit`` with a replica's exit code when it failed to start."""
    stopping = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stopping.set())
    try:
        announce(replicas.start())
        replicas.supervise(stopping)
    except ReplicaFailed as failed:
        err.print(f"{failed}; stopping the others", highlight=False)
        raise SystemExit(failed.exit_code) from None
    finally:
        replicas.stop()


def started_line(replicas: Replicas, metrics_host: str, metrics_port: int) -> Callable[[], str]:
    """The line ``graphrec serve --processes N`` prints once every replica serves (a callable:
    the pids are known only then)."""

    def line() -> str:
        pids = ", ".join(str(p) for p in replicas.pids())
        last = metrics_port + replicas.processes - 1
        metrics = (
            f"; metrics on http://{metrics_host}:{metrics_port}..{last}/metrics"
            if metrics_port
            else ""
        )
        return (
            f"serving graphrec.v1.Recommender on port {replicas.port} with "
            f"{replicas.processes} processes (pids {pids}){metrics}"
        )

    return line


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port); ``ValueError`` for anything else."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or address.startswith("unix:"):
        raise ValueError(f"replicas listen on a HOST:PORT address, got {address!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def reserve_port(host: str, port: int) -> tuple[list[socket.socket], int]:
    """Check that nothing listens on ``host:port`` (port 0: pick one), and hold it with
    sockets bound with ``SO_REUSEPORT`` that never listen; returns them and the port."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    held: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in infos:
            where = (sockaddr[0], port, *sockaddr[2:])
            with socket.socket(family, kind, proto) as probe:  # refused if anything holds it
                try:
                    probe.bind(where)
                except OSError as exc:
                    raise OSError(
                        f"cannot listen on {host}:{port} ({exc.strerror or exc})"
                    ) from exc
                port = probe.getsockname()[1]
            sock = socket.socket(family, kind, proto)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((sockaddr[0], port, *sockaddr[2:]))
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held, port


def _replica_main(
    target: Target,
    args: tuple[Any, ...],
    index: int,
    address: str,
    ready: Event,
    parent_pid: int,
    log_levels: dict[str, int],
) -> None:
    """A replica process: the parent's log levels, then ``target``; a failure becomes the
    command's one line on stderr and its exit code."""
    logging.basicConfig(level=log_levels.pop("", logging.WARNING), format=LOG_FORMAT)
    for name, level in log_levels.items():
        logging.getLogger(name).setLevel(level)
    try:
        target(*args, index, address, ready, parent_pid)
    except SystemExit:
        raise
    except BaseException as exc:  # every other failure is the process's exit status
        failure = describe(exc)
        err.print(f"replica {index}: {failure.message}", highlight=False, soft_wrap=True)
        sys.exit(int(failure.code))


def _log_levels() -> dict[str, int]:
    """The root logger's level ("") and those set on named loggers (quietened libraries)."""
    named = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET
    }
    return {**named, "": logging.getLogger().getEffectiveLevel()}


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _signal(process: BaseProcess, sig: signal.Signals) -> None:
    if process.pid is None:
        return
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
        os.kill(process.pid, sig)


__all__ = ["ReplicaFailed", "Replicas", "reserve_port", "run_replicas", "split_address"]

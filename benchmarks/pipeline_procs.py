"""The processes of ``graphrec bench pipeline``: each stage runs as its own ``python -m
graphrec …`` process, as a user runs it, and is measured from outside: wall time and the
process's own peak RSS (``ru_maxrss`` from ``wait4`` on it, Linux and macOS).

Their stdout and stderr go to files in the run's directory (no pipe to fill); a failed or
timed-out process raises with the tail of its stderr. Progress lines report a long process's
current RSS (``/proc/PID/status``) every ``HEARTBEAT_S``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Progress = Callable[[str], None]
POLL_S = 0.05
HEARTBEAT_S = 30.0
SERVING_LINE = re.compile(r"serving graphrec\.v1\.Recommender on port (\d+)")


@dataclass(frozen=True)
class Finished:
    """A process that has exited: its exit code, wall seconds, CPU seconds (user + system),
    peak RSS and the JSON object on the last line of its stdout (``{}`` when there is none)."""

    command: str
    code: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    summary: dict[str, object]


def graphrec(*args: str) -> list[str]:
    """The command line of ``graphrec ARGS`` in this interpreter."""
    return [sys.executable, "-m", "graphrec", *args]


class Process:
    """``argv`` started now, its output in ``work/NAME.{out,err}``."""

    def __init__(self, name: str, argv: list[str], work: Path, say: Progress) -> None:
        self.name, self.say = name, say
        shown = ["graphrec", *argv[3:]] if argv[:3] == graphrec() else argv
        self.command = " ".join(shown)
        self.out, self.err = work / f"{name}.out", work / f"{name}.err"
        root = str(Path(__file__).resolve().parents[1])  # this checkout's graphrec
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "250"}  # one line per message
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        self._finished: Finished | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout_s: float) -> Finished:
        """Wait for it to exit on its own; raise unless it exited with 0. Killed when the
        wait ends otherwise (after ``timeout_s``, or interrupted)."""
        deadline, beat = time.monotonic() + timeout_s, time.monotonic() + HEARTBEAT_S
        try:
            while (done := self.poll()) is None:
                now = time.monotonic()
                if now > deadline:
                    raise TimeoutError(f"`{self.command}` still ran after {timeout_s:g} s")
                if now > beat:
                    beat = now + HEARTBEAT_S
                    rss = self.rss_mb()
                    self.say(f"  {self.name}: {now - self.started:,.0f} s, RSS {rss:,.0f} MB")
                time.sleep(POLL_S)
        except BaseException:
            self.kill()
            raise
        return self.checked(done)

    def stop(self, timeout_s: float = 60.0) -> Finished:
        """SIGTERM, then wait for it to exit (killed after ``timeout_s``)."""
        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)  # not Popen's: it would reap it without wait4
        return self.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL it if it still runs, and reap it."""
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            while self.poll() is None:
                time.sleep(POLL_S)

    def stdout_lines(self) -> list[str]:
        return self.out.read_text(errors="replace").splitlines()

    def rss_mb(self) -> float:
        """Its current RSS (0 once it is gone or where ``/proc`` is missing)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0.0
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(found.group(1)) / 1024 if found else 0.0

    def poll(self) -> Finished | None:
        """The process's figures once it has exited (reaped here with ``wait4``), else None."""
        if self._finished is not None:
            return self._finished
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        wall = time.perf_counter() - self.started
        code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = code  # reaped here: Popen must not wait for it again
        kb = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)  # macOS: bytes
        cpu = usage.ru_utime + usage.ru_stime
        self._finished = Finished(self.command, code, wall, cpu, kb / 1024, _last_json(self.out))
        return self._finished

    def checked(self, done: Finished) -> Finished:
        """``done``, unless the process failed: then raise with the tail of its stderr."""
        if done.code != 0:
            tail = self.err.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"`{self.command}` exited with {done.code}:\n{tail}")
        return done


def run(name: str, argv: list[str], work: Path, say: Progress, timeout_s: float) -> Finished:
    """Run ``argv`` to its end."""
    return Process(name, argv, work, say).wait(timeout_s)


def await_serving(serve: Process, timeout_s: float) -> int:
    """The port ``graphrec serve`` says it serves on, once it says so."""
    deadline = time.monotonic() + timeout_s
    while True:
        for line in serve.stdout_lines():
            if found := SERVING_LINE.search(line):
                return int(found.group(1))
        if (done := serve.poll()) is not None:
            serve.checked(done)
            raise RuntimeError(f"`{serve.command}` exited before it served")
        if time.monotonic() > deadline:
            raise TimeoutError(f"`{serve.command}` did not serve within {timeout_s:g} s")
        time.sleep(POLL_S)


def _last_json(path: Path) -> dict[str, object]:
    """The JSON object on the last non-empty line of ``path`` (``{}`` when it holds none)."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if not lines:
        return {}
    try:
        found = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}

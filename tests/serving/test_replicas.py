"""``graphrec serve --processes 2``: two spawned server processes on one port, each answering,
a killed one started again, SIGTERM stopping them all, and a taken port refused."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from graphstore import ItemRecord, NodeKind
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.server import PID_HEADER
from tests.serving.conftest import World
from tests.serving.test_operations import click, copy_of, publish

STARTUP_S = 120.0  # two spawned processes importing torch and loading the model, on 2 busy cores
ANNOUNCED = re.compile(r"on port (\d+) with 2 processes \(pids ([\d, ]+)\)")
METRICS = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)\.\.\d+/metrics")


@dataclass
class Running:
    """A `graphrec serve` command in a child process, its output collected as it comes."""

    proc: subprocess.Popen[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    def wait_for(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.out) + list(self.err):
                if found := pattern.search(line):
                    return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"no {pattern.pattern!r} in time; out={self.out} err={self.err}")


def _serve(world: World, cwd: Path, processes: int, address: str, metrics_port: int = 0) -> Running:
    command = [
        *(sys.executable, "-m", "graphrec", "serve", "--processes", str(processes)),
        *("--address", address, "--store", world.store_url, "--models-dir", str(world.models)),
        *("--from", world.log_url, "--metrics-port", str(metrics_port)),
        "--no-recommendation-log",
    ]
    proc = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    running = Running(proc)
    for stream, lines in ((proc.stdout, running.out), (proc.stderr, running.err)):
        reader = threading.Thread(target=lambda s=stream, ls=lines: ls.extend(s), daemon=True)
        reader.start()
        running.readers.append(reader)
    return running


def _stop(running: Running) -> None:
    if running.proc.poll() is None:
        running.proc.send_signal(signal.SIGTERM)
        try:
            running.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait()


def _user(world: World) -> str:
    return next(i.actor.key for i in world.dataset.interactions if i.actor.kind is NodeKind.USER)


def _recommend(port: int, user: str) -> int:
    """One Recommend on a connection of its own (so the kernel picks a replica for it);
    the pid of the replica that answered."""
    options = [("grpc.use_local_subchannel_pool", 1)]  # a new connection, not a shared one
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        request = pb.RecommendRequest(subject=pb.Subject(user_id=user), k=5)
        response, call = stub.Recommend.with_call(request, timeout=10)
    assert len(response.items) == 5
    return int(dict(call.trailing_metadata())[PID_HEADER])


def _answering(port: int, user: str, want: set[int], timeout_s: float) -> set[int]:
    """Request until every pid in ``want`` answered (calls failing only while the replicas
    start); the pids that answered."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while not want <= seen and time.monotonic() < deadline:
        try:
            seen.add(_recommend(port, user))
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.UNAVAILABLE, exc  # not serving yet
            time.sleep(0.1)
    assert want <= seen, (want, seen)
    return seen


def _gone(pid: int) -> bool:
    """Exited and reaped: every thread is gone, and with them its sockets (a zombie leader
    may still have threads holding them)."""
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture(scope="module")
def changing(world: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    """A copy of the trained world that this module's tests may publish to."""
    return copy_of(world, tmp_path_factory.mktemp("replicas-world") / "world")


@pytest.fixture(scope="module")
def two(changing: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, int]]:
    metrics = _free_ports(2)
    running = _serve(changing, tmp_path_factory.mktemp("replicas"), 2, "127.0.0.1:0", metrics)
    try:
        port = int(running.wait_for(ANNOUNCED, STARTUP_S).group(1))
        yield running, port
    finally:
        _stop(running)


def test_two_processes_on_one_port_both_answer(world: World, two: tuple[Running, int]) -> None:
    running, port = two
    pids = {int(p) for p in running.wait_for(ANNOUNCED, 1).group(2).split(", ")}
    assert len(pids) == 2 and os.getpid() not in pids and running.proc.pid not in pids
    assert _answering(port, _user(world), pids, STARTUP_S) == pids


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports nothing listens on now (replica i serves its
    /metrics on the first + i)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError("no run of free ports")


def _table_sizes(first_metrics_port: int, processes: int) -> list[float]:
    """Each replica's ``graphrec_item_table_size`` from its own /metrics."""
    sizes = []
    for port in range(first_metrics_port, first_metrics_port + processes):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            text = page.read().decode()
        found = re.search(r"^graphrec_item_table_size ([\d.e+]+)$", text, re.MULTILINE)
        assert found, text
        sizes.append(float(found.group(1)))
    return sizes


def test_every_replica_re_embeds_a_change(changing: World, two: tuple[Running, int]) -> None:
    """An item the sink writes after the version was trained reaches each process's item
    table through that process's own change feed: every replica's table grows by it."""
    running, port = two
    pids = {int(p) for p in running.wait_for(ANNOUNCED, 1).group(2).split(", ")}
    _answering(port, _user(changing), pids, STARTUP_S)
    metrics = int(running.wait_for(METRICS, 1).group(1))
    before = _table_sizes(metrics, 2)
    assert len(set(before)) == 1, before
    template = changing.dataset.items[0]
    new = ItemRecord("replica-new", template.category_path, "new", template.numeric_features)
    publish(changing, [click(f"s-replica-{n}", new.item_id, n) for n in range(3)], [new])
    deadline = time.monotonic() + 60
    while (sizes := _table_sizes(metrics, 2)) != [before[0] + 1] * 2:
        assert time.monotonic() < deadline, (before, sizes, running.err)
        time.sleep(0.05)


def test_a_killed_replica_is_started_again_and_requests_keep_succeeding(
    changing: World, two: tuple[Running, int]
) -> None:
    running, port = two
    user = _user(changing)
    pids = {int(p) for p in running.wait_for(ANNOUNCED, 1).group(2).split(", ")}
    _answering(port, user, pids, STARTUP_S)
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _gone(victim):
        assert time.monotonic() < deadline, "the killed replica did not exit"
        time.sleep(0.01)
    answered: list[int] = []
    deadline = time.monotonic() + STARTUP_S
    while not set(answered) - pids:  # until the new process answers
        assert time.monotonic() < deadline, (answered, running.err)
        answered.append(_recommend(port, user))  # every call succeeds meanwhile
    assert victim not in answered
    restarted = re.compile(rf"replica \d \(pid {victim}\) exited with signal SIGKILL")
    running.wait_for(restarted, 1)


def test_sigterm_stops_every_process_and_frees_the_port(world: World, tmp_path: Path) -> None:
    running = _serve(world, tmp_path, 2, "127.0.0.1:0")
    try:
        found = running.wait_for(ANNOUNCED, STARTUP_S)
        port, pids = int(found.group(1)), {int(p) for p in found.group(2).split(", ")}
        _answering(port, _user(world), pids, STARTUP_S)
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(timeout=60) == 0, running.err
    finally:
        _stop(running)
    assert all(_gone(pid) for pid in pids)
    with socket.socket() as free:  # nothing holds the port any more
        free.bind(("127.0.0.1", port))


@pytest.mark.parametrize("processes", [1, 2])
def test_a_port_another_server_listens_on_is_refused_with_exit_code_5(
    world: World, tmp_path: Path, processes: int
) -> None:
    with socket.socket() as taken:  # as a gRPC server listens: with SO_REUSEPORT
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        running = _serve(world, tmp_path, processes, f"127.0.0.1:{port}")
        try:
            code = running.proc.wait(timeout=STARTUP_S)
        finally:
            _stop(running)
    for reader in running.readers:  # all of the output
        reader.join(10)
    errors = [line for line in running.err if line.strip()]
    assert code == 5, running.err
    assert len(errors) == 1 and f"cannot listen on 127.0.0.1:{port}" in errors[0], errors

"""``serve --shadow VERSION``: every answered Recommend request is scored again by a second
version, in a process of its own, and its list logged beside the served one.

The shadow's process (``serving.shadowproc``, spawned) opens what ``ShadowWork`` names: the
store, the pinned version, a change feed following the stream from that version's watermarks
and a recommendation log writer, all its own (``graphrec.shadowjob``). It shares no
interpreter lock with the served requests and runs at a lower priority (``nice`` +10), with
one thread for torch, OpenBLAS, OpenMP and MKL (idle BLAS workers spin on the other core for
a while after each call). It takes what is queued at most every ``every_s``, in batches of
up to ``max_batch``, and answers a batch together (``Recommender.recommend_many``: one graph
round trip, one top-K call, so a large batch costs far less per request); each list goes to
the log with the served answer's request id and time, arm ``shadow`` and the shadow's
version (``latency_ms``: the batch's scoring time).

A lower priority alone did not keep the served answers' p99: scoring every request, nice +10
and SCHED_IDLE alike still cost it up to 1.5x on two cores shared with other work (``graphrec
bench reclog --shadow``, same run). So the process is also held to ``max_busy`` of the wall
clock: after a batch that took t seconds it rests t * (1 / max_busy - 1) before the next.
Under load the shadow scores a sample of the requests, not all of them; the report compares
the ones it scored.

On the request path ``offer`` only puts the request's bytes on a bounded multiprocessing
queue without waiting (its feeder thread writes them to the pipe): it never waits and never
raises. A full queue drops the request (``full``); so does a shadow that is not up
(``down``: starting, or started again after its process died). A shadow that is slow or
stuck only fills its queue: the served answers never wait for it.

A thread of the server supervises the process: one that exits is logged, what it held and
what was queued for it are counted as dropped (``down``), and it is started again after a
back-off (doubling from ``first_backoff_s`` to ``max_backoff_s``, afresh after ``STABLE_S``
up), each time with a fresh queue. Its state is the loop ``shadow`` of /metrics
(``graphrec_background_up``, ``graphrec_background_failures_total``) and of gRPC health
(``graphrec.v1.Recommender/shadow``). ``stop`` asks the process to stop after its batch in
hand (killing it after ``stop_timeout_s``); what was still queued or held is counted as
dropped (``stopped``).

Metrics, on the service's registry (the process reports its counts through shared
counters): ``graphrec_shadow_scored_total`` (lists handed to the shadow's log),
``graphrec_shadow_logged_total`` (lists its log wrote), ``graphrec_shadow_dropped_total{reason}``
(``full``, ``down``, ``failed``: the shadow could not answer it, ``stopped``) and
``graphrec_shadow_waiting`` (queued now).
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from serving.loops import LoopMetrics, LoopState
from serving.shadowproc import (
    COUNTERS,
    FAILED,
    HOLDING,
    LOGGED,
    READY,
    SCORED,
    STATE,
    STOP,
    Counters,
    ShadowWork,
    shadow_main,
)

log = logging.getLogger(__name__)
LOOP_NAME = "shadow"
REASONS = ("full", "down", "failed", "stopped")
ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
POLL_S = 0.1  # how often the supervisor looks at the process
STABLE_S = 60.0  # a process up this long is started again after first_backoff_s


@dataclass(frozen=True)
class ShadowConfig:
    """How many requests may wait for the shadow, how it takes them, how it is kept up."""

    capacity: int = 128  # requests queued (a bound on how late they are scored); beyond,
    # they are dropped
    max_batch: int = 128  # requests scored together
    linger_s: float = 0.05  # how long the process waits for a request before it looks again
    every_s: float = 0.5  # it takes a batch at most this often: larger batches cost less
    # per request (one graph round trip, one top-K call)
    max_busy: float = 0.1  # share of the wall clock the process may spend scoring
    nice: int = 10  # added to the process's niceness: it yields the cores to the server
    first_backoff_s: float = 0.5  # before starting a process that died again
    max_backoff_s: float = 30.0
    stop_timeout_s: float = 10.0  # for the process to finish its batch and flush its log

    def __post_init__(self) -> None:
        if not 0.0 < self.max_busy <= 1.0:
            raise ValueError(f"max_busy is a share in (0, 1], got {self.max_busy:g}")


@dataclass
class _Life:
    """One process of the shadow, its queue and its state."""

    process: BaseProcess
    channel: Any  # multiprocessing queue of serving.shadowproc.Offered
    state: Counters
    started: float  # time.monotonic()


class Shadow:
    """The bounded queue of answered requests and the supervised process scoring them with
    ``work`` (a pinned version's, ``graphrec.shadowjob``)."""

    def __init__(
        self, work: ShadowWork, registry: CollectorRegistry, config: ShadowConfig | None = None
    ) -> None:
        self.work = work
        self.config = config or ShadowConfig()
        self._context = multiprocessing.get_context("spawn")
        self._counters: Counters = self._context.RawArray(ctypes.c_int64, COUNTERS)
        self._dropped = dict.fromkeys(REASONS, 0)
        self._lock = threading.Lock()  # the queue in use and the drop counts
        self._life: _Life | None = None
        self._up = False
        self._backoff_s = self.config.first_backoff_s
        self._restart_at: float | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = LoopState(LOOP_NAME, LoopMetrics(CollectorRegistry()))
        registry.register(_Collector(self))

    @property
    def up(self) -> bool:
        """Whether the shadow's process has opened its work and takes requests."""
        return self._up

    @property
    def pid(self) -> int | None:
        """The shadow's process id, while one runs."""
        life = self._life
        return None if life is None else life.process.pid

    # ------------------------------------------------------------------ the request path
    def offer(self, request: bytes, request_id: str) -> None:
        """Queue an answered request for the shadow; drop and count it when the queue is
        full or the shadow is not up. Never waits, never raises. Called from the server's
        event loop."""
        with self._lock:
            life = self._life
            if life is None or not self._up:
                self._dropped["down"] += 1
                return
            try:
                life.channel.put_nowait((time.time(), request_id, request))
            except queue.Full:
                self._dropped["full"] += 1
            except Exception:  # a queue closed meanwhile
                self._dropped["down"] += 1

    # ------------------------------------------------------------------ the supervisor
    def start(self, state: LoopState | None = None) -> None:
        """Start the process and the thread keeping it up; ``state`` shows it (/metrics,
        health)."""
        if state is not None:
            self._state = state
        # Runs before multiprocessing's own exit handler ends the process: not started again.
        atexit.register(self._stopping.set)
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="shadow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the process after its batch in hand (killing it after ``stop_timeout_s``);
        what is still queued or held is counted as dropped (``stopped``)."""
        self._stopping.set()
        atexit.unregister(self._stopping.set)
        if self._thread is not None:
            self._thread.join()
        life = self._life
        if life is None:
            return
        life.state[STOP] = 1
        life.process.join(self.config.stop_timeout_s)
        if life.process.is_alive():
            log.warning(
                "shadow (pid %s) did not stop in %g s: killing it",
                life.process.pid,
                self.config.stop_timeout_s,
            )
            life.process.kill()
            life.process.join(5.0)
        self._end(life, "stopped")

    def _supervise(self) -> None:
        while not self._stopping.wait(POLL_S):
            try:
                self._check()
            except Exception:  # the supervisor keeps going; the next look may do better
                log.exception("shadow: supervising its process failed")

    def _check(self) -> None:
        """Note the process ready or gone; start it again when due."""
        now = time.monotonic()
        life = self._life
        if life is None:
            if self._restart_at is not None and now >= self._restart_at:
                self._spawn()
            return
        if life.process.is_alive():
            if not self._up and life.state[READY]:
                self._up = True
                log.info("shadow %s: up (pid %s)", self.work.version, life.process.pid)
                self._state.succeeded()
            return
        if now - life.started >= STABLE_S:
            self._backoff_s = self.config.first_backoff_s
        lost = self._end(life, "down")
        log.warning(
            "shadow %s (pid %s) exited with %s (%d requests not scored); starting it again "
            "in %.1f s",
            self.work.version,
            life.process.pid,
            exit_status(life.process.exitcode),
            lost,
            self._backoff_s,
        )
        self._state.failed()
        self._restart_at = now + self._backoff_s
        self._backoff_s = min(self.config.max_backoff_s, 2 * self._backoff_s)

    def _spawn(self) -> None:
        channel = self._context.Queue(max(1, self.config.capacity))
        state: Counters = self._context.RawArray(ctypes.c_int64, STATE)
        level = logging.getLogger().getEffectiveLevel()
        process = self._context.Process(
            target=shadow_main,
            args=(self.work, channel, self._counters, state, self.config, os.getpid(), level),
            name="graphrec-shadow",
            daemon=True,
        )
        with _one_thread_per_library():
            process.start()
        self._restart_at = None
        with self._lock:
            self._life = _Life(process, channel, state, time.monotonic())

    def _end(self, life: _Life, reason: str) -> int:
        """Retire ``life``'s queue; what it still held is dropped for ``reason``; returns
        how many."""
        with self._lock:
            self._life, self._up = None, False
            lost = _queued(life.channel) + max(0, life.state[HOLDING])
            self._dropped[reason] += lost
        life.channel.close()
        life.channel.cancel_join_thread()  # its feeder may hold what nobody will read
        return lost

    # ------------------------------------------------------------------ metrics
    def counts(self) -> dict[str, int]:
        """Scored, logged, waiting and each reason's drops, as now."""
        with self._lock:
            dropped = dict(self._dropped)
            life = self._life
        dropped["failed"] += self._counters[FAILED]
        return {
            "scored": self._counters[SCORED],
            "logged": self._counters[LOGGED],
            "waiting": 0 if life is None else _queued(life.channel),
            **{f"dropped_{reason}": n for reason, n in dropped.items()},
        }


class _Collector:
    """The shadow's metrics, read from its counts at each scrape."""

    def __init__(self, shadow: Shadow) -> None:
        self.shadow = shadow

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        counts = self.shadow.counts()
        yield CounterMetricFamily(
            "graphrec_shadow_scored",
            "Recommend requests the shadow version scored (lists handed to its log).",
            value=counts["scored"],
        )
        yield CounterMetricFamily(
            "graphrec_shadow_logged",
            "Shadow lists the shadow's recommendation log wrote.",
            value=counts["logged"],
        )
        dropped = CounterMetricFamily(
            "graphrec_shadow_dropped",
            "Recommend requests the shadow version did not score, by reason: full (its "
            "queue was full), down (its process was not up), failed, stopped.",
            labels=["reason"],
        )
        for reason in REASONS:
            dropped.add_metric([reason], counts[f"dropped_{reason}"])
        yield dropped
        yield GaugeMetricFamily(
            "graphrec_shadow_waiting",
            "Recommend requests queued for the shadow version.",
            value=counts["waiting"],
        )


@contextmanager
def _one_thread_per_library() -> Iterator[None]:
    """The environment a spawned process starts with says one thread to OpenBLAS, OpenMP and
    MKL: they read it once, as numpy and torch are imported, before any code of ours runs
    there. (Their idle workers spin on the other cores for a while after each call.)"""
    saved = {name: os.environ.get(name) for name in ONE_THREAD}
    os.environ.update(dict.fromkeys(ONE_THREAD, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _queued(channel: Any) -> int:
    """Requests put on ``channel`` and not taken (counted by its semaphore, not read)."""
    try:
        return max(0, int(channel.qsize()))
    except (NotImplementedError, OSError, ValueError):
        return 0


def exit_status(code: int | None) -> str:
    """``exit code 1``, ``signal SIGKILL``."""
    import signal

    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"

"""``graphrec bench reclog``: Recommend latency with the recommendation log on, beside it off,
in the same run.

The world is ``graphrec bench serve``'s (a synthetic shop in a fresh embedded store, a GNN
trained on it briefly; ``benchmarks.serve``), and so are the requests (known users and fresh
sessions, alternating) and the load generator (closed-loop client threads in another
process, ``benchmarks.loadgen``). Two services run in this process on the same store and
model version: one writes every answer to the recommendation log (a fresh embedded log by
default, or ``--log``), the other does not. At each concurrency they are measured in turns,
``rounds`` times (off then on, then on then off, ...), so drift in the machine's load falls
on both alike; the latencies of a side's turns are pooled. After the run the log's own
counters say how many answers it wrote and dropped.

With ``shadow``, a third service takes its turns beside them: the log on and a shadow version
scoring the requests in a process of its own (``serving.shadow`` with its defaults; the
shadow is a copy of the served version under another name, so it costs what the served model
costs), the service and its shadow writing to a log of their own; its counters say how many
requests the shadow scored, logged and dropped. The shadow's process runs for the whole run
and scores what its service hands it (it has nothing to do in the other services' turns but
finish its queue).

Goals (issue 20): with the log on, p50 within 5% and p99 within 10% of the log off; with a
shadow on, the served answers' p99 within 10% of the log on without one.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.loadgen import Clients
from benchmarks.serve import _known_users, _payloads
from benchmarks.serve_world import WorldSpec, build_world
from serving.app import Serving
from serving.reclog import RecommendationLogConfig
from serving.shadow import REASONS, Shadow

GOALS = "with the log on, p50 <= 1.05x and p99 <= 1.10x the log off, at every level"
SHADOW_GOAL = "with a shadow on, p99 <= 1.10x the log on without one, at every level"
SIDES = ("off", "on")
SHADOW_START_S = 120.0  # for the shadow's process to load its version


def bench_reclog(
    items: int = 100_000,
    events: int = 200_000,
    users: int = 20_000,
    seconds: float = 3.0,
    levels: Sequence[int] = (1, 8, 32),
    rounds: int = 4,
    epochs: int = 2,
    log_url: str | None = None,
    seed: int = 0,
    shadow: bool = False,
) -> dict[str, object]:
    """Build the world, serve it with and without the log (and with a shadow), measure;
    returns the figures."""
    from graphrec.reclog import log_config

    say = _progress()
    work = Path(tempfile.mkdtemp(prefix="graphrec-bench-reclog-"))
    try:
        spec = WorldSpec(items, events, users, epochs, seed, train_events=None)
        world = build_world(spec, work, None, say)
        url = log_url or f"log://{work / 'log'}"
        services = {"off": _serve(world, None), "on": _serve(world, log_config(url))}
        shadowed = None
        if shadow:
            shadow_url = log_url or f"log://{work / 'log-shadow'}"
            services["shadow"], shadowed = _serve_shadowed(world, shadow_url, work)
        clients = Clients()
        try:
            known = _known_users(world.dataset, 1_000)
            payloads = _payloads(world.dataset, known, 2_000, sessions=True)
            measured = {
                str(c): _level(clients, services, payloads, c, seconds, rounds, say) for c in levels
            }
            ledger = _ledger(services["on"][0])
            if shadowed is not None:
                ledger["shadow"] = _shadow_ledger(services["shadow"][0], shadowed)
        finally:
            clients.close()
            for serving, _ in services.values():
                serving.stop()
            world.store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "bench": "reclog",
        "items": items,
        "events": events,
        **world.figures,
        "log": log_url or "log://<fresh embedded log>",
        "seconds_per_turn": seconds,
        "rounds": rounds,
        "levels": measured,
        **ledger,
        "goals": f"{GOALS}; {SHADOW_GOAL}" if shadow else GOALS,
        "met": _met(measured, shadow),
    }


def _met(measured: dict[str, dict[str, float]], shadow: bool) -> dict[str, bool]:
    """Which goals every level met."""
    met = {
        "p50_within_5%": all(m["ratio_p50"] <= 1.05 for m in measured.values()),
        "p99_within_10%": all(m["ratio_p99"] <= 1.10 for m in measured.values()),
    }
    if shadow:
        met["shadow_p99_within_10%"] = all(m["shadow_ratio_p99"] <= 1.10 for m in measured.values())
    return met


def _serve(world: Any, reclog: RecommendationLogConfig | None) -> tuple[Serving, str]:
    """A service on the world's store and model; (it, its Recommend target)."""
    from serving.server import ServerConfig

    serving = Serving(
        world.store,
        world.models,
        config=ServerConfig(address="127.0.0.1:0"),
        reload_every_s=3600.0,  # one version for the whole run
        recommendation_log=reclog,
    )
    return serving, f"127.0.0.1:{serving.start()}"


def _serve_shadowed(world: Any, log_url: str, work: Path) -> tuple[tuple[Serving, str], Shadow]:
    """A service logging to ``log_url`` with a shadow: the served version copied under
    another name (a shadow may not be the served version); once the shadow is up."""
    from gnn.checkpoint import current_version
    from graphrec.reclog import log_config
    from graphrec.shadowjob import ShadowJob
    from serving.pinned import with_shadow
    from serving.server import ServerConfig

    served = current_version(world.models)
    assert served is not None
    name = f"{served}-shadow"
    shutil.copytree(world.models / served, work / "shadow-models" / name)
    serving = Serving(
        world.store,
        world.models,
        config=ServerConfig(address="127.0.0.1:0"),
        reload_every_s=3600.0,
        recommendation_log=log_config(log_url),
    )
    job = ShadowJob(world.store.url, work / "shadow-models", name, log_url)
    shadow = with_shadow(serving, job)
    target = f"127.0.0.1:{serving.start()}"
    shadow.start()
    deadline = time.monotonic() + SHADOW_START_S
    while not shadow.up:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the shadow's process was not up in {SHADOW_START_S:g} s")
        time.sleep(0.1)
    return (serving, target), shadow


def _level(
    clients: Clients,
    services: dict[str, tuple[Serving, str]],
    payloads: list[bytes],
    concurrency: int,
    seconds: float,
    rounds: int,
    say: Any,
) -> dict[str, float]:
    """Every side at one concurrency, in turns; their p50/p99, the ratios on/off and (with a
    shadow side) shadow/on."""
    from serving.server import SERVICE_NAME

    sides = tuple(services)
    pooled: dict[str, list[np.ndarray]] = {side: [] for side in sides}
    ok = dict.fromkeys(sides, 0)
    say(f"concurrency {concurrency}: {rounds} rounds of {', '.join(sides)}, {seconds:g} s each")
    for n in range(rounds):
        for side in sides if n % 2 == 0 else sides[::-1]:
            run = clients.call(
                "closed_loop",
                target=services[side][1],
                method=f"/{SERVICE_NAME}/Recommend",
                payloads=payloads,
                concurrency=concurrency,
                seconds=seconds,
            )
            pooled[side].append(run["latencies"])
            ok[side] += int(run["codes"].get("OK", 0))
    figures: dict[str, float] = {}
    for side in sides:
        latencies = np.concatenate(pooled[side])
        figures[f"{side}_p50_ms"] = round(1e3 * float(np.percentile(latencies, 50)), 3)
        figures[f"{side}_p99_ms"] = round(1e3 * float(np.percentile(latencies, 99)), 3)
        figures[f"{side}_rps"] = round(ok[side] / (seconds * rounds), 1)
    for p in ("p50", "p99"):
        figures[f"ratio_{p}"] = round(figures[f"on_{p}_ms"] / figures[f"off_{p}_ms"], 4)
        if "shadow" in sides:
            figures[f"shadow_ratio_{p}"] = round(
                figures[f"shadow_{p}_ms"] / figures[f"on_{p}_ms"], 4
            )
    say(f"  {figures}")
    return figures


def _ledger(serving: Serving) -> dict[str, object]:
    """What the log-on service answered, wrote and dropped, from its own metrics (its log
    stopped first: it writes what is still queued)."""
    reclog = serving.recommendations
    assert reclog is not None
    reclog.stop()
    registry = serving.metrics.registry

    def value(name: str, labels: dict[str, str] | None = None) -> int:
        return int(registry.get_sample_value(name, labels or {}) or 0)

    answered = value("graphrec_request_seconds_count", {"method": "Recommend", "code": "OK"})
    dropped = {
        reason: value("graphrec_recommendation_log_dropped_total", {"reason": reason})
        for reason in ("full", "write_failed", "unreadable", "stopped")
    }
    return {
        "answered": answered,
        "logged": value("graphrec_recommendation_log_records_total"),
        "dropped": dropped,
    }


def _progress() -> Any:
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[bench reclog {time.monotonic() - started:6.1f}s] {line}", file=sys.stderr)

    return say


def _shadow_ledger(serving: Serving, shadow: Shadow) -> dict[str, object]:
    """What the shadowed service's shadow scored, logged and dropped (its process stopped
    first: its log writes what is still queued), and what the service's log wrote."""
    shadow.stop()
    figures = _ledger(serving)
    registry = serving.metrics.registry

    def value(name: str, labels: dict[str, str] | None = None) -> int:
        return int(registry.get_sample_value(name, labels or {}) or 0)

    dropped = {
        reason: value("graphrec_shadow_dropped_total", {"reason": reason}) for reason in REASONS
    }
    return {
        **figures,
        "shadow_scored": value("graphrec_shadow_scored_total"),
        "shadow_logged": value("graphrec_shadow_logged_total"),
        "shadow_dropped": dropped,
    }

"""What ``graphrec bench serve`` adds on Neo4j: the raw driver running the request's
neighbourhood query, the store's call for users of every degree, and ghz from outside.

* Raw driver: at each concurrency, that many threads, each with its own session, running the
  statement and parameters the store sends for a Recommend subject (``cy.HOP_EDGES[User]``,
  one hop at the request fan-out), records read to the end: what the request's one store
  round trip costs without graphrec around it.
* Degrees: ``GraphStore.neighbourhood`` of users spread evenly over the degree ranking, each a
  few times, one at a time: p50 and p99 overall and per degree quarter.
* ghz (``deploy/outside-clients.sh`` installs it): Recommend for the same known users, from
  outside the process, by reflection.
* Freshness: produce → visible in the graph, with the sink following a log into this store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphstore import INTERACTION_RELATIONSHIPS, NodeKind, NodeRef
from graphstore import _cypher as cy
from graphstore.neo4j import Neo4jGraphStore, hop_params

if TYPE_CHECKING:
    from gnn.datasets import Dataset

Progress = Callable[[str], None]


def raw_driver_levels(
    store: Neo4jGraphStore,
    users: Sequence[str],
    fanout: int,
    levels: Sequence[int],
    seconds: float,
    say: Progress,
) -> dict[str, dict[str, float]]:
    """The request's neighbourhood statement through the bare driver, per concurrency."""
    out = {}
    for concurrency in levels:
        latencies = _driver_loop(store, users, fanout, concurrency, seconds)
        out[str(concurrency)] = {
            **percentiles(latencies),
            "rps": round(len(latencies) / seconds, 1),
        }
        say(f"  raw driver at {concurrency}: {out[str(concurrency)]}")
    return out


def _driver_loop(
    store: Neo4jGraphStore, users: Sequence[str], fanout: int, concurrency: int, seconds: float
) -> np.ndarray:
    per_thread: list[list[float]] = [[] for _ in range(concurrency)]
    barrier = threading.Barrier(concurrency)

    def run(t: int) -> None:
        mine, n = per_thread[t], t * len(users) // concurrency
        with store._session() as session:
            params = hop_params([users[n % len(users)]], fanout, INTERACTION_RELATIONSHIPS, None)
            list(session.run(cy.HOP_EDGES[NodeKind.USER], params))  # warm the connection
            barrier.wait()
            end = time.perf_counter() + seconds
            while (started := time.perf_counter()) < end:
                params["keys"] = [users[n % len(users)]]
                list(session.run(cy.HOP_EDGES[NodeKind.USER], params))
                mine.append(time.perf_counter() - started)
                n += 1

    threads = [threading.Thread(target=run, args=(t,)) for t in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    return np.array([x for xs in per_thread for x in xs], np.float64)


def degree_sweep(
    store: Neo4jGraphStore,
    degrees: dict[str, int],
    fanout: int,
    say: Progress,
    sample: int = 400,
    repeat: int = 3,
) -> dict[str, Any]:
    """``neighbourhood([user], [fanout])`` for up to ``sample`` users spread evenly over the
    degree ranking (the lowest and the highest included), ``repeat`` times each."""
    ranked = sorted(degrees, key=lambda u: (degrees[u], u))
    picks = [
        ranked[i] for i in np.linspace(0, len(ranked) - 1, min(sample, len(ranked))).astype(int)
    ]
    say(f"neighbourhood of {len(picks)} users of degree {degrees[picks[0]]}..{degrees[picks[-1]]}")
    store.neighbourhood([NodeRef(NodeKind.USER, picks[0])], [fanout], INTERACTION_RELATIONSHIPS)
    times: list[list[float]] = []
    for user in picks:
        seed = [NodeRef(NodeKind.USER, user)]
        mine = []
        for _ in range(repeat):
            started = time.perf_counter()
            store.neighbourhood(seed, [fanout], INTERACTION_RELATIONSHIPS)
            mine.append(time.perf_counter() - started)
        times.append(mine)
    every = np.array(times, np.float64).ravel()
    overall = percentiles(every)
    quarters: list[dict[str, Any]] = []
    for part in np.array_split(np.arange(len(picks)), 4):
        quarter = np.array([times[i] for i in part], np.float64).ravel()
        quarters.append(
            {"degrees": [degrees[picks[part[0]]], degrees[picks[part[-1]]]], **percentiles(quarter)}
        )
    return {
        "users": len(picks),
        "calls": len(every),
        "fanout": fanout,
        **overall,
        "p99_over_p50": round(overall["p99_ms"] / overall["p50_ms"], 2),
        "quarters": quarters,
        "highest_over_lowest_quarter_p50": round(quarters[-1]["p50_ms"] / quarters[0]["p50_ms"], 2),
    }


def ghz_levels(
    target: str, users: Sequence[str], k: int, levels: Sequence[int], seconds: float, say: Progress
) -> dict[str, Any]:
    """Recommend for ``users`` (round robin) from ghz at each concurrency, or why not."""
    ghz = shutil.which("ghz", path=f"{_go_bin()}{os.pathsep}{os.environ.get('PATH', '')}")
    if ghz is None:
        return {"skipped": "ghz is not installed: run deploy/outside-clients.sh"}
    requests = [{"subject": {"user_id": u}, "k": k} for u in users]
    out: dict[str, Any] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as data:
        json.dump(requests, data)
        data.flush()
        for concurrency in levels:
            run = subprocess.run(
                [
                    ghz, "--insecure", "--call", "graphrec.v1.Recommender/Recommend",
                    "-D", data.name, "-c", str(concurrency), "-z", f"{seconds:g}s",
                    "--connections", "1", "--duration-stop", "ignore", "--format", "json", target,
                ],
                capture_output=True, text=True, timeout=seconds + 120, check=True,
            )  # fmt: skip
            report = json.loads(run.stdout)
            ms = {d["percentage"]: d["latency"] / 1e6 for d in report["latencyDistribution"]}
            out[str(concurrency)] = {
                "p50_ms": round(ms[50], 3),
                "p95_ms": round(ms[95], 3),
                "p99_ms": round(ms[99], 3),
                "rps": round(report["rps"], 1),
                "codes": dict(Counter(report["statusCodeDistribution"])),
            }
            say(f"  ghz at {concurrency}: {out[str(concurrency)]}")
    return out


def percentiles(latencies: np.ndarray) -> dict[str, float]:
    """p50, p95 and p99 of seconds, in milliseconds."""
    if not len(latencies):
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    return {f"p{q}_ms": round(1e3 * float(np.percentile(latencies, q)), 3) for q in (50, 95, 99)}


def _go_bin() -> Path:
    return Path(os.environ.get("GRAPHREC_CACHE", Path.home() / ".cache" / "graphrec")) / "go/bin"


GOALS = (
    "Recommend p99 <= 20 ms at concurrency 1 and <= 50 ms at 8, >= 285 rps at 32 (the bench's "
    "clients and ghz); neighbourhood p99 <= 2x p50 across users of every degree; freshness "
    "p99 < 1 s"
)


def neo4j_figures(
    store: Neo4jGraphStore,
    dataset: Dataset,
    target: str,
    users: Sequence[str],
    levels: Sequence[int],
    seconds: float,
    work: Path,
    measured: dict[str, dict[str, Any]],
    say: Progress,
) -> dict[str, Any]:
    """The raw driver, the degree sweep, ghz and freshness, with the goals of issue 23."""
    from benchmarks.freshness import measure_freshness
    from serving.recommender import RecommenderConfig

    fanout = RecommenderConfig().fanouts[0]
    say(f"raw driver: the request's neighbourhood statement, {seconds:g} s per level")
    raw = raw_driver_levels(store, users, fanout, levels, seconds, say)
    sweep = degree_sweep(store, user_degrees(dataset), fanout, say)
    say(f"  {sweep}")
    say("ghz from outside")
    ghz = ghz_levels(target, users, 20, levels, seconds, say)
    say("freshness: produce to a log, the sink following it into the store")
    run = uuid.uuid4().hex[:8]  # topics of its own: the reused store has watermarks of others
    log = f"log://{work / 'fresh-log'}?events=fresh-{run}&items=fresh-items-{run}"
    freshness = measure_freshness(log, store, trials=100)
    say(f"  {freshness}")
    return {
        "raw_driver": raw,
        "neighbourhood": sweep,
        "ghz": ghz,
        "freshness": freshness,
        "goals": GOALS,
        "met": _goals_met(measured, ghz, sweep, freshness),
    }


def _goals_met(
    measured: dict[str, dict[str, Any]],
    ghz: dict[str, Any],
    sweep: dict[str, Any],
    freshness: dict[str, float],
) -> dict[str, bool | None]:
    def level(figures: dict[str, Any], c: str, key: str) -> float | None:
        return float(figures[c][key]) if c in figures and key in figures[c] else None

    met: dict[str, bool | None] = {}
    for name, figures in (("bench", measured), ("ghz", ghz)):
        p99_1, p99_8 = level(figures, "1", "p99_ms"), level(figures, "8", "p99_ms")
        rps_32 = level(figures, "32", "rps")
        met[f"{name}_p99_at_1_within_20ms"] = None if p99_1 is None else p99_1 <= 20.0
        met[f"{name}_p99_at_8_within_50ms"] = None if p99_8 is None else p99_8 <= 50.0
        met[f"{name}_rps_at_32_at_least_285"] = None if rps_32 is None else rps_32 >= 285.0
    met["neighbourhood_p99_within_2x_p50"] = float(sweep["p99_over_p50"]) <= 2.0
    met["freshness_p99_under_1s"] = float(freshness["p99_ms"]) < 1_000.0
    return met


def user_degrees(dataset: Dataset) -> dict[str, int]:
    """Each user's degree in the world: the distinct (behaviour, item) edges it has."""
    edges = {
        (i.actor.key, i.behaviour, i.item_id)
        for i in dataset.interactions
        if i.actor.kind is NodeKind.USER
    }
    return dict(Counter(user for user, _, _ in edges))

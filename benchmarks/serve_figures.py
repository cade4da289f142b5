"""The figures of ``graphrec bench serve``, computed from its raw measurements: latency at each
concurrency beside the echo baseline, the overload run, top-K beside exact search, the goals."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

GOALS = (
    "p50 <= 5x echo p50 and p99 <= 20 ms at every level; top-K index <= 1.2x numpy exact; "
    "at 2x saturation only OK / RESOURCE_EXHAUSTED and goodput >= 0.9x saturation"
)


def goals_met(
    measured: dict[str, dict[str, Any]], topk: dict[str, Any], overload: dict[str, Any]
) -> dict[str, bool]:
    """Which of ``GOALS`` this run met."""
    return {
        "p50_within_5x_echo": all(float(m["ratio_p50"]) <= 5.0 for m in measured.values()),
        "p99_within_20ms": all(float(m["p99_ms"]) <= 20.0 for m in measured.values()),
        "topk_within_1.2x_exact": float(topk["ratio"]) <= 1.2,
        "overload_only_ok_or_shed": set(overload["codes"]) <= {"OK", "RESOURCE_EXHAUSTED"},
        "goodput_at_least_0.9x": float(overload["ratio"]) >= 0.9,
    }


def headline(measured: dict[str, dict[str, Any]], overload: dict[str, Any]) -> dict[str, Any]:
    """The issue's three figures: p99 at the top concurrency, goodput at twice saturation ÷
    saturation, and p50 ÷ echo p50 at every level."""
    top = max(measured, key=int)
    return {
        f"p99_ms_at_c{top}": measured[top]["p99_ms"],
        "goodput_ratio_at_2x": overload["ratio"],
        "p50_over_echo": {level: m["ratio_p50"] for level, m in measured.items()},
    }


def topk_figures(index: Any, queries: int, k: int = 20, seed: int = 0) -> dict[str, Any]:
    """``ItemIndex.search`` vs ``exact_topk`` on the same table and queries (median per query).

    Queries are item vectors (item-to-item) and means of three item vectors (session-like)."""
    from serving.topk import exact_topk

    table = index.vectors()
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(table), (queries, 3))
    qs = np.where(
        (np.arange(queries) % 2 == 0)[:, None], table[rows[:, 0]], table[rows].mean(axis=1)
    ).astype(np.float32)
    for q in qs[:10]:  # warm both paths
        index.search(q, k)
        exact_topk(table, q, k)
    idx_t, exact_t, recall = [], [], []
    for q in qs:
        t0 = time.perf_counter()
        found, _ = index.search(q, k)
        t1 = time.perf_counter()
        truth = exact_topk(table, q, k)
        t2 = time.perf_counter()
        idx_t.append(t1 - t0)
        exact_t.append(t2 - t1)
        recall.append(len(set(found.tolist()) & set(truth.tolist())) / max(1, len(truth)))
    index_ms, exact_ms = 1e3 * float(np.median(idx_t)), 1e3 * float(np.median(exact_t))
    return {
        "queries": queries,
        "k": k,
        "rows": len(table),
        "dim": int(table.shape[1]),
        "approximate": len(table) >= index._threshold,
        "index_ms": round(index_ms, 4),
        "exact_ms": round(exact_ms, 4),
        "ratio": round(index_ms / exact_ms, 3),
        "recall@k": round(float(np.mean(recall)), 4),
    }


def level_figures(real: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    p50, p99 = _ms(real["latencies"], 50), _ms(real["latencies"], 99)
    e50, e99 = _ms(bare["latencies"], 50), _ms(bare["latencies"], 99)
    return {
        "p50_ms": p50,
        "p95_ms": _ms(real["latencies"], 95),
        "p99_ms": p99,
        "rps": round(len(real["latencies"]) / real["elapsed"], 1),
        "echo_p50_ms": e50,
        "echo_p99_ms": e99,
        "echo_rps": round(len(bare["latencies"]) / bare["elapsed"], 1),
        "ratio_p50": round(p50 / e50, 2) if e50 else None,
        "ratio_p99": round(p99 / e99, 2) if e99 else None,
        "requests": len(real["latencies"]),
        "errors": {c: n for c, n in real["codes"].items() if c != "OK"},
    }


def overload_figures(
    flood: dict[str, Any], saturation: float, max_inflight: int, echo: dict[str, Any]
) -> dict[str, Any]:
    """The service's answers to the open-loop flood, beside the bare echo server's answers to
    the same schedule: what the transport and the client process manage at that rate on this
    machine, with no service work at all."""
    codes: Counter[str] = flood["codes"]
    goodput = _goodput(flood)
    return {
        "max_inflight": max_inflight,
        "rate": round(flood["rate"], 1),
        "offered_rps": round(flood["sent"] / flood["send_s"], 1) if flood["send_s"] else None,
        "sent": flood["sent"],
        "codes": dict(codes),
        "goodput": round(goodput, 1),
        "saturation": round(saturation, 1),
        "ratio": round(goodput / saturation, 3) if saturation else 0.0,
        "ok_p50_ms": _ms(flood["ok_latencies"], 50),
        "ok_p99_ms": _ms(flood["ok_latencies"], 99),
        "shed_p50_ms": _ms(flood["shed_latencies"], 50),
        "echo_codes": dict(echo["codes"]),
        "echo_goodput": round(_goodput(echo), 1),
        "echo_ok_p50_ms": _ms(echo["ok_latencies"], 50),
    }


def _goodput(flood: dict[str, Any]) -> float:
    """OK answers per second from the first send to the last answer (the drain of the queue
    after the last send counts: the server is busy all along)."""
    window = max(flood["seconds"], flood["last_done"])
    return flood["codes"].get("OK", 0) / window if window else 0.0


def _ms(latencies: np.ndarray, q: float) -> float:
    return round(1e3 * float(np.percentile(latencies, q)), 3) if len(latencies) else 0.0

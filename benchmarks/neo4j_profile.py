"""Where a neighbourhood read's time goes on Neo4j: ``python -m benchmarks.neo4j_profile
--store neo4j://HOST:PORT`` (the method is described in docs/neo4j-latency.md).

For the users and the items of lowest, median and highest degree, the two reads serving makes
(a user's 1-hop fetch at the request fan-out, an item's 2-hop refresh) are run once under
PROFILE in one read transaction, statement by statement as the store runs them, giving

* the plan's database hits and the rows it produced;
* the transaction's page-cache hits and faults (``SHOW TRANSACTIONS`` inside it);
* the server's time (``result_available_after`` + ``result_consumed_after``) and the client's
  (the wall time of each statement minus the server's: Bolt transfer, the driver's decode);

and then, unprofiled, ``GraphStore.neighbourhood`` itself (median of ``--repeat`` calls), which
adds the session, the k-hop walk in Python and the assembly of the result.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from graphstore import INTERACTION_RELATIONSHIPS, NodeKind, NodeRef
from graphstore.neo4j import Neo4jGraphStore, read_hops

SHOW_TRANSACTIONS = "SHOW TRANSACTIONS YIELD currentQuery, pageHits, pageFaults"
USER_DEGREES = "MATCH (n:User) RETURN n.id AS id, COUNT { (n)--() } AS degree ORDER BY degree, id"
ITEM_DEGREES = "MATCH (n:Item) RETURN n.id AS id, COUNT { (n)--() } AS degree ORDER BY degree, id"
REQUEST_FANOUTS = (50,)  # serving's fan-out of a subject's own edges (RecommenderConfig)
REFRESH_FANOUTS = (50, 10)  # item → actors → items (RecommenderConfig.refresh_fanouts)


def degrees(store: Neo4jGraphStore, kind: NodeKind) -> list[tuple[str, int]]:
    """Every user's (or item's) key and degree, lowest degree first."""
    with store._session() as session:
        result = session.run(USER_DEGREES) if kind is NodeKind.USER else session.run(ITEM_DEGREES)
        return [(r["id"], r["degree"]) for r in result]


def db_hits(plan: dict[str, Any]) -> int:
    return int(plan.get("dbHits", 0)) + sum(db_hits(c) for c in plan.get("children", []))


def profile_read(store: Neo4jGraphStore, seed: NodeRef, fanouts: tuple[int, ...]) -> dict[str, Any]:
    """One k-hop read of ``seed`` under PROFILE, statement by statement as the store runs it."""
    totals = {"statements": 0, "db_hits": 0, "server_ms": 0.0, "client_ms": 0.0}

    def add(summary: Any, wall_s: float) -> None:  # a neo4j.ResultSummary
        server_ms = (summary.result_available_after or 0) + (summary.result_consumed_after or 0)
        totals["statements"] += 1
        totals["db_hits"] += db_hits(summary.profile or {})
        totals["server_ms"] += server_ms
        totals["client_ms"] += 1e3 * wall_s - server_ms

    def read(tx: Any) -> tuple[Any, list[Any]]:  # a neo4j.ManagedTransaction
        hood = read_hops(tx, (seed,), fanouts, INTERACTION_RELATIONSHIPS, None, profile=add)
        pages = [r for r in tx.run(SHOW_TRANSACTIONS) if r["currentQuery"] == SHOW_TRANSACTIONS]
        return hood, pages

    with store._session() as session:
        hood, pages = session.execute_read(read)
    return {
        **totals,
        "server_ms": round(float(totals["server_ms"]), 1),
        "client_ms": round(float(totals["client_ms"]), 1),
        "edges": len(hood.rel),
        "page_hits": pages[0]["pageHits"] if pages else None,
        "page_faults": pages[0]["pageFaults"] if pages else None,
    }


def store_ms(store: Neo4jGraphStore, seed: NodeRef, fanouts: tuple[int, ...], repeat: int) -> float:
    """The median wall time of ``GraphStore.neighbourhood`` for ``seed`` (after one warm call)."""
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        store.neighbourhood([seed], fanouts, INTERACTION_RELATIONSHIPS)
        times.append(time.perf_counter() - started)
    return round(1e3 * float(np.median(times[1:])), 2)


def profile(store: Neo4jGraphStore, repeat: int = 5) -> dict[str, Any]:
    """The breakdown for users and items of low, median and high degree."""
    out: dict[str, Any] = {}
    cases = (
        ("user 1-hop", NodeKind.USER, REQUEST_FANOUTS),
        ("item 2-hop refresh", NodeKind.ITEM, REFRESH_FANOUTS),
    )
    for name, kind, fanouts in cases:
        ranked = degrees(store, kind)
        if not ranked:
            continue
        picks = {"low": ranked[0], "median": ranked[len(ranked) // 2], "high": ranked[-1]}
        out[name] = {}
        for which, (key, degree) in picks.items():
            seed = NodeRef(kind, key)
            profile_read(store, seed, fanouts)  # the plans are cached before the profile
            out[name][which] = {
                "key": key,
                "degree": degree,
                **profile_read(store, seed, fanouts),
                "neighbourhood_ms": store_ms(store, seed, fanouts, repeat),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="neo4j://HOST:PORT of a loaded graph")
    parser.add_argument("--repeat", type=int, default=5, help="unprofiled calls per node")
    args = parser.parse_args()
    with Neo4jGraphStore.from_url(args.store) as store:
        figures = profile(store, args.repeat)
    for name, rows in figures.items():
        print(name)
        for which, row in rows.items():
            print(f"  {which:6} " + ", ".join(f"{k}={v}" for k, v in row.items()))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

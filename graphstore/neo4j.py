"""The Neo4j backend: the same contract as the embedded store, on a Neo4j 5 server.

Writes run in ``session.execute_write``, which retries transient errors (a deadlock between
two sinks MERGE-ing the same item is one); the transaction function re-reads the watermark
each time, so a retried batch is still applied once. Rows are sorted so that concurrent
writers take node locks in one order. Every read (neighbourhood, snapshot, watermarks,
stats) runs in ``session.execute_read``: with a ``neo4j://`` URL against a cluster, the
routing driver sends it to a follower or read replica. Opening the store (constraints,
indexes, migration) and ``reset`` are writes, in auto-commit transactions.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import neo4j
from neo4j import GraphDatabase, ManagedTransaction

from graphstore import (
    ALL_RELATIONSHIPS,
    IN_CATEGORY,
    SUBCATEGORY_OF,
    ApplyResult,
    Batch,
    CsrSnapshot,
    DedupWindow,
    GraphStore,
    GraphStoreError,
    Interaction,
    ItemRecord,
    Neighbourhood,
    NodeKind,
    NodeRef,
    StoreStats,
    TopicPartition,
    category_keys,
    edge_aggregates,
)
from graphstore import _cypher as cy
from graphstore._neighbourhood import FetchedNode, walk
from graphstore._snapshot_builder import SnapshotBuilder
from graphstore.base import first_sightings

log = logging.getLogger(__name__)
PASSWORD_ENV = "GRAPHREC_NEO4J_PASSWORD"
PASSWORD_FILE_ENV = "GRAPHREC_NEO4J_PASSWORD_FILE"  # a file holding it (a mounted Secret)
USER_ENV = "GRAPHREC_NEO4J_USER"
FETCH_SIZE = 5_000  # records per Bolt round trip when streaming a snapshot (driver default 1000)
FORGET_LIMIT = 50_000  # expired event ids deleted per batch at most
DELETE_BATCH = 10_000  # relationships (then nodes) deleted per transaction by reset
MIGRATION_BATCH = 10_000  # relationships given their endpoint keys per transaction
INDEX_WAIT_S = 3_600  # at most this long for new indexes to come online when migrating


def default_password_file() -> Path:
    """``GRAPHREC_NEO4J_PASSWORD_FILE``, else where deploy/services.sh keeps the generated
    Neo4j password."""
    if os.environ.get(PASSWORD_FILE_ENV):
        return Path(os.environ[PASSWORD_FILE_ENV])
    cache = Path(os.environ.get("GRAPHREC_CACHE", Path.home() / ".cache" / "graphrec"))
    return cache / "neo4j-password"


class Neo4jGraphStore(GraphStore):
    """GraphStore on a Neo4j 5 server reached over Bolt."""

    def __init__(
        self,
        uri: str,
        auth: tuple[str, str],
        database: str = "neo4j",
        *,
        delete_batch: int = DELETE_BATCH,
    ) -> None:
        self.url = uri
        self._database = database
        self._delete_batch = delete_batch
        self._bound_s: float | None = None  # see ``bounded``
        self._driver = GraphDatabase.driver(
            uri,
            auth=auth,
            # Our statements name property keys a fresh graph does not have yet (seen_at,
            # first_ts, ...): "property key does not exist" is expected there, not news for
            # the user. Notes ("index already exists") are dropped too; warnings such as
            # deprecations and performance hints still reach the neo4j.notifications log.
            notifications_min_severity=neo4j.NotificationMinimumSeverity.WARNING,
            notifications_disabled_classifications=[
                neo4j.NotificationDisabledClassification.UNRECOGNIZED
            ],
        )
        try:
            self._driver.verify_connectivity()
        except (neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.AuthError) as exc:
            self._driver.close()
            raise GraphStoreError(f"cannot reach Neo4j at {uri}: {exc}") from exc
        with self._session() as s:
            for statement in (*cy.CONSTRAINTS, *cy.EDGE_KEY_INDEXES):
                s.run(statement).consume()
            _migrate(s)

    @classmethod
    def from_url(cls, url: str, *, delete_batch: int = DELETE_BATCH) -> Neo4jGraphStore:
        """``neo4j://[user[:password]@]host:port[?database=name]``.

        Missing credentials come from ``GRAPHREC_NEO4J_USER`` / ``GRAPHREC_NEO4J_PASSWORD``,
        else user ``neo4j`` and the password file: ``GRAPHREC_NEO4J_PASSWORD_FILE`` or the one
        ``deploy/services.sh`` writes.
        ``delete_batch`` bounds the relationships (then nodes) one ``reset`` transaction deletes.
        """
        parts = urlsplit(url)
        user = unquote(parts.username or os.environ.get(USER_ENV, "neo4j"))
        password = parts.password and unquote(parts.password)
        if not password:
            password = os.environ.get(PASSWORD_ENV)
        if not password:
            file = default_password_file()
            if not file.is_file() and os.environ.get(PASSWORD_FILE_ENV):
                raise GraphStoreError(f"{PASSWORD_FILE_ENV} names {file}, which is not a file")
            if not file.is_file():
                raise GraphStoreError(
                    f"no Neo4j password: set {PASSWORD_ENV} or {PASSWORD_FILE_ENV}, put it in "
                    f"the URL, or start the server with deploy/services.sh (which writes {file})"
                )
            password = file.read_text().strip()
        database = parse_qs(parts.query).get("database", ["neo4j"])[0]
        host = parts.hostname or "127.0.0.1"
        uri = f"{parts.scheme}://{host}:{parts.port or 7687}"
        return cls(uri, (user, password), database, delete_batch=delete_batch)

    def bounded(self, timeout_s: float) -> Neo4jGraphStore:
        """A read-only view of this store (same driver, not to be closed) whose reads give up
        after about ``timeout_s`` (one attempt, connection and statement timeouts): an
        unreachable or slow server raises ``GraphStoreError``. For request paths."""
        view = copy.copy(self)
        view._bound_s = timeout_s
        return view

    def _session(self, fetch_size: int | None = None) -> neo4j.Session:
        options: dict[str, Any] = {"database": self._database}
        if fetch_size is not None:
            options["fetch_size"] = fetch_size
        if self._bound_s is not None:
            options["max_transaction_retry_time"] = 0.0
            options["connection_acquisition_timeout"] = self._bound_s
            options["default_access_mode"] = neo4j.READ_ACCESS  # a bounded view only reads
        return self._driver.session(**options)

    # ------------------------------------------------------------------ writes
    def _apply(self, batch: Batch) -> ApplyResult:
        with self._session() as s:
            return s.execute_write(_write_batch, batch)

    def _reset(self) -> None:
        # Relationships first, in transactions bounded by relationship count: deleting nodes
        # with DETACH DELETE bounds a transaction by nodes, and a batch of hub nodes with
        # ~20k relationships each ran out of transaction memory (MemoryPoolOutOfMemory).
        with self._session() as s:
            s.run(cy.DELETE_RELATIONSHIPS, batch=self._delete_batch).consume()
            s.run(cy.DELETE_NODES, batch=self._delete_batch).consume()
            s.run(cy.SET_SCHEMA_VERSION, version=cy.SCHEMA_VERSION).consume()

    # ------------------------------------------------------------------ reads
    def _watermarks(self) -> dict[TopicPartition, int]:
        with self._session() as s:
            return s.execute_read(_read_watermarks)

    def _neighbourhood(
        self,
        seeds: tuple[NodeRef, ...],
        fanouts: tuple[int, ...],
        relationships: tuple[str, ...],
        before: float | None,
    ) -> Neighbourhood:
        try:
            if self._bound_s is not None:  # a request: one attempt, one round trip a hop
                with self._session() as s:
                    reads = _AutoCommitReads(s, self._bound_s)
                    return read_hops(reads, seeds, fanouts, relationships, before)
            with self._session() as s:
                return s.execute_read(read_hops, seeds, fanouts, relationships, before)
        except (neo4j.exceptions.DriverError, neo4j.exceptions.Neo4jError) as exc:
            if self._bound_s is None or not _unavailable(exc):
                raise
            raise GraphStoreError(f"Neo4j at {self.url} did not answer: {exc}") from exc

    def _snapshot(self, before: float | None) -> CsrSnapshot:
        builder = SnapshotBuilder(cutoff=before)
        with self._session(fetch_size=FETCH_SIZE) as s:
            s.execute_read(_fill_snapshot, builder, before)
        return builder.build()

    def _stats(self) -> StoreStats:
        with self._session() as s:
            return s.execute_read(_read_stats)

    def _close(self) -> None:
        self._driver.close()


class _AutoCommitReads:
    """Auto-commit statements of a read session (a reader in a cluster) within ``timeout_s``:
    no BEGIN/COMMIT round trip on a request path, where a read does not retry anyway."""

    def __init__(self, session: neo4j.Session, timeout_s: float) -> None:
        self._session, self._timeout_s = session, timeout_s

    def run(self, statement: str, parameters: dict[str, Any]) -> neo4j.Result:
        query = neo4j.Query(statement, timeout=self._timeout_s)
        return self._session.run(query, parameters)


def read_hops(
    tx: ManagedTransaction | _AutoCommitReads,
    seeds: tuple[NodeRef, ...],
    fanouts: Sequence[int],
    relationships: Sequence[str],
    before: float | None,
    profile: Callable[[neo4j.ResultSummary, float], None] | None = None,
) -> Neighbourhood:
    """The k-hop neighbourhood read in ``tx``: one ``cy.HOP_EDGES`` statement per hop and kind
    of node in its frontier. With ``profile``, each runs under PROFILE and ``profile`` gets its
    summary and wall time (benchmarks/neo4j_profile.py)."""

    def fetch(kind: NodeKind, keys: list[str], fanout: int) -> list[FetchedNode]:
        params = hop_params(keys, fanout, relationships, before)
        if profile is None:
            return [(r["key"], r["found"], r["edges"]) for r in tx.run(cy.HOP_EDGES[kind], params)]
        started = time.perf_counter()
        result = tx.run(cy.PROFILED_HOP_EDGES[kind], params)
        fetched: list[FetchedNode] = [(r["key"], r["found"], r["edges"]) for r in result]
        profile(result.consume(), time.perf_counter() - started)
        return fetched

    return walk(seeds, fanouts, fetch)


def hop_params(
    keys: Sequence[str], fanout: int, relationships: Sequence[str], before: float | None
) -> dict[str, Any]:
    """The parameters of ``cy.HOP_EDGES[kind]``: one hop from the nodes of one kind named by
    ``keys``, each keeping its ``fanout`` most recent edges of the ``relationships``."""
    since = {
        f"since_{rel}": -math.inf if rel in relationships else math.inf for rel in ALL_RELATIONSHIPS
    }
    return {"keys": list(keys), "fanout": fanout, "before": before, **since}


def _unavailable(exc: Exception) -> bool:
    """The server is unreachable or too slow (not a mistake in the query)."""
    if isinstance(exc, neo4j.exceptions.DriverError | neo4j.exceptions.TransientError):
        return True
    return "TransactionTimedOut" in str(getattr(exc, "code", ""))


def _migrate(session: neo4j.Session) -> None:
    """Bring a graph written by an older graphrec to ``cy.SCHEMA_VERSION``: relationships get
    their endpoints' keys (what the neighbourhood indexes are on), once, in bounded batches,
    and the read waits for those indexes. A new or reset graph is at the version already."""
    record = session.run(cy.READ_SCHEMA_VERSION).single()
    version = record["version"] if record is not None else None
    if version is not None and version >= cy.SCHEMA_VERSION:
        return
    log.info("graph schema %s -> %s: adding endpoint keys", version, cy.SCHEMA_VERSION)
    for statement in cy.BACKFILL_EDGE_KEYS:
        session.run(statement, batch=MIGRATION_BATCH).consume()
    session.run(cy.AWAIT_INDEXES, seconds=INDEX_WAIT_S).consume()
    session.run(cy.SET_SCHEMA_VERSION, version=cy.SCHEMA_VERSION).consume()


# ---------------------------------------------------------------- transaction functions


def _read_watermarks(tx: ManagedTransaction) -> dict[TopicPartition, int]:
    return {(r["topic"], r["partition"]): r["offset"] for r in tx.run(cy.READ_WATERMARKS)}


def _read_stats(tx: ManagedTransaction) -> StoreStats:
    nodes = {r["label"]: r["n"] for r in tx.run(cy.COUNT_NODES) if r["n"]}
    edges = list(tx.run(cy.COUNT_EDGES, rels=list(ALL_RELATIONSHIPS)))
    marks = _read_watermarks(tx)
    structural = (IN_CATEGORY, SUBCATEGORY_OF)
    return StoreStats(
        nodes=nodes,
        edges={r["rel"]: r["n"] for r in edges},
        interactions=sum(r["total"] for r in edges if r["rel"] not in structural),
        watermarks={f"{t}:{p}": o for (t, p), o in sorted(marks.items())},
    )


def _write_batch(tx: ManagedTransaction, batch: Batch) -> ApplyResult:
    """Idempotent: filters by the watermark read in this same transaction."""
    unseen, items = batch.unseen(_read_watermarks(tx))
    interactions = unseen
    if batch.dedup is not None:
        now = time.time() if batch.ingested_at is None else batch.ingested_at
        interactions = _first_sightings(tx, unseen, batch.dedup, now)
    if items:
        _write_items(tx, items)
    for actor, rows in _aggregate(interactions).items():
        tx.run(cy.MERGE_INTERACTIONS[actor], rows=rows).consume()
    marks = [
        {"topic": t, "partition": p, "offset": o}
        for (t, p), o in sorted(batch.new_watermarks().items())
    ]
    if marks:
        tx.run(cy.RAISE_WATERMARKS, marks=marks).consume()
    return ApplyResult(
        applied=len(interactions) + len(items),
        skipped_replayed=len(batch) - len(unseen) - len(items),
        skipped_duplicate=len(unseen) - len(interactions),
    )


def _first_sightings(
    tx: ManagedTransaction, interactions: Sequence[Interaction], window: DedupWindow, now: float
) -> list[Interaction]:
    """Drop events whose id is in the window, remember the new ids, trim the window."""
    cutoff = now - window.max_age_s
    tx.run(cy.FORGET_EVENTS_BEFORE, cutoff=cutoff, limit=FORGET_LIMIT).consume()
    ids = sorted({i.event_id for i in interactions if i.event_id})
    seen = {r["id"] for r in tx.run(cy.SELECT_SEEN_EVENTS, ids=ids, cutoff=cutoff)}
    fresh = first_sightings(interactions, seen)
    new_ids = [i.event_id for i in fresh if i.event_id]
    if new_ids:
        tx.run(cy.REMEMBER_EVENTS, ids=new_ids, now=now).consume()
        tx.run(cy.FORGET_EVENTS_BEYOND, max_ids=window.max_ids).consume()
    return fresh


def _aggregate(interactions: Sequence[Interaction]) -> dict[NodeKind, list[list[Any]]]:
    """One row per (actor, relationship, item), sorted for a stable lock order.

    A row is ``[actor, item, rel, count, first_ts, last_ts]`` (see ``cy.MERGE_INTERACTIONS``).
    """
    edges = edge_aggregates(interactions)
    out: dict[NodeKind, list[list[Any]]] = defaultdict(list)
    for actor, rel, item in sorted(edges, key=lambda k: (k[0].kind, k[0].key, k[2], k[1])):
        agg = edges[(actor, rel, item)]
        out[actor.kind].append([actor.key, item, rel, agg.count, agg.first_ts, agg.last_ts])
    return out


def _write_items(tx: ManagedTransaction, items: Sequence[ItemRecord]) -> None:
    latest: dict[str, ItemRecord] = {}
    for item in items:
        prev = latest.get(item.item_id)
        if prev is None or item.ts >= prev.ts:
            latest[item.item_id] = item
    categories = sorted({k for it in latest.values() for k in category_keys(it.category_path)})
    links = sorted(
        {
            (child, parent, it.ts)
            for it in latest.values()
            for parent, child in pairwise(category_keys(it.category_path))
        }
    )
    tx.run(cy.MERGE_CATEGORIES, categories=categories).consume()
    tx.run(
        cy.MERGE_SUBCATEGORIES, links=[{"child": c, "parent": p, "ts": t} for c, p, t in links]
    ).consume()
    rows = [
        {
            "id": it.item_id,
            "title": it.title,
            "features": json.dumps(dict(it.numeric_features), sort_keys=True),
            "removed": it.removed,
            "ts": it.ts,
            "leaf": category_keys(it.category_path)[-1] if it.category_path else None,
        }
        for it in sorted(latest.values(), key=lambda i: i.item_id)
    ]
    tx.run(cy.UPSERT_ITEMS, items=rows).consume()


def _fill_snapshot(tx: ManagedTransaction, builder: SnapshotBuilder, before: float | None) -> None:
    """Stream every node list and relation into ``builder`` in one read transaction."""
    for kind, query in cy.NODE_IDS.items():
        builder.add_nodes(kind, (r["id"] for r in tx.run(query)))
    for rk, query in cy.EDGES.items():
        columns: list[list[Any]] = [[], [], [], [], []]
        for r in tx.run(query, before=before):
            for column, value in zip(columns, r.values(), strict=True):
                column.append(value)
        if columns[0]:
            builder.add_edges(rk, *columns)
    for r in tx.run(cy.ITEMS):
        features = json.loads(r["features"] or "{}")
        builder.add_item(r["id"], r["title"] or "", features, bool(r["removed"]))
    builder.set_watermarks(_read_watermarks(tx))

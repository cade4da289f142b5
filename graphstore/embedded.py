"""The embedded backend: one SQLite file in WAL mode, no server.

Why SQLite: it gives atomic, durable transactions (the batch and its watermark commit
together, a SIGKILL never leaves half a batch), ``INSERT ... ON CONFLICT DO UPDATE`` is
exactly the commutative edge aggregate, window functions cap fan-out inside the database,
and it ships with Python. Writes are pre-aggregated per batch so one ``executemany`` row
stands for many events.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

from graphstore import (
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
from graphstore import _sqlite_schema as sql
from graphstore._neighbourhood import assemble
from graphstore._snapshot_builder import SnapshotBuilder
from graphstore.base import first_sightings

DB_FILENAME = "graph.sqlite"
# An edge as stored in SQLite, endpoints as node row ids: (src, rel, dst, count, first_ts, last_ts).
SqliteEdgeRow = tuple[int, str, int, int, float, float]


class EmbeddedGraphStore(GraphStore):
    """GraphStore on a local SQLite database: a durable file under ``path`` (``sqlite://PATH``),
    or with ``path=None`` a database in process memory, gone when closed (``memory://``)."""

    def __init__(self, path: Path | None = None, *, durable: bool = True) -> None:
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        target = ":memory:" if path is None else str(path / DB_FILENAME)
        self.url = "memory://" if path is None else f"sqlite://{path}"
        self._target = target
        self._lock = threading.RLock()
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(sql.SCHEMA)
        self._ids: dict[tuple[NodeKind, str], int] = {}
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []

    # ------------------------------------------------------------------ writes
    def _apply(self, batch: Batch) -> ApplyResult:
        with self._lock, self._transaction():
            return self._apply_in_tx(batch)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction, committed on success and rolled back on any error.

        SQLite may already have rolled back by itself (on SQLITE_FULL, also at COMMIT), so
        the node-id cache is cleared first: ids handed out in a rolled-back transaction are
        void, and a later batch using one would attach its edges to whatever node gets it.
        """
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            self._ids.clear()
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                where = self._target
                raise GraphStoreError(
                    f"disk full: no space left for the graph at {where}; free disk space "
                    "there (nothing of this batch was written)"
                ) from exc
            raise

    def _apply_in_tx(self, batch: Batch) -> ApplyResult:
        unseen, items = batch.unseen(self._watermarks())
        interactions = unseen
        if batch.dedup is not None:
            now = time.time() if batch.ingested_at is None else batch.ingested_at
            interactions = self._first_sightings(unseen, batch.dedup, now)
        self._write_interactions(interactions)
        if items:
            self._write_items(items)
        marks = batch.new_watermarks()
        self._db.executemany(sql.UPSERT_WATERMARK, [(t, p, o) for (t, p), o in marks.items()])
        return ApplyResult(
            applied=len(interactions) + len(items),
            skipped_replayed=len(batch) - len(unseen) - len(items),
            skipped_duplicate=len(unseen) - len(interactions),
        )

    def _first_sightings(
        self, interactions: Sequence[Interaction], window: DedupWindow, now: float
    ) -> list[Interaction]:
        """Drop events whose id is in the window, remember the new ids, trim the window."""
        cutoff = now - window.max_age_s
        self._db.execute(sql.FORGET_EVENTS_BEFORE, {"cutoff": cutoff})
        ids = json.dumps(sorted({i.event_id for i in interactions if i.event_id}))
        seen = {
            r[0] for r in self._db.execute(sql.SELECT_SEEN_EVENTS, {"ids": ids, "cutoff": cutoff})
        }
        fresh = first_sightings(interactions, seen)
        self._db.executemany(sql.REMEMBER_EVENT, [(i.event_id, now) for i in fresh if i.event_id])
        self._db.execute(sql.FORGET_EVENTS_BEYOND, (window.max_ids,))
        return fresh

    def _write_interactions(self, interactions: Sequence[Interaction]) -> None:
        edges = edge_aggregates(interactions)
        actors = self._node_ids([actor for actor, _, _ in edges])
        items = self._node_ids([NodeRef(NodeKind.ITEM, item) for _, _, item in edges])
        rows = [
            (src, rel, dst, agg.count, agg.first_ts, agg.last_ts)
            for ((_, rel, _), agg), src, dst in zip(edges.items(), actors, items, strict=True)
        ]
        self._db.executemany(sql.UPSERT_EDGE, rows)

    def _write_items(self, items: Sequence[ItemRecord]) -> None:
        latest: dict[str, ItemRecord] = {}
        for item in items:  # last writer (by event time) wins, within the batch too
            prev = latest.get(item.item_id)
            if prev is None or item.ts >= prev.ts:
                latest[item.item_id] = item
        nodes = self._node_ids([NodeRef(NodeKind.ITEM, k) for k in latest])
        stored = dict(self._db.execute(sql.SELECT_ITEMS_TS, (json.dumps(nodes),)).fetchall())
        fresh = [
            (node, item)
            for node, item in zip(nodes, latest.values(), strict=True)
            if stored.get(node, float("-inf")) <= item.ts
        ]
        paths = {p for _, item in fresh for p in category_keys(item.category_path)}
        cat_ids = dict(
            zip(paths, self._node_ids([NodeRef(NodeKind.CATEGORY, p) for p in paths]), strict=True)
        )
        item_rows, category_rows, parent_rows = [], [], []
        for node, item in fresh:
            features = json.dumps(dict(item.numeric_features), sort_keys=True)
            item_rows.append((node, item.title, features, int(item.removed), item.ts))
            cats = [cat_ids[p] for p in category_keys(item.category_path)]
            if cats:
                category_rows.append((node, IN_CATEGORY, cats[-1], item.ts, item.ts))
            parent_rows += [(c, SUBCATEGORY_OF, p, item.ts, item.ts) for p, c in pairwise(cats)]
        self._db.executemany(sql.UPSERT_ITEM, item_rows)
        self._db.executemany(sql.DELETE_ITEM_CATEGORY, [(node,) for node, _ in fresh])
        self._db.executemany(sql.SET_EDGE, category_rows)
        self._db.executemany(sql.KEEP_EARLIEST_EDGE, parent_rows)

    def _node_ids(self, refs: Sequence[NodeRef]) -> list[int]:
        """Database ids for nodes, creating the ones not seen before."""
        missing = {(r.kind, r.key) for r in refs if (r.kind, r.key) not in self._ids}
        if missing:
            self._db.executemany(sql.INSERT_NODE, [(k.value, key) for k, key in missing])
            by_kind: dict[NodeKind, list[str]] = defaultdict(list)
            for kind, key in missing:
                by_kind[kind].append(key)
            for kind, keys in by_kind.items():
                rows = self._db.execute(
                    sql.SELECT_NODE_IDS, {"kind": kind.value, "keys": json.dumps(keys)}
                )
                self._ids.update(((kind, key), node) for key, node in rows)
        return [self._ids[(r.kind, r.key)] for r in refs]

    def _reset(self) -> None:
        with self._lock, self._transaction():
            for statement in sql.DELETE_ALL:
                self._db.execute(statement)
            self._ids.clear()  # the rows they named are gone

    # ------------------------------------------------------------------ reads
    def _watermarks(self) -> dict[TopicPartition, int]:
        with self._lock:
            rows = self._db.execute(sql.SELECT_WATERMARKS).fetchall()
        return {(t, p): o for t, p, o in rows}

    def _neighbourhood(
        self,
        seeds: tuple[NodeRef, ...],
        fanouts: tuple[int, ...],
        relationships: tuple[str, ...],
        before: float | None,
    ) -> Neighbourhood:
        with self._reading() as db:
            seed_ids = self._existing_ids(db, seeds)
            visited = {i for i in seed_ids if i is not None}
            frontier = sorted(visited)
            rows: list[tuple[int, str, int, int, float, float, int]] = []
            for hop, fanout in enumerate(fanouts, start=1):
                if not frontier:
                    break
                params = {
                    "frontier": json.dumps(frontier),
                    "rels": json.dumps(relationships),
                    "before": before,
                    "fanout": fanout,
                }
                got = db.execute(sql.HOP_EDGES, params).fetchall()
                rows += [(*row, hop) for row in got]
                reached = {r[0] for r in got} | {r[2] for r in got}
                frontier = sorted(reached - visited)
                visited |= reached
            refs = self._refs_by_id(db, visited)
        edges = [(refs[s], r, refs[d], c, f, t, h) for s, r, d, c, f, t, h in rows]
        return assemble(seeds, [i is not None for i in seed_ids], edges)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent read: on a file, this thread's own read-only connection in one read
        transaction (WAL lets readers run beside each other and beside the writer); in memory
        there is only the one connection, so take the lock."""
        if self._target == ":memory:":
            with self._lock:
                yield self._db
            return
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._target, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA query_only=ON")
            self._local.db = db
            with self._lock:
                self._readers.append(db)
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def _existing_ids(self, db: sqlite3.Connection, refs: Sequence[NodeRef]) -> list[int | None]:
        out: list[int | None] = []
        for ref in refs:
            node = self._ids.get((ref.kind, ref.key))
            if node is None:
                params = {"kind": ref.kind.value, "keys": json.dumps([ref.key])}
                row = db.execute(sql.SELECT_NODE_IDS, params).fetchone()
                node = None if row is None else int(row[1])
            out.append(node)
        return out

    @staticmethod
    def _refs_by_id(db: sqlite3.Connection, ids: Iterable[int]) -> dict[int, NodeRef]:
        rows = db.execute(sql.SELECT_NODES_BY_ID, (json.dumps(sorted(ids)),))
        return {i: NodeRef(NodeKind(k), key) for i, k, key in rows}

    def _snapshot(self, before: float | None) -> CsrSnapshot:
        builder = SnapshotBuilder(cutoff=before)
        with self._lock:
            self._db.execute("BEGIN")  # one consistent read of nodes, edges and watermark
            try:
                refs = self._refs_by_all()
                for kind in NodeKind:
                    builder.add_nodes(kind, (r.key for r in refs.values() if r.kind == kind))
                query = sql.SELECT_EDGES if before is None else sql.SELECT_EDGES_BEFORE
                rows = self._db.execute(query, () if before is None else (before,)).fetchall()
                items = self._db.execute(sql.SELECT_ITEMS).fetchall()
                builder.set_watermarks(self._watermarks())
            finally:
                self._db.execute("COMMIT")
        grouped: dict[tuple[NodeKind, str, NodeKind], list[SqliteEdgeRow]] = defaultdict(list)
        for row in rows:
            grouped[(refs[row[0]].kind, row[1], refs[row[2]].kind)].append(row)
        for rk, group in grouped.items():
            s, _, d, c, f, t = zip(*group, strict=True)
            builder.add_edges(rk, [refs[i].key for i in s], [refs[i].key for i in d], c, f, t)
        for node, title, features, removed in items:
            builder.add_item(refs[node].key, title, json.loads(features), bool(removed))
        return builder.build()

    def _refs_by_all(self) -> dict[int, NodeRef]:
        rows = self._db.execute(sql.SELECT_ALL_NODES)
        return {i: NodeRef(NodeKind(k), key) for i, k, key in rows}

    def _stats(self) -> StoreStats:
        with self._lock:
            nodes = dict(self._db.execute(sql.COUNT_NODES).fetchall())
            edge_rows = self._db.execute(sql.COUNT_EDGES).fetchall()
            marks = self._watermarks()
        interactions = sum(total for rel, _, total in edge_rows if rel not in _STRUCTURAL)
        return StoreStats(
            nodes={NodeKind(k).value: n for k, n in nodes.items()},
            edges={rel: n for rel, n, _ in edge_rows},
            interactions=interactions,
            watermarks={f"{t}:{p}": o for (t, p), o in sorted(marks.items())},
        )

    def _close(self) -> None:
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._db.close()


_STRUCTURAL = (IN_CATEGORY, SUBCATEGORY_OF)

"""The serving core: recommend, score and explain over live neighbourhoods (no gRPC here).

Per request: one graph round trip for the subject's k-hop neighbourhood (fan-out capped), a
CPU forward pass of the GNN over it, then top-K over the item table. Subjects with nothing to
go on get popular items, and the result says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath

import numpy as np
import numpy.typing as npt

from gnn.data import Interactions
from gnn.inference import SageInference
from graphstore import (
    IN_CATEGORY,
    INTERACTION_RELATIONSHIPS,
    Behaviour,
    GraphStore,
    InvalidInput,
    ItemRecord,
    NodeKind,
    NodeRef,
)
from graphstore.base import MAX_SEEDS
from serving.explain import browser_url, cypher_for, path_for_edge
from serving.subgraph import LocalGraph, local_graph
from serving.table import ItemTable
from serving.types import (
    BadRequest,
    Explanation,
    NotFound,
    NotReady,
    Query,
    Recommendation,
    ScoredItem,
    Scores,
    SessionEvent,
    Subject,
    SubjectKind,
)

log = logging.getLogger(__name__)
Vector = npt.NDArray[np.float32]
# k and a category key ("" for all) → (item id, score) best first
Popular = Callable[[int, str], list[tuple[str, float]]]


@dataclass(frozen=True)
class Settings:
    fanouts: tuple[int, ...] = (50, 10)  # subject → its items (the history the model reads and
    # that counts as seen) → their other actors (Explain only)
    refresh_fanouts: tuple[int, int] = (50, 10)  # item → actors → items, when it changes
    default_k: int = 20
    max_k: int = 1_000
    exact_threshold: int = 20_000  # items; above it top-K uses the usearch index
    browser_url: str = "http://127.0.0.1:7474/browser/"  # Neo4j Browser, for Explain links
    browser_dbms: str = "neo4j://neo4j@127.0.0.1:7687"  # what its connect form is filled with


@dataclass(frozen=True)
class Engine:
    """One model version ready to serve: the model and its item table."""

    version: str
    inference: SageInference
    table: ItemTable

    @classmethod
    def load(cls, model_dir: FsPath, store: GraphStore, settings: Settings) -> Engine:
        """Load a version and embed every item of the store's current graph."""
        snapshot = store.snapshot()
        newest = [float(r.last_ts.max()) for r in snapshot.relations.values() if r.num_edges]
        inference = SageInference.from_dir(model_dir, max(newest, default=time.time()))
        table = ItemTable.build(inference, snapshot, settings.exact_threshold)
        log.info("model %s: %d items embedded", model_dir.name, table.size)
        return cls(model_dir.name, inference, table)


class Recommender:
    """Recommend / ScoreItems / Explain for users, sessions and items; thread-safe."""

    def __init__(
        self,
        store: GraphStore,
        engine: Callable[[], Engine | None],
        settings: Settings | None = None,
        popular: Popular | None = None,
        on_fresh: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or Settings()
        self._engine = engine
        self._popular = popular
        self._on_fresh = on_fresh
        self._newest_seen: OrderedDict[NodeRef, float] = OrderedDict()
        self._fresh_lock = threading.Lock()
        self._refresh_lock = threading.RLock()

    def engine(self) -> Engine:
        engine = self._engine()
        if engine is None:
            raise NotReady("no model version is loaded yet; train one with `graphrec train`")
        return engine

    # ------------------------------------------------------------------ requests
    def recommend(self, query: Query) -> Recommendation:
        """Top-k items for the query's subject (or popular ones, saying why)."""
        answer = self.recommend_many([query])[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def recommend_many(self, queries: Sequence[Query]) -> list[Recommendation | Exception]:
        """``recommend`` for several queries at once, answers in order: one graph round trip
        for all their subjects, one output-layer pass, one batched top-K search. A caller
        mistake (bad k, unknown item) fails only its own query: its answer is the exception.
        """
        engine = self.engine()
        table = engine.table
        answers: list[Recommendation | Exception] = [NotReady("not answered")] * len(queries)
        going: list[int] = []  # queries with a subject to look up
        subjects: list[Subject] = []
        for i, query in enumerate(queries):
            try:
                self._check_k(query)
                subjects.append(self._as_actor(engine, query.subject))
                going.append(i)
            except (BadRequest, NotFound) as exc:
                answers[i] = exc
        graph, failed = self._local(subjects)
        vectors = self._actor_vectors(engine, graph)
        searched: list[tuple[int, int]] = []  # (query, subject slot)
        skips: list[np.ndarray] = []
        alloweds: list[np.ndarray | None] = []
        for slot, i in enumerate(going):
            query = queries[i]
            if slot in failed:
                answers[i] = failed[slot]
            elif not len(graph.edges_of(slot)):
                reason = self._why_fallback(query.subject)
                exclude = self._excluded(table, query, ())
                answers[i] = self._fallback(engine, query, self._k(query), exclude, reason)
            else:
                seen = () if query.include_seen else graph.items_of(slot)
                searched.append((i, slot))
                skips.append(np.array(sorted(self._excluded(table, query, seen)), np.int64))
                alloweds.append(self._allowed(table, query))
        if searched:
            found = table.embeddings.search_many(
                vectors[[slot for _, slot in searched]],
                [self._k(queries[i]) for i, _ in searched],
                skips,
                alloweds,
            )
            for (i, _), (rows, scores) in zip(searched, found, strict=True):
                answers[i] = Recommendation(self._scored(table, rows, scores), engine.version)
        return answers

    @staticmethod
    def _excluded(table: ItemTable, query: Query, seen: Sequence[str]) -> set[int]:
        """Rows the query must not get: its exclusions, removed items, and ``seen``."""
        keys = sorted({*query.exclude, *seen})
        out = set(table.rows_of(keys).tolist()) - {-1}
        out.update(table.removed_rows().tolist())
        return out

    @staticmethod
    def _allowed(table: ItemTable, query: Query) -> np.ndarray | None:
        if not query.category:
            return None
        allowed = table.in_category(query.category)
        return allowed[allowed < table.size]

    def _k(self, query: Query) -> int:
        return query.k or self.settings.default_k

    def _check_k(self, query: Query) -> None:
        k = self._k(query)
        if not 0 < k <= self.settings.max_k:
            raise BadRequest(f"k must be between 1 and {self.settings.max_k}, got {k}")

    def score_items(self, subject: Subject, item_ids: Sequence[str]) -> Scores:
        engine = self.engine()
        table = engine.table
        vector = self._actor_vector(engine, self._local_one(self._as_actor(engine, subject)))
        rows = [self._known_row(engine, i) for i in item_ids]
        unknown = [i for i, r in zip(item_ids, rows, strict=True) if r < 0]
        found = np.array([r for r in rows if r >= 0], np.int64)
        scores = table.embeddings.vectors()[found] @ vector if len(found) else np.zeros(0)
        return Scores(self._scored(table, found, scores), engine.version, unknown)

    def explain(self, subject: Subject, item_id: str, max_paths: int = 5) -> Explanation:
        """The paths through which the subject's neighbourhood contributes most to the item's
        score, strongest first (paths that reach the item before those that do not)."""
        if subject.kind is SubjectKind.ITEM:
            raise BadRequest("Explain takes a user or a session subject, not an item")
        engine = self.engine()
        table = engine.table
        row = self._item_row(engine, item_id)
        graph = self._local_one(subject, hops=2)
        mine = graph.subject_edges[graph.in_graph[graph.subject_edges]]
        if not len(mine):
            raise NotFound(f"{subject.kind} {subject.key!r} has no interactions in the graph")
        z = self._item_vectors(engine, graph.items)
        target = table.embeddings.vectors()[row].copy()
        contributions, _ = engine.inference.actor_contributions(0, graph.edges, z, target)
        # one path per item the subject touched, through its strongest edge
        per_item: dict[int, list[int]] = {}
        for edge in mine.tolist():
            per_item.setdefault(int(graph.edges.item[edge]), []).append(edge)
        ranked = sorted(
            (
                (sum(contributions[es]), max(es, key=lambda x: contributions[x]))
                for es in per_item.values()
            ),
            reverse=True,
        )
        target_actors = self._actors_of(item_id)
        paths = []
        for total, edge in ranked:
            via = table.index.get(graph.items[int(graph.edges.item[edge])], -1)
            leaves = (table.leaves[via] if via >= 0 else None, table.leaves[row])
            paths.append(path_for_edge(graph, edge, item_id, leaves, target_actors, float(total)))
        paths.sort(key=lambda p: (p.nodes[-1].key == item_id, p.contribution), reverse=True)
        paths = paths[:max_paths]
        cypher, params = cypher_for(paths)
        return Explanation(
            paths,
            cypher,
            params,
            browser_url(self.settings.browser_url, self.settings.browser_dbms, cypher, params),
            engine.version,
        )

    def _actors_of(self, item_id: str) -> dict[NodeRef, tuple[str, int]]:
        """Actors who touched the item (most recent first, capped): relationship, count."""
        hood = self.store.neighbourhood(
            [NodeRef(NodeKind.ITEM, item_id)],
            [self.settings.refresh_fanouts[0]],
            INTERACTION_RELATIONSHIPS,
        )
        out: dict[NodeRef, tuple[str, int]] = {}
        for s, rel, count in zip(hood.src.tolist(), hood.rel, hood.count.tolist(), strict=True):
            actor = hood.nodes[s]
            if actor not in out or count > out[actor][1]:
                out[actor] = (rel, int(count))
        return out

    # ------------------------------------------------------------------ freshness of items
    def refresh(self, item_ids: Sequence[str], records: Sequence[ItemRecord] = ()) -> int:
        """Re-embed items whose neighbourhood changed and add or update catalogue records,
        from their live 2-hop neighbourhoods (no full recompute). Returns items refreshed."""
        engine = self._engine()
        if engine is None:
            return 0
        with self._refresh_lock:  # rows are appended and embedded in order
            return self._refresh(engine, item_ids, records)

    def _refresh(
        self, engine: Engine, item_ids: Sequence[str], records: Sequence[ItemRecord]
    ) -> int:
        table = engine.table
        if records:
            table.upsert_items(records)
        keys = sorted({*item_ids, *(r.item_id for r in records)} & set(table.index))
        for start in range(0, len(keys), MAX_SEEDS):
            chunk = keys[start : start + MAX_SEEDS]
            seeds = [NodeRef(NodeKind.ITEM, k) for k in chunk]
            hood = self.store.neighbourhood(
                seeds, self.settings.refresh_fanouts, INTERACTION_RELATIONSHIPS
            )
            graph = local_graph(hood)
            order = {k: i for i, k in enumerate(graph.items)}
            local = np.array([order.setdefault(k, len(order)) for k in chunk], np.int64)
            names = list(order)
            content = table.content_of(table.rows_of(names))
            _, z = engine.inference.forward(len(graph.actors), graph.edges, content)
            table.set_embeddings(table.rows_of(chunk), z[local])
        return len(keys)

    # ------------------------------------------------------------------ helpers
    def _as_actor(self, engine: Engine, subject: Subject) -> Subject:
        """Items are asked about as a session that just clicked them: "people who engage with
        this item" in the model's own terms, so similar items and cold items need nothing else.
        """
        if subject.kind is not SubjectKind.ITEM:
            return subject
        self._item_row(engine, subject.key)  # NOT_FOUND for items outside the catalogue
        event = SessionEvent(subject.key, Behaviour.CLICK, engine.inference.reference_ts)
        return Subject(SubjectKind.SESSION, "", (event,))  # no key: not a node of the graph

    def _local(
        self, subjects: Sequence[Subject], hops: int = 1
    ) -> tuple[LocalGraph, dict[int, Exception]]:
        """The subjects' live edges (one graph round trip for all of them) plus their request
        events, subject ``i`` as actor ``i``; with ``hops`` 2 also the other actors of the
        subjects' items (for explanations). Subjects whose lookup the store refused are
        returned with the reason, their slots left without edges.

        One hop is all the model needs: the item table holds every item's final embedding,
        kept fresh from live 2-hop neighbourhoods, and the output layer aggregates those over
        the subject's edges. A subject without a key (an item asked about as a session) has
        only its request events.
        """
        seeds: list[NodeRef] = []
        for subject in subjects:
            if subject.key:
                seeds.append(subject.node)
            if hops > 1:
                seeds += [NodeRef(NodeKind.ITEM, e.item_id) for e in subject.events]
        hood = None
        if seeds:
            fanouts = self.settings.fanouts[:hops]
            if not any(s.key for s in subjects):
                fanouts = fanouts[1:] or fanouts
            try:
                hood = self.store.neighbourhood(
                    list(dict.fromkeys(seeds))[:MAX_SEEDS], fanouts, INTERACTION_RELATIONSHIPS
                )
            except InvalidInput as exc:
                if len(subjects) == 1:
                    raise BadRequest(str(exc)) from None
                return self._local_apart(subjects, hops)  # find whose key it was
        graph = local_graph(hood, [s.node for s in subjects], [s.events for s in subjects])
        for slot, subject in enumerate(subjects):
            if subject.key:
                self._observe_freshness(subject.node, graph.newest_ts_of(slot))
        return graph, {}

    def _local_apart(
        self, subjects: Sequence[Subject], hops: int
    ) -> tuple[LocalGraph, dict[int, Exception]]:
        """``_local`` one subject at a time, the refused ones without their edges."""
        failed: dict[int, Exception] = {}
        for slot, subject in enumerate(subjects):
            try:
                self._local([subject], hops)
            except BadRequest as exc:
                failed[slot] = exc
        fine = [s if i not in failed else Subject(s.kind, "") for i, s in enumerate(subjects)]
        graph, _ = self._local(fine, hops)
        return graph, failed

    def _local_one(self, subject: Subject, hops: int = 1) -> LocalGraph:
        return self._local([subject], hops)[0]

    def _item_vectors(self, engine: Engine, keys: Sequence[str]) -> npt.NDArray[np.float32]:
        """``[n, d]`` final embeddings of items from the table; an item the table lacks yet
        (a catalogue change still on its way) is embedded from what the graph holds of it."""
        table = engine.table
        rows = table.rows_of(keys)
        missing = (rows < 0) | (rows >= table.size)
        out = np.empty((len(keys), engine.inference.dim), np.float32)
        out[~missing] = table.embeddings.vectors()[rows[~missing]]
        if missing.any():
            no_edges = Interactions(*(np.zeros(0, np.int64),) * 4, np.zeros(0))
            _, z = engine.inference.forward(0, no_edges, table.content_of(rows[missing]))
            out[missing] = z
        return out

    def _actor_vectors(self, engine: Engine, graph: LocalGraph) -> npt.NDArray[np.float32]:
        """``[subjects, d]``: the output layer over each subject's edges."""
        z = self._item_vectors(engine, graph.items)
        h = engine.inference.actors_from_items(len(graph.actors), graph.edges, z)
        return h[: graph.num_subjects]

    def _actor_vector(self, engine: Engine, graph: LocalGraph) -> Vector:
        return self._actor_vectors(engine, graph)[0]

    def _item_row(self, engine: Engine, item_id: str) -> int:
        row = self._known_row(engine, item_id)
        if row < 0:
            raise NotFound(f"item {item_id!r} is not in the catalogue")
        return row

    def _known_row(self, engine: Engine, item_id: str) -> int:
        """The item's row, adding an item the graph holds but the table has not seen yet."""
        row = engine.table.index.get(item_id, -1)
        if row < 0 or row >= engine.table.size:
            record = self._item_from_graph(item_id)
            if record is None:
                return -1
            self.refresh([], [record])
            row = engine.table.index.get(item_id, -1)
        return row

    def _item_from_graph(self, item_id: str) -> ItemRecord | None:
        """What the graph holds about an item the table lacks (its category), or None."""
        seed = NodeRef(NodeKind.ITEM, item_id)
        hood = self.store.neighbourhood([seed], [1], (IN_CATEGORY,))
        if not hood.found[0]:
            return None
        leaf = next((n.key for n in hood.nodes if n.kind is NodeKind.CATEGORY), "")
        return ItemRecord(item_id, tuple(leaf.split("/")) if leaf else ())

    def _fallback(
        self, engine: Engine, query: Query, k: int, exclude: set[int], reason: str
    ) -> Recommendation:
        table = engine.table
        ranked: list[tuple[str, float]] = []
        if self._popular is not None:
            try:
                ranked = self._popular(k + len(exclude), query.category)
            except Exception as exc:  # the trending service is an optimisation, not a need
                log.warning("trending counts unavailable (%s); using store counts", exc)
        source = "trending items"
        if not ranked:
            source = "popular items (store counts)"
            rows = table.in_category(query.category) if query.category else np.arange(table.size)
            rows = rows[rows < len(table.popularity)]
            top = rows[np.argsort(-table.popularity[rows], kind="stable")][: k + len(exclude)]
            ranked = [(table.keys[r], float(table.popularity[r])) for r in top.tolist()]
        items = []
        for item_id, score in ranked:
            row = table.index.get(item_id, -1)
            if row in exclude or item_id in query.exclude or row < 0:
                continue
            items.append(ScoredItem(item_id, score, table.category_path(row), table.titles[row]))
            if len(items) == k:
                break
        return Recommendation(items, engine.version, True, f"{reason}; returning {source}")

    @staticmethod
    def _why_fallback(subject: Subject) -> str:
        if subject.kind is SubjectKind.USER:
            return f"user {subject.key!r} has no interactions in the graph"
        return f"session {subject.key!r} has no events yet"

    @staticmethod
    def _scored(
        table: ItemTable, rows: npt.NDArray[np.int64], scores: npt.ArrayLike
    ) -> list[ScoredItem]:
        values = np.asarray(scores, np.float64).tolist()
        return [
            ScoredItem(table.keys[r], s, table.category_path(r), table.titles[r])
            for r, s in zip(rows.tolist(), values, strict=True)
        ]

    def _observe_freshness(self, subject: NodeRef, newest: float | None) -> None:
        """Event time → first recommendation that reflects it, per subject."""
        if newest is None or self._on_fresh is None:
            return
        with self._fresh_lock:
            before = self._newest_seen.get(subject)
            self._newest_seen[subject] = newest
            self._newest_seen.move_to_end(subject)
            if len(self._newest_seen) > 100_000:
                self._newest_seen.popitem(last=False)
        if before is None or newest > before:
            self._on_fresh(max(0.0, time.time() - newest))

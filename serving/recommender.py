"""The serving core: recommend, score and explain over live neighbourhoods (no gRPC here).

Per request: one graph round trip for the subject's own edges (fan-out capped; Explain also
fetches the other actors of its items), then the model's output layer over those edges,
reading the items' final embeddings from the item table (kept fresh from live 2-hop
neighbourhoods as the graph changes), then top-K over the item table. Subjects with nothing
to go on get popular items, and the result says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from gnn.ann import EXACT_THRESHOLD
from graphstore import Behaviour, GraphStore, GraphStoreError, ItemRecord
from serving.engine import Engine
from serving.explain import actors_of, browser_url, cypher_for, strongest_paths
from serving.fallback import Popular, popular_items, why_fallback
from serving.fetch import Failed, fetch_subjects
from serving.filters import allowed_rows, excluded_rows
from serving.freshness import FreshnessTracker
from serving.refresh import items_from_graph, re_embed
from serving.storehealth import bounded, store_unavailable
from serving.subgraph import LocalGraph, local_graph
from serving.types import (
    BadRequest,
    Explanation,
    ItemScores,
    NotFound,
    NotReady,
    Query,
    Recommendation,
    SessionEvent,
    Subject,
    SubjectKind,
)

if TYPE_CHECKING:
    from serving.abtest import ABTest


@dataclass(frozen=True)
class RecommenderConfig:
    """How the core fetches, ranks and links; one per served model directory."""

    fanouts: tuple[int, ...] = (50, 10)  # subject → its items (the history the model reads and
    # that counts as seen) → their other actors (Explain only)
    refresh_fanouts: tuple[int, int] = (50, 10)  # item → actors → items, when it changes
    default_k: int = 20
    max_k: int = 1_000
    exact_threshold: int = EXACT_THRESHOLD  # items; from it on top-K uses the usearch index
    browser_url: str = "http://127.0.0.1:7474/browser/"  # Neo4j Browser, for Explain links
    browser_dbms: str = "neo4j://neo4j@127.0.0.1:7687"  # what its connect form is filled with
    store_timeout_s: float = 2.0  # bound on a request's store call (where the store has one)


class Recommender:
    """Recommend / ScoreItems / Explain for users, sessions and items; thread-safe.

    The domain core behind the gRPC ``Recommender`` service (``serving.servicer`` converts
    each request to a call here and the result back).
    """

    def __init__(
        self,
        store: GraphStore,
        engine: Callable[[], Engine | None],
        config: RecommenderConfig | None = None,
        popular: Popular | None = None,
        on_fresh: Callable[[float], None] | None = None,
        store_up: Callable[[], bool] = lambda: True,
        on_store_down: Callable[[int], None] = lambda answered: None,
    ) -> None:
        self.store = store  # for refreshing items, off the request path
        self.config = config or RecommenderConfig()
        self._request_store = bounded(store, self.config.store_timeout_s)
        self._store_up = store_up  # False: skip the store (its probe fails)
        self._on_store_down = on_store_down  # called with the queries answered without it
        self._engine = engine
        self._popular = popular
        self._freshness = FreshnessTracker(on_fresh) if on_fresh is not None else None
        self._refresh_lock = threading.RLock()
        self.ab: ABTest | None = None  # serve --ab: its share of subjects goes to another version

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
        While the store is unavailable, subjects are answered from what needs no store: their
        request events, else popular items, saying so in ``fallback_reason``. With an A/B
        split (``ab``), its share of the queries is answered by the other version.
        """
        if self.ab is not None:
            return self.ab.recommend_many(queries, self._recommend_many)
        return self._recommend_many(queries)

    def _recommend_many(self, queries: Sequence[Query]) -> list[Recommendation | Exception]:
        engine = self.engine()
        answers: list[Recommendation | Exception] = [NotReady("not answered")] * len(queries)
        going: list[int] = []  # queries with a subject to look up
        subjects: list[Subject] = []
        for i, query in enumerate(queries):
            try:
                self._check_k(query)
                _check_category(engine, query.category)
                subjects.append(self._as_actor(engine, query.subject))
                going.append(i)
            except (BadRequest, NotFound, GraphStoreError) as exc:
                answers[i] = exc
        graph, failed, store_down = self._fetch_or_events(subjects)
        searched: list[tuple[int, int]] = []  # (query, subject slot)
        for slot, i in enumerate(going):
            if slot in failed:
                answers[i] = failed[slot]
            elif not len(graph.edges_of(slot)):
                answers[i] = self._fallback(engine, queries[i], store_down)
            elif not _knows_any(engine, graph.items_of(slot)):
                why = f"none of the {subjects[slot].kind}'s items is in the catalogue"
                answers[i] = self._fallback(engine, queries[i], why)
            else:
                searched.append((i, slot))
        self._search(engine, graph, queries, searched, answers)
        if store_down:
            self._on_store_down(len(going))
            why = f"{store_down}; answered from the request's events only"
            for i, slot in searched:
                answer = answers[i]
                if subjects[slot].key and isinstance(answer, Recommendation):
                    answers[i] = replace(answer, fallback_reason=why)  # lacks its graph edges
        return answers

    def _fetch_or_events(self, subjects: Sequence[Subject]) -> tuple[LocalGraph, Failed, str]:
        """``_fetch``, or while the store is unavailable the subjects' request events alone;
        and why the store was not used ("" when it was)."""
        try:
            graph, failed = self._fetch(subjects)
            return graph, failed, ""
        except Exception as exc:
            if not store_unavailable(exc):
                raise
            why = f"graph store unavailable ({exc})"
        return local_graph(None, [s.node for s in subjects], [s.events for s in subjects]), {}, why

    def _search(
        self,
        engine: Engine,
        graph: LocalGraph,
        queries: Sequence[Query],
        searched: Sequence[tuple[int, int]],
        answers: list[Recommendation | Exception],
    ) -> None:
        """Answer the ``searched`` (query, subject slot) pairs with one batched top-K."""
        if not searched:
            return
        table = engine.table
        vectors = engine.actor_vectors(graph)
        skips, alloweds = [], []
        for i, slot in searched:
            query = queries[i]
            seen = () if query.include_seen else graph.items_of(slot)
            skips.append(np.array(sorted(excluded_rows(table, query, seen)), np.int64))
            alloweds.append(allowed_rows(table, query))
        found = table.embeddings.search_many(
            vectors[[slot for _, slot in searched]],
            [self._k(queries[i]) for i, _ in searched],
            skips,
            alloweds,
        )
        for (i, _), (rows, scores) in zip(searched, found, strict=True):
            answers[i] = Recommendation(engine.scored(rows, scores), engine.version)

    def _fallback(self, engine: Engine, query: Query, why: str = "") -> Recommendation:
        """Popular items, saying ``why`` (by default: the subject has nothing to go on)."""
        exclude = excluded_rows(engine.table, query, ())
        items, source = popular_items(
            engine.table, self._popular, query.category, self._k(query), exclude
        )
        reason = f"{why or why_fallback(query.subject)}; returning {source}"
        return Recommendation(items, engine.version, True, reason)

    def _k(self, query: Query) -> int:
        return query.k or self.config.default_k

    def _check_k(self, query: Query) -> None:
        k = self._k(query)
        if not 0 < k <= self.config.max_k:
            raise BadRequest(f"k must be between 1 and {self.config.max_k}, got {k}")

    def score_items(self, subject: Subject, item_ids: Sequence[str]) -> ItemScores:
        """The subject's score for each known item, in order; unknown ids are listed apart."""
        if self.ab is not None and self.ab.takes(subject):
            return self.ab.other.score_items(subject, item_ids)
        engine = self.engine()
        graph, _ = self._fetch([self._as_actor(engine, subject)])
        vector = engine.actor_vectors(graph)[0]
        rows = self._known_rows(engine, item_ids)
        unknown = [i for i, r in zip(item_ids, rows.tolist(), strict=True) if r < 0]
        found = rows[rows >= 0]
        vectors = engine.table.embeddings.vectors()
        scores = vectors[found] @ vector if len(found) else np.zeros(0)
        return ItemScores(engine.scored(found, scores), engine.version, unknown)

    def explain(self, subject: Subject, item_id: str, max_paths: int = 5) -> Explanation:
        """The paths through which the subject's neighbourhood contributes most to the item's
        score, strongest first (paths that reach the item before those that do not)."""
        if subject.kind is SubjectKind.ITEM:
            raise BadRequest("Explain takes a user or a session subject, not an item")
        if self.ab is not None and self.ab.takes(subject):
            return self.ab.other.explain(subject, item_id, max_paths)
        engine = self.engine()
        self._item_row(engine, item_id)
        graph, _ = self._fetch([subject], hops=2)
        mine = graph.subject_edges  # its edges in the graph and its request events
        if not len(mine):
            raise NotFound(f"{subject.kind} {subject.key!r} has no interactions in the graph")
        target_actors = actors_of(self._request_store, item_id, self.config.refresh_fanouts[0])
        paths = strongest_paths(engine, graph, mine, item_id, target_actors)[:max_paths]
        cypher, params = cypher_for(paths)
        link = browser_url(self.config.browser_url, self.config.browser_dbms, cypher, params)
        return Explanation(paths, cypher, params, link, engine.version)

    # ------------------------------------------------------------------ freshness of items
    def refresh(self, item_ids: Sequence[str], records: Sequence[ItemRecord] = ()) -> int:
        """Re-embed items whose neighbourhood changed and add or update catalogue records,
        from their live 2-hop neighbourhoods (no full recompute). Returns items refreshed."""
        engine = self._engine()
        if engine is None:
            return 0
        with self._refresh_lock:  # rows are appended and embedded in order
            return re_embed(self.store, engine, item_ids, records, self.config.refresh_fanouts)

    # ------------------------------------------------------------------ helpers
    def _fetch(self, subjects: Sequence[Subject], hops: int = 1) -> tuple[LocalGraph, Failed]:
        """The subjects' live neighbourhoods; GraphStoreError at once while the probe finds
        the store unavailable."""
        if not self._store_up() and any(s.key for s in subjects):
            raise GraphStoreError("graph store unavailable (its health probe fails)")
        store = self._request_store
        graph, failed = fetch_subjects(store, subjects, self.config.fanouts, hops)
        if self._freshness is not None:
            self._freshness.observe(subjects, graph)
        return graph, failed

    def _as_actor(self, engine: Engine, subject: Subject) -> Subject:
        """Items are asked about as a session that just clicked them: "people who engage with
        this item" in the model's own terms, so similar items and cold items need nothing else.
        """
        if subject.kind is not SubjectKind.ITEM:
            return subject
        self._item_row(engine, subject.key)  # NOT_FOUND for items outside the catalogue
        event = SessionEvent(subject.key, Behaviour.CLICK, engine.inference.reference_ts)
        return Subject(SubjectKind.SESSION, "", (event,))  # no key: not a node of the graph

    def _item_row(self, engine: Engine, item_id: str) -> int:
        row = int(self._known_rows(engine, [item_id])[0])
        if row < 0:
            raise NotFound(f"item {item_id!r} is not in the catalogue")
        return row

    def _known_rows(self, engine: Engine, item_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """Each item's row, -1 for items the graph does not hold either. Items the graph
        holds but the table has not seen yet are added, all of them in one graph round trip
        and one table update."""
        table = engine.table
        rows = table.rows_of(item_ids)
        missing = (rows < 0) | (rows >= table.size)
        if missing.any():
            ids = [i for i, m in zip(item_ids, missing.tolist(), strict=True) if m]
            records = items_from_graph(self._request_store, sorted(set(ids)))
            if records:
                self.refresh([], records)
            rows[missing] = table.rows_of(ids)
            rows[rows >= table.size] = -1
        return rows


def _knows_any(engine: Engine, item_ids: Sequence[str]) -> bool:
    """Whether the item table holds any of ``item_ids``."""
    rows = engine.table.rows_of(item_ids)
    return bool(((rows >= 0) & (rows < engine.table.size)).any())


def _check_category(engine: Engine, category: str) -> None:
    """NOT_FOUND for a category filter no catalogue item falls under."""
    if category and not (engine.table.in_category(category) < engine.table.size).any():
        raise NotFound(f"category {category!r} has no items in the catalogue")

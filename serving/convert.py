"""Protobuf ↔ domain for the service, with every check a caller can act on (``BadRequest``)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable

from graphstore import MAX_CLOCK_SKEW_S, MAX_ID_LENGTH, Behaviour, InvalidId, check_id
from protos import graphrec_pb2 as pb
from serving.types import (
    BadRequest,
    Explanation,
    ItemScores,
    Query,
    Recommendation,
    ScoredItem,
    SessionEvent,
    Subject,
    SubjectKind,
)

MAX_SESSION_EVENTS = 1_000
MAX_LISTED_IDS = 10_000  # exclusions, or candidates of ScoreItems
MAX_PATHS = 50


def subject_of(msg: pb.Subject) -> Subject:
    kind = msg.WhichOneof("kind")
    if kind is None:
        raise BadRequest("subject is required: set user_id, session or item_id")
    if kind == "user_id":
        return Subject(SubjectKind.USER, _id("subject.user_id", msg.user_id))
    if kind == "item_id":
        return Subject(SubjectKind.ITEM, _id("subject.item_id", msg.item_id))
    session = msg.session
    key = _id("subject.session.session_id", session.session_id)
    if len(session.events) > MAX_SESSION_EVENTS:
        raise BadRequest(f"a session carries at most {MAX_SESSION_EVENTS} events")
    now = time.time()
    events = tuple(_session_event(i, e, now) for i, e in enumerate(session.events))
    return Subject(SubjectKind.SESSION, key, events)


def query_of(msg: pb.RecommendRequest) -> Query:
    return Query(
        subject_of(msg.subject),
        int(msg.k),
        _category(msg.category),
        frozenset(_ids("exclude_item_ids", msg.exclude_item_ids)),
        bool(msg.include_seen),
    )


def score_request_of(msg: pb.ScoreItemsRequest) -> tuple[Subject, list[str]]:
    if not msg.item_ids:
        raise BadRequest("item_ids is empty: name the candidates to score")
    return subject_of(msg.subject), _ids("item_ids", msg.item_ids)


def explain_request_of(msg: pb.ExplainRequest) -> tuple[Subject, str, int]:
    if msg.max_paths > MAX_PATHS:
        raise BadRequest(f"max_paths is at most {MAX_PATHS}")
    return subject_of(msg.subject), _id("item_id", msg.item_id), int(msg.max_paths) or 5


def recommendation_msg(r: Recommendation) -> pb.RecommendResponse:
    return pb.RecommendResponse(
        items=[_scored(i) for i in r.items],
        model_version=r.model_version,
        fallback=r.fallback,
        fallback_reason=r.fallback_reason,
    )


def scores_msg(s: ItemScores) -> pb.ScoreItemsResponse:
    return pb.ScoreItemsResponse(
        items=[_scored(i) for i in s.items],
        model_version=s.model_version,
        unknown_item_ids=s.unknown_item_ids,
    )


def explanation_msg(e: Explanation) -> pb.ExplainResponse:
    return pb.ExplainResponse(
        paths=[
            pb.ExplanationPath(
                nodes=[pb.PathNode(label=n.kind.value, id=n.key) for n in p.nodes],
                relationships=list(p.relationships),
                contribution=p.contribution,
            )
            for p in e.paths
        ],
        cypher=e.cypher,
        cypher_params_json=json.dumps(e.params),
        browser_url=e.browser_url,
        model_version=e.model_version,
    )


def _scored(item: ScoredItem) -> pb.ScoredItem:
    return pb.ScoredItem(
        item_id=item.item_id,
        score=item.score,
        category_path=list(item.category_path),
        title=item.title,
    )


def _session_event(i: int, e: pb.Event, now: float) -> SessionEvent:
    where = f"subject.session.events[{i}]"
    item = _id(f"{where}.item_id", e.item_id)
    try:
        behaviour = Behaviour(e.type)
    except ValueError:
        raise BadRequest(f"{where}.type must be VIEW, CLICK, CART or PURCHASE") from None
    ts = now if not e.HasField("ts") else e.ts.seconds + e.ts.nanos / 1e9
    if not math.isfinite(ts) or ts <= 0 or ts > now + MAX_CLOCK_SKEW_S:
        raise BadRequest(f"{where}.ts is not a plausible time")
    return SessionEvent(item, behaviour, ts)


def _category(value: str) -> str:
    if not value:
        return ""
    if len(value) > MAX_ID_LENGTH or any(not part for part in value.split("/")):
        raise BadRequest(f"category {value[:80]!r} is not a category path like 'face/serums'")
    return value


def _ids(field: str, values: Iterable[str]) -> list[str]:
    ids = list(values)
    if len(ids) > MAX_LISTED_IDS:
        raise BadRequest(f"{field} holds at most {MAX_LISTED_IDS} ids, got {len(ids)}")
    return [_id(f"{field}[{i}]", v) for i, v in enumerate(ids)]


def _id(field: str, value: str) -> str:
    try:
        return check_id(field, value)
    except InvalidId as exc:
        raise BadRequest(str(exc)) from None

"""One Recommend answer as the recommendation log holds it, and its JSON form.

A record says who asked (subject kind and id), what they were shown (item ids best first,
with their scores), by which model version and A/B arm, whether it was the popularity
fallback, how long the answer took, when it was given (the server's wall clock, Unix
seconds) and under which request id. It is one JSON object, keyed by the subject, so one
subject's answers stay in order in one partition; scores are written to 7 significant
digits. ``decode`` ignores fields it does not know: a reader takes the records of a newer
writer.

Arms: ``primary`` is every answer of the served version (``current``); with ``serve --ab``,
``b`` is the answers the other version gave its share of subjects; with ``serve --shadow``,
``shadow`` is the list the shadow version scored for the same request (same request id),
never shown to anyone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from protos import graphrec_pb2 as pb
from serving.types import SubjectKind

RECOMMENDATIONS_TOPIC = "recommendations"
PRIMARY_ARM = "primary"  # the arm of every answer the served version gives
B_ARM = "b"  # answers of the A/B split's other version
SHADOW_ARM = "shadow"  # lists the shadow version scored beside the primary's, not shown


class BadLogRecord(ValueError):
    """A recommendation log record that is not one; the message says what is wrong."""


@dataclass(frozen=True)
class LoggedRecommendation:
    """One Recommend answer: ``items`` best first, ``scores`` beside them."""

    request_id: str
    ts: float  # when it was answered, Unix seconds (server clock)
    subject_kind: SubjectKind
    subject_id: str  # "" for a session sent without an id
    items: tuple[str, ...]
    scores: tuple[float, ...]
    model_version: str
    fallback: bool = False
    fallback_reason: str = ""
    latency_ms: float = 0.0
    arm: str = PRIMARY_ARM

    @property
    def key(self) -> bytes:
        """The partitioning key: the subject."""
        return f"{self.subject_kind.value}:{self.subject_id}".encode()


def logged(
    request: bytes,
    response: bytes,
    request_id: str,
    ts: float,
    latency_s: float,
    arm: str = PRIMARY_ARM,
) -> LoggedRecommendation:
    """The record of an answered Recommend call, from its serialized request and response."""
    asked = pb.RecommendRequest.FromString(request)
    answer = pb.RecommendResponse.FromString(response)
    kind = asked.subject.WhichOneof("kind")
    if kind == "user_id":
        subject = (SubjectKind.USER, asked.subject.user_id)
    elif kind == "item_id":
        subject = (SubjectKind.ITEM, asked.subject.item_id)
    else:
        subject = (SubjectKind.SESSION, asked.subject.session.session_id)
    shown = [(i.item_id, i.score) for i in answer.items]
    return LoggedRecommendation(
        request_id=request_id,
        ts=ts,
        subject_kind=subject[0],
        subject_id=subject[1],
        items=tuple(item for item, _ in shown),
        # float32 on the wire: 7 significant digits give it back exactly, and print short
        scores=tuple(float(f"{score:.7g}") for _, score in shown),
        model_version=answer.model_version,
        fallback=answer.fallback,
        fallback_reason=answer.fallback_reason,
        latency_ms=round(latency_s * 1e3, 3),
        arm=arm,
    )


def encode(r: LoggedRecommendation) -> bytes:
    """The record as compact JSON."""
    return json.dumps(
        {
            "request_id": r.request_id,
            "ts": r.ts,
            "subject": {"kind": r.subject_kind.value, "id": r.subject_id},
            "items": list(r.items),
            "scores": list(r.scores),
            "model_version": r.model_version,
            "fallback": r.fallback,
            "fallback_reason": r.fallback_reason,
            "latency_ms": r.latency_ms,
            "arm": r.arm,
        },
        separators=(",", ":"),
    ).encode()


def decode(value: bytes) -> LoggedRecommendation:
    """A record from its JSON; ``BadLogRecord`` naming what is missing or wrong."""
    try:
        obj = json.loads(value)
        subject = obj["subject"]
        items = tuple(str(i) for i in obj["items"])
        scores = tuple(float(s) for s in obj.get("scores", ()))
        record = LoggedRecommendation(
            request_id=str(obj["request_id"]),
            ts=float(obj["ts"]),
            subject_kind=SubjectKind(subject["kind"]),
            subject_id=str(subject["id"]),
            items=items,
            scores=scores,
            model_version=str(obj["model_version"]),
            fallback=bool(obj.get("fallback", False)),
            fallback_reason=str(obj.get("fallback_reason", "")),
            latency_ms=float(obj.get("latency_ms", 0.0)),
            arm=str(obj.get("arm", PRIMARY_ARM)),
        )
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise BadLogRecord(
            f"not a recommendation log record ({type(exc).__name__}: {exc})"
        ) from None
    if not math.isfinite(record.ts):
        raise BadLogRecord(f"not a recommendation log record (ts {record.ts})")
    if record.scores and len(record.scores) != len(record.items):
        raise BadLogRecord(f"{len(record.items)} items but {len(record.scores)} scores")
    return record

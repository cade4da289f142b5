"""``serve --ab VERSION:FRACTION``: a stable hash split of subjects between the served version
and another one.

A subject lands in arm ``b`` when the first 8 bytes of the BLAKE2b digest of
``"<kind>:<id>"`` (``user:u1``, ``session:s9``), read as a fraction of 2^64, fall below
FRACTION; every other subject is in arm ``primary``. The digest is the same in every process
and after every restart, so a subject always sees the same arm. Requests with no stable
subject (a session sent without an id, items asked about for similar items) are answered by
the served version (arm ``primary``).

The other version is pinned by name (``serving.pinned``); the served one still follows
``current``. A batch of Recommend queries is split by arm and each part answered by its own
version; ScoreItems and Explain follow the same split, so a subject's every answer comes from
one version, and names it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protos import graphrec_pb2 as pb
from serving.logrecord import B_ARM, PRIMARY_ARM
from serving.types import Query, Recommendation, Subject, SubjectKind

if TYPE_CHECKING:
    from serving.recommender import Recommender

Answers = list[Recommendation | Exception]
SCALE = float(1 << 64)


@dataclass(frozen=True)
class ABSplit:
    """Which arm a subject is in: ``b`` for about ``fraction`` of subjects."""

    version: str  # the version answering arm b
    fraction: float

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"the A/B fraction must be between 0 and 1, got {self.fraction:g}")

    def arm(self, kind: SubjectKind, key: str) -> str:
        """``b`` or ``primary`` for the subject ``kind:key``."""
        if kind is SubjectKind.ITEM or not key:
            return PRIMARY_ARM
        digest = hashlib.blake2b(f"{kind.value}:{key}".encode(), digest_size=8).digest()
        return B_ARM if int.from_bytes(digest, "big") / SCALE < self.fraction else PRIMARY_ARM

    def arm_of_request(self, raw: bytes) -> str:
        """The arm of a serialized RecommendRequest's subject (``primary`` if unreadable)."""
        try:
            subject = pb.RecommendRequest.FromString(raw).subject
        except Exception:
            return PRIMARY_ARM
        kind = subject.WhichOneof("kind")
        if kind == "user_id":
            return self.arm(SubjectKind.USER, subject.user_id)
        if kind == "session":
            return self.arm(SubjectKind.SESSION, subject.session.session_id)
        return PRIMARY_ARM


class ABTest:
    """The split and the recommender of arm ``b`` (its version pinned)."""

    def __init__(self, split: ABSplit, other: Recommender) -> None:
        self.split = split
        self.other = other

    def takes(self, subject: Subject) -> bool:
        """Whether arm ``b`` answers ``subject``."""
        return self.split.arm(subject.kind, subject.key) == B_ARM

    def recommend_many(
        self, queries: Sequence[Query], primary: Callable[[Sequence[Query]], Answers]
    ) -> Answers:
        """Answers in order: arm ``b``'s queries by the other version, the rest by
        ``primary`` (the served version)."""
        b = [i for i, q in enumerate(queries) if self.takes(q.subject)]
        if not b:
            return primary(queries)
        taken = set(b)
        a = [i for i in range(len(queries)) if i not in taken]
        answers: Answers = [Exception("not answered")] * len(queries)
        for part, answer in ((a, primary), (b, self.other.recommend_many)):
            if part:
                for i, got in zip(part, answer([queries[i] for i in part]), strict=True):
                    answers[i] = got
        return answers

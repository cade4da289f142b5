"""Scoring a replay: each answer the service gave against the event that followed it.

One event is one test case with one relevant item (the event's item), so HitRate@K, MRR@K
and NDCG@K (``gnn.metrics``) are averaged over events. Events are grouped by behaviour, by
who acted (a user seen before, a user never seen before, a session) and by whether the
item was cold (no event had touched it before).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from gnn.metrics import hit_rate, mrr, ndcg

KNOWN_USER = "known users"
NEW_USER = "new users"
SESSION = "sessions"
COLD_ITEM = "cold items"
ALL = "all"


@dataclass(frozen=True)
class Scored:
    """One scored event: what was asked for it and where its item ranked in the answer."""

    index: int  # position among the events after the split
    ts: float  # the event's time
    behaviour: str  # view, click, cart, purchase
    subject: str  # KNOWN_USER, NEW_USER or SESSION
    cold_item: bool  # no event had touched the item before this one
    rank: int  # 1..K where the event's item was in the answer, 0 when it was not
    model_version: str
    fallback: bool  # the answer was popular items, not the model's
    fallback_reason: str = ""  # why, without the subject's id

    def ranked(self, rank: int, model_version: str, fallback: bool, reason: str = "") -> Scored:
        """The same event scored against another answer."""
        return replace(
            self, rank=rank, model_version=model_version, fallback=fallback, fallback_reason=reason
        )


def reason_kind(reason: str) -> str:
    """A fallback reason without the ids it names (``user 'u1' has ...`` → ``user … has ...``)
    and without what was returned instead, so reasons can be counted."""
    return re.sub(r"'[^']*'", "…", reason.split(";")[0]).strip()


def fallback_reasons(scored: Iterable[Scored]) -> dict[str, int]:
    """How many answers fell back, per ``reason_kind``, most frequent first."""
    return dict(Counter(s.fallback_reason for s in scored if s.fallback).most_common())


def rank_of(item_id: str, answer: Sequence[str], k: int) -> int:
    """1-based rank of ``item_id`` in the first ``k`` items of ``answer``, 0 if absent."""
    for rank, candidate in enumerate(answer[:k], start=1):
        if candidate == item_id:
            return rank
    return 0


def figures(ranks: Sequence[int], k: int) -> dict[str, float]:
    """``n``, ``hit_rate``, ``mrr`` and ``ndcg`` @``k`` of events whose item ranked so."""
    n = len(ranks)
    if not n:
        return {"n": 0, "hit_rate": 0.0, "mrr": 0.0, "ndcg": 0.0}
    hits = np.zeros((n, k))
    found = np.array(ranks) > 0
    hits[np.flatnonzero(found), np.array(ranks)[found] - 1] = 1.0
    one = np.ones(n, np.int64)
    return {
        "n": n,
        "hit_rate": round(hit_rate(hits, one), 4),
        "mrr": round(mrr(hits, one), 4),
        "ndcg": round(ndcg(hits, one), 4),
    }


def groups(scored: Iterable[Scored]) -> dict[str, list[Scored]]:
    """Events per group: all, each behaviour present, each subject kind present, cold items."""
    out: dict[str, list[Scored]] = {ALL: []}
    for s in scored:
        out[ALL].append(s)
        out.setdefault(s.behaviour, []).append(s)
    for s in out[ALL]:
        out.setdefault(s.subject, []).append(s)
        if s.cold_item:
            out.setdefault(COLD_ITEM, []).append(s)
    return out


def group_figures(scored: Sequence[Scored], k: int) -> dict[str, dict[str, float]]:
    """``figures`` per ``groups``, plus the share of answers that were fallbacks."""
    out = {}
    for name, members in groups(scored).items():
        row = figures([s.rank for s in members], k)
        fallbacks = sum(s.fallback for s in members)
        row["fallback_share"] = round(fallbacks / len(members), 4) if members else 0.0
        out[name] = row
    return out


@dataclass(frozen=True)
class VersionChange:
    """The answers named ``model_version`` from the event ``from_event`` (time ``ts``) on."""

    model_version: str
    from_event: int
    ts: float


def version_changes(scored: Sequence[Scored]) -> list[VersionChange]:
    """Each model version the answers named, from the first event whose answer named it."""
    out: list[VersionChange] = []
    for s in scored:
        if not out or out[-1].model_version != s.model_version:
            out.append(VersionChange(s.model_version, s.index, s.ts))
    return out


def rolling_hit_rate(scored: Sequence[Scored], window: int) -> tuple[list[int], list[float]]:
    """Hit rate over the last ``window`` scored events, at each event's index (from the
    ``window``-th on, or from the first when there are fewer)."""
    hits = np.array([s.rank > 0 for s in scored], np.float64)
    if not len(hits):
        return [], []
    window = min(window, len(hits))
    sums = np.convolve(hits, np.ones(window), mode="valid") / window
    return [s.index for s in scored[window - 1 :]], sums.tolist()

"""The shadow version beside the served one on the same requests (``serve --shadow``): how much
their lists agree, and how often each held what the subject did next.

The rules:

* A pair is a served record (arm ``primary`` or ``b``) and a ``shadow`` record with the same
  request id; a request id seen twice in one arm (a retried write) counts once.
* overlap@K of a pair is ``|served[:K] ∩ shadow[:K]| / min(K, the longer list)``: 1 when the
  top K hold the same items in any order; pairs of two empty lists are left out of the mean.
* The subject's next event is its first event (any behaviour) at or after the served
  answer's time and within the window after it: ``ts <= event.ts < ts + window``. A pair is
  judged when there is one (never for recommendations for an item: they have no actor), and
  a list hits when its first K items hold that event's item. Hit rates are hits of judged
  pairs, with 95 % Wilson intervals.
* Figures are per (served version, shadow version).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from graphstore import Interaction
from serving.attribution import ACTORS, Rate, wilson
from serving.logrecord import SHADOW_ARM, LoggedRecommendation
from serving.types import SubjectKind

Subject = tuple[SubjectKind | None, str]


@dataclass
class ShadowFigures:
    """One served version beside one shadow version, over the requests both answered."""

    served_version: str
    shadow_version: str
    k: int
    requests: int = 0  # pairs
    overlap_sum: float = 0.0  # of overlap@K over the pairs with a list
    with_lists: int = 0  # pairs where either list holds an item
    judged: int = 0  # pairs whose subject had a next event within the window
    served_hits: int = 0
    shadow_hits: int = 0

    @property
    def overlap(self) -> float:
        """Mean overlap@K."""
        return self.overlap_sum / self.with_lists if self.with_lists else 0.0

    @property
    def served_hit_rate(self) -> Rate:
        return wilson(self.served_hits, self.judged)

    @property
    def shadow_hit_rate(self) -> Rate:
        return wilson(self.shadow_hits, self.judged)

    def as_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "overlap": self.overlap,
            "served_hit_rate": asdict(self.served_hit_rate),
            "shadow_hit_rate": asdict(self.shadow_hit_rate),
        }


def overlap_at(k: int, served: Sequence[str], shadow: Sequence[str]) -> float | None:
    """overlap@K of two lists (None when both are empty)."""
    size = min(k, max(len(served), len(shadow)))
    if size == 0:
        return None
    return len(set(served[:k]) & set(shadow[:k])) / size


def compare(
    recommendations: Iterable[LoggedRecommendation],
    events: Iterable[Interaction],
    window_s: float,
    k: int = 10,
) -> list[ShadowFigures]:
    """The shadow's figures per (served version, shadow version), by the rules above."""
    if k < 1:
        raise ValueError(f"K must be at least 1, got {k}")
    served: dict[str, LoggedRecommendation] = {}
    shadows: dict[str, LoggedRecommendation] = {}
    for r in recommendations:
        (shadows if r.arm == SHADOW_ARM else served).setdefault(r.request_id, r)
    times, items = _timelines(events)
    figures: dict[tuple[str, str], ShadowFigures] = {}
    for rid, shadow in shadows.items():
        rec = served.get(rid)
        if rec is None:
            continue
        key = (rec.model_version, shadow.model_version)
        f = figures.setdefault(key, ShadowFigures(*key, k))
        f.requests += 1
        overlap = overlap_at(k, rec.items, shadow.items)
        if overlap is not None:
            f.with_lists += 1
            f.overlap_sum += overlap
        subject = (rec.subject_kind, rec.subject_id)
        if rec.subject_kind is SubjectKind.ITEM or subject not in times:
            continue
        at = bisect.bisect_left(times[subject], rec.ts)
        if at == len(times[subject]) or not times[subject][at] < rec.ts + window_s:
            continue
        f.judged += 1
        f.served_hits += items[subject][at] in rec.items[:k]
        f.shadow_hits += items[subject][at] in shadow.items[:k]
    return [figures[key] for key in sorted(figures)]


def _timelines(
    events: Iterable[Interaction],
) -> tuple[dict[Subject, list[float]], dict[Subject, list[str]]]:
    """Each actor's event times, oldest first, and the items beside them."""
    ordered: dict[Subject, list[tuple[float, str]]] = {}
    for e in events:
        ordered.setdefault((ACTORS.get(e.actor.kind), e.actor.key), []).append((e.ts, e.item_id))
    times, items = {}, {}
    for subject, happened in ordered.items():
        happened.sort(key=lambda x: x[0])  # stable: log order at equal times
        times[subject] = [ts for ts, _ in happened]
        items[subject] = [item for _, item in happened]
    return times, items

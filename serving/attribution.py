"""Attribution: which recommendation each event followed, and CTR and conversion per model
version and A/B arm, with 95 % Wilson score intervals.

The rules (the join of the recommendation log with the events):

* An event is attributed to a recommendation when the same subject (the same user id, or
  the same session id) acted on an item of its list within the window after it:
  ``rec.ts <= event.ts < rec.ts + window`` (the start inclusive, the end exclusive).
  ``rec.ts`` is the server's clock when it answered, ``event.ts`` the event's time.
* Of several such recommendations, the most recent one wins (at equal times, the later in
  the log). An event is attributed at most once.
* Every recommendation is an impression, one repeated to the same subject included; an
  earlier one whose item is acted on after a later one showing it again gets nothing.
* Events on items no recommendation showed the subject within the window are not
  attributed; those of subjects that were recommended to, from their first recommendation
  on, are counted as ``unattributed``.
* Clicks are click, cart and purchase events; in data with no click or cart event at all
  (ratings, or views and purchases only), every interaction counts as a click.
  Conversions are purchase events.
* Recommendations for an item (similar items) have no actor to follow: they are counted
  apart, not as impressions; so are the shadow version's lists (arm ``shadow``: nobody saw
  them; ``serving.shadowcompare`` compares them with the served ones). A record repeated in
  the log (the same request id and arm: a retried write) counts once, and so does an event
  repeated with the same event id.
* CTR is the share of impressions with at least one attributed click, conversion rate the
  share with at least one attributed purchase: proportions of impressions, each with its
  Wilson interval (``scipy.stats.binomtest``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from graphstore import Behaviour, Interaction, NodeKind
from serving.logrecord import SHADOW_ARM, LoggedRecommendation
from serving.types import SubjectKind

CLICKS = (Behaviour.CLICK, Behaviour.CART, Behaviour.PURCHASE)
CONFIDENCE = 0.95
ACTORS = {NodeKind.USER: SubjectKind.USER, NodeKind.SESSION: SubjectKind.SESSION}


@dataclass(frozen=True)
class Rate:
    """``hits`` of ``total`` with the Wilson score interval ``[low, high]``."""

    hits: int
    total: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0


def wilson(hits: int, total: int, confidence: float = CONFIDENCE) -> Rate:
    """``hits`` of ``total`` with its Wilson score interval (``[0, 1]`` when ``total`` is 0)."""
    if total == 0:
        return Rate(0, 0, 0.0, 1.0)
    from scipy.stats import binomtest

    ci = binomtest(hits, total).proportion_ci(confidence, method="wilson")
    return Rate(hits, total, float(ci.low), float(ci.high))


@dataclass
class ArmFigures:
    """What one model version showed in one arm, and what followed."""

    model_version: str
    arm: str
    impressions: int = 0
    items_shown: int = 0
    fallbacks: int = 0  # impressions that were the popularity fallback
    clicks: int = 0  # attributed click events
    clicked: int = 0  # impressions with at least one
    conversions: int = 0  # attributed purchase events
    converted: int = 0  # impressions with at least one

    @property
    def ctr(self) -> Rate:
        return wilson(self.clicked, self.impressions)

    @property
    def conversion_rate(self) -> Rate:
        return wilson(self.converted, self.impressions)

    def as_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "ctr": asdict(self.ctr),
            "conversion_rate": asdict(self.conversion_rate),
        }


@dataclass
class Attribution:
    """Figures per (model version, arm), and how the log and the events were counted."""

    window_s: float
    click_behaviours: tuple[str, ...]
    arms: list[ArmFigures] = field(default_factory=list)  # by model version, then arm
    recommendations: int = 0  # records read, repeats left out
    repeated_records: int = 0
    item_subjects: int = 0  # recommendations for an item: not impressions
    shadow_lists: int = 0  # the shadow version's lists: not impressions
    events: int = 0  # events read, repeats left out
    repeated_events: int = 0
    attributed: int = 0
    unattributed: int = 0

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["arms"] = [a.as_dict() for a in self.arms]
        return out


@dataclass
class _Shown:
    """Per subject and item: when recommendations showed it, oldest first, and which."""

    times: list[float] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)


def click_behaviours(events: Iterable[Interaction]) -> tuple[Behaviour, ...]:
    """Click, cart and purchase; every behaviour when the events hold no click or cart."""
    if any(e.behaviour in (Behaviour.CLICK, Behaviour.CART) for e in events):
        return CLICKS
    return tuple(Behaviour)


def attribute(
    recommendations: Iterable[LoggedRecommendation],
    events: Iterable[Interaction],
    window_s: float,
    clicks: tuple[Behaviour, ...] | None = None,
) -> Attribution:
    """Join the recommendation log (in log order) with the events by the rules above;
    ``clicks`` the behaviours that count as clicks (default: ``click_behaviours``)."""
    if not window_s > 0:
        raise ValueError(f"the attribution window must be positive, got {window_s}")
    recs, shown, first, report = _index(recommendations, window_s)
    unique, seen = [], set()
    for e in events:
        if e.event_id in seen:
            report.repeated_events += 1
            continue
        seen.add(e.event_id)
        unique.append(e)
    report.events = len(unique)
    counted = clicks if clicks is not None else click_behaviours(unique)
    report.click_behaviours = tuple(b.name.lower() for b in counted)
    hits: dict[int, list[Interaction]] = {}
    for e in unique:
        is_click, is_purchase = e.behaviour in counted, e.behaviour is Behaviour.PURCHASE
        subject = (ACTORS.get(e.actor.kind), e.actor.key)
        if not (is_click or is_purchase) or subject not in first or e.ts < first[subject]:
            continue
        slot = _latest(shown.get((*subject, e.item_id)), e.ts, window_s)
        if slot is None:
            report.unattributed += 1
        else:
            report.attributed += 1
            hits.setdefault(slot, []).append(e)
    report.arms = _figures(recs, hits, counted)
    return report


def _index(
    recommendations: Iterable[LoggedRecommendation], window_s: float
) -> tuple[
    list[LoggedRecommendation],
    dict[tuple[SubjectKind, str, str], _Shown],
    dict[tuple[SubjectKind, str], float],
    Attribution,
]:
    """The impressions (repeats and item subjects left out), where each item was shown to
    each subject, each subject's first impression time, and the report's counts so far."""
    report = Attribution(window_s, ())
    recs: list[LoggedRecommendation] = []
    ids: set[tuple[str, str]] = set()
    for r in recommendations:
        if (r.request_id, r.arm) in ids:
            report.repeated_records += 1
            continue
        ids.add((r.request_id, r.arm))
        if r.arm == SHADOW_ARM:
            report.shadow_lists += 1
        elif r.subject_kind is SubjectKind.ITEM:
            report.item_subjects += 1
        else:
            recs.append(r)
    report.recommendations = len(ids)
    order = sorted(range(len(recs)), key=lambda i: recs[i].ts)  # stable: log order at ties
    shown: dict[tuple[SubjectKind, str, str], _Shown] = {}
    first: dict[tuple[SubjectKind, str], float] = {}
    for slot in order:
        r = recs[slot]
        first.setdefault((r.subject_kind, r.subject_id), r.ts)
        for item in dict.fromkeys(r.items):
            places = shown.setdefault((r.subject_kind, r.subject_id, item), _Shown())
            places.times.append(r.ts)
            places.slots.append(slot)
    return recs, shown, first, report


def _latest(shown: _Shown | None, ts: float, window_s: float) -> int | None:
    """The most recent impression at or before ``ts`` if ``ts`` falls within its window."""
    if shown is None:
        return None
    at = bisect.bisect_right(shown.times, ts) - 1
    if at < 0 or not ts < shown.times[at] + window_s:
        return None
    return shown.slots[at]


def _figures(
    recs: list[LoggedRecommendation],
    hits: dict[int, list[Interaction]],
    clicks: tuple[Behaviour, ...],
) -> list[ArmFigures]:
    arms: dict[tuple[str, str], ArmFigures] = {}
    for slot, r in enumerate(recs):
        figures = arms.setdefault((r.model_version, r.arm), ArmFigures(r.model_version, r.arm))
        figures.impressions += 1
        figures.items_shown += len(r.items)
        figures.fallbacks += r.fallback
        got = hits.get(slot, [])
        n_clicks = sum(e.behaviour in clicks for e in got)
        n_purchases = sum(e.behaviour is Behaviour.PURCHASE for e in got)
        figures.clicks += n_clicks
        figures.clicked += n_clicks > 0
        figures.conversions += n_purchases
        figures.converted += n_purchases > 0
    return [arms[k] for k in sorted(arms)]

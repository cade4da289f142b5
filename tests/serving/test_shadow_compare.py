"""The shadow beside the served version on hand-made logs with known answers: overlap@K,
each list's hit rate on the subject's next event (window edges included), pairs by request
id; and the shadow's lists are never impressions."""

from __future__ import annotations

import pytest

from graphstore import Behaviour, Interaction, NodeKind, NodeRef
from serving.attribution import attribute
from serving.logrecord import LoggedRecommendation
from serving.shadowcompare import compare, overlap_at
from serving.types import SubjectKind

T0 = 1_700_000_000.0
WINDOW = 1800.0
USER, SESSION, ITEM = SubjectKind.USER, SubjectKind.SESSION, SubjectKind.ITEM


def rec(
    rid: str,
    kind: SubjectKind,
    subject: str,
    items: str,
    version: str,
    arm: str,
    after: float = 0.0,
) -> LoggedRecommendation:
    shown = tuple(items)
    return LoggedRecommendation(
        rid, T0 + after, kind, subject, shown, (0.5,) * len(shown), version, arm=arm
    )


RECORDS = [
    rec("r1", USER, "u1", "abx", "v1", "primary"),
    rec("r1", USER, "u1", "xac", "v2", "shadow"),  # overlap@3 2/3; next event x: both hit
    rec("r2", USER, "u1", "yb", "v1", "primary", 15),
    rec("r2", USER, "u1", "bc", "v2", "shadow", 15),  # overlap 1/2; next y: served hits
    rec("r3", USER, "u2", "a", "v1", "primary"),
    rec("r3", USER, "u2", "a", "v2", "shadow"),  # overlap 1; u2's event is outside the window
    rec("r4", SESSION, "s1", "d", "v3", "b"),
    rec("r4", SESSION, "s1", "e", "v2", "shadow"),  # arm b beside the shadow: its own pair
    rec("r5", USER, "u1", "abc", "v1", "primary", 30),  # the shadow dropped it: no pair
    rec("r6", USER, "u1", "abc", "v2", "shadow", 40),  # its served record lost: no pair
    rec("r1", USER, "u1", "xac", "v2", "shadow"),  # a retried write: counts once
    rec("r7", ITEM, "i9", "ab", "v1", "primary"),
    rec("r7", ITEM, "i9", "ac", "v2", "shadow"),  # overlap 1/2; an item has no next event
    rec("r8", USER, "u3", "q", "v1", "primary"),
    rec("r8", USER, "u3", "q", "v2", "shadow"),  # overlap 1; event at ts + window: not judged
    rec("r9", USER, "u4", "po", "v1", "primary"),
    rec("r9", USER, "u4", "op", "v2", "shadow"),  # overlap 1; event at ts itself: judged
]
EVENTS = [  # (actor kind, actor, item, seconds after T0)
    (NodeKind.USER, "u1", "y", 20),
    (NodeKind.USER, "u1", "x", 10),  # events come in any order
    (NodeKind.USER, "u2", "a", 5000),
    (NodeKind.SESSION, "s1", "d", 1),
    (NodeKind.USER, "u3", "q", WINDOW),
    (NodeKind.USER, "u4", "o", 0),
]


def events() -> list[Interaction]:
    return [
        Interaction(f"e{n}", NodeRef(kind, actor), item, Behaviour.CLICK, T0 + after)
        for n, (kind, actor, item, after) in enumerate(EVENTS)
    ]


def test_overlap_at_k() -> None:
    assert overlap_at(3, "abx", "xac") == pytest.approx(2 / 3)
    assert overlap_at(10, "ab", "ba") == 1.0  # the same items in another order
    assert overlap_at(10, "abc", "ab") == pytest.approx(2 / 3)  # a shorter list agrees less
    assert overlap_at(1, "ab", "ba") == 0.0
    assert overlap_at(5, "", "ab") == 0.0
    assert overlap_at(5, "", "") is None


def test_known_answers_at_10() -> None:
    (v1, v3) = compare(RECORDS, events(), WINDOW, k=10)
    assert (v1.served_version, v1.shadow_version) == ("v1", "v2")
    assert (v3.served_version, v3.shadow_version) == ("v3", "v2")
    assert (v1.requests, v1.judged, v1.served_hits, v1.shadow_hits) == (6, 3, 3, 2)
    # r1 2/3, r2 1/2, r3 1, r7 1/2, r8 1, r9 1
    assert v1.overlap == pytest.approx((2 / 3 + 1 / 2 + 1 + 1 / 2 + 1 + 1) / 6)
    assert (v3.requests, v3.overlap, v3.judged, v3.served_hits, v3.shadow_hits) == (1, 0, 1, 1, 0)
    assert v1.served_hit_rate.value == 1.0 and v1.shadow_hit_rate.value == pytest.approx(2 / 3)
    assert v1.shadow_hit_rate.low < 2 / 3 < v1.shadow_hit_rate.high


def test_known_answers_at_1() -> None:
    v1, _ = compare(RECORDS, events(), WINDOW, k=1)
    # top 1: r1 a|x, r2 y|b, r3 a|a, r7 a|a, r8 q|q, r9 p|o
    assert v1.overlap == pytest.approx(3 / 6)
    # r1: x is the shadow's first; r2: y the served one's first; r9: o the shadow's first
    assert (v1.judged, v1.served_hits, v1.shadow_hits) == (3, 1, 2)


def test_a_longer_window_judges_the_later_events() -> None:
    v1, _ = compare(RECORDS, events(), 6000.0, k=10)
    assert (v1.judged, v1.served_hits, v1.shadow_hits) == (5, 5, 4)  # r3's a, r8's q too


def test_no_shadow_lists_no_figures() -> None:
    served = [r for r in RECORDS if r.arm != "shadow"]
    assert compare(served, events(), WINDOW) == []
    with pytest.raises(ValueError, match="at least 1"):
        compare(RECORDS, events(), WINDOW, k=0)


def test_shadow_lists_are_not_impressions_nor_repeats_of_the_served_one() -> None:
    report = attribute(RECORDS, events(), WINDOW)
    assert report.shadow_lists == 8 and report.repeated_records == 1
    assert report.item_subjects == 1
    arms = {(a.model_version, a.arm): a.impressions for a in report.arms}
    assert arms == {("v1", "primary"): 6, ("v3", "b"): 1}  # r1 r2 r3 r5 r8 r9; r4
    assert report.recommendations == 16

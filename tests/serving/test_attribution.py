"""Attribution on hand-made logs with known answers: window edges, repeated recommendations,
items never recommended, data without behaviour types, repeats in the log, Wilson intervals."""

from __future__ import annotations

import json

import pytest

from graphstore import Behaviour, Interaction, NodeKind, NodeRef
from serving.attribution import ArmFigures, Attribution, attribute, wilson
from serving.logrecord import LoggedRecommendation
from serving.types import SubjectKind

WINDOW = 60.0


def rec(
    rid: str,
    ts: float,
    items: tuple[str, ...] = ("a", "b"),
    subject: str = "u1",
    version: str = "v1",
    arm: str = "primary",
    kind: SubjectKind = SubjectKind.USER,
    fallback: bool = False,
) -> LoggedRecommendation:
    scores = tuple(1.0 / (n + 1) for n in range(len(items)))
    return LoggedRecommendation(rid, ts, kind, subject, items, scores, version, fallback, arm=arm)


def event(
    eid: str,
    ts: float,
    item: str,
    behaviour: Behaviour = Behaviour.CLICK,
    actor: str = "u1",
    kind: NodeKind = NodeKind.USER,
) -> Interaction:
    return Interaction(eid, NodeRef(kind, actor), item, behaviour, ts)


def arm(report: Attribution, version: str = "v1", name: str = "primary") -> ArmFigures:
    return next(a for a in report.arms if (a.model_version, a.arm) == (version, name))


@pytest.mark.parametrize(
    ("after", "attributed"),
    [(0.0, True), (WINDOW - 1e-3, True), (WINDOW, False), (WINDOW + 1.0, False)],
)
def test_the_window_includes_its_start_and_excludes_its_end(after: float, attributed: bool) -> None:
    report = attribute([rec("r1", 100.0)], [event("e1", 100.0 + after, "a")], WINDOW)
    assert (report.attributed, report.unattributed) == (int(attributed), int(not attributed))
    assert arm(report).clicked == int(attributed)


def test_an_event_before_the_recommendation_is_not_attributed_nor_counted() -> None:
    report = attribute([rec("r1", 100.0)], [event("e1", 99.999, "a")], WINDOW)
    assert (report.attributed, report.unattributed, arm(report).clicks) == (0, 0, 0)


def test_the_most_recent_recommendation_showing_the_item_wins() -> None:
    recs = [rec("r1", 0.0, ("a", "b"), version="v1"), rec("r2", 30.0, ("a", "c"), version="v2")]
    events = [
        event("e1", 10.0, "a"),  # only r1 was given yet
        event("e2", 40.0, "a"),  # r1 and r2 showed a: r2 is the most recent
        event("e3", 45.0, "b"),  # only r1 showed b
        event("e4", 70.0, "b"),  # r1's window is over, r2 never showed b
    ]
    report = attribute(recs, events, WINDOW)
    one, two = arm(report, "v1"), arm(report, "v2")
    assert (one.impressions, one.clicks, one.clicked) == (1, 2, 1)
    assert (two.impressions, two.clicks, two.clicked) == (1, 1, 1)
    assert (report.attributed, report.unattributed) == (3, 1)


def test_repeated_recommendations_are_impressions_each_and_an_event_counts_once() -> None:
    recs = [rec(f"r{n}", 10.0 * n) for n in range(3)]  # the same list to the same user, 3x
    report = attribute(recs, [event("e1", 25.0, "a")], WINDOW)
    figures = arm(report)
    assert (figures.impressions, figures.items_shown) == (3, 6)
    assert (figures.clicks, figures.clicked, report.attributed) == (1, 1, 1)
    assert figures.ctr.hits == 1 and figures.ctr.total == 3


def test_at_equal_times_the_later_record_in_the_log_wins() -> None:
    recs = [rec("r1", 5.0, version="v1"), rec("r2", 5.0, version="v2")]
    report = attribute(recs, [event("e1", 6.0, "a")], WINDOW)
    assert (arm(report, "v1").clicks, arm(report, "v2").clicks) == (0, 1)


def test_events_on_items_never_recommended_or_by_others_are_not_attributed() -> None:
    events = [
        event("e1", 110.0, "z"),  # never shown to u1: unattributed
        event("e2", 110.0, "a", actor="u2"),  # u2 was never recommended to
        event("e3", 110.0, "a", kind=NodeKind.SESSION),  # session "u1" is not user "u1"
    ]
    report = attribute([rec("r1", 100.0)], events, WINDOW)
    assert (report.attributed, report.unattributed, report.events) == (0, 1, 3)
    assert arm(report).clicks == 0


def test_sessions_are_followed_by_their_id() -> None:
    recs = [rec("r1", 0.0, subject="s1", kind=SubjectKind.SESSION)]
    report = attribute(recs, [event("e1", 1.0, "b", actor="s1", kind=NodeKind.SESSION)], WINDOW)
    assert arm(report).clicked == 1


def test_views_are_not_clicks_where_the_data_has_clicks() -> None:
    events = [event("e1", 1.0, "a", Behaviour.VIEW), event("e2", 2.0, "b", Behaviour.CART)]
    report = attribute([rec("r1", 0.0)], events, WINDOW)
    assert report.click_behaviours == ("click", "cart", "purchase")
    assert (arm(report).clicks, report.attributed, report.unattributed) == (1, 1, 0)


def test_without_behaviour_types_every_interaction_is_a_click() -> None:
    events = [event("e1", 1.0, "a", Behaviour.VIEW), event("e2", 2.0, "b", Behaviour.VIEW)]
    report = attribute([rec("r1", 0.0)], events, WINDOW)
    assert report.click_behaviours == ("view", "click", "cart", "purchase")
    figures = arm(report)
    assert (figures.clicks, figures.clicked, figures.conversions) == (2, 1, 0)


def test_purchases_are_conversions_and_ratings_data_counts_them_as_clicks_too() -> None:
    recs = [rec("r1", 0.0), rec("r2", 0.0, subject="u2")]
    events = [
        event("e1", 1.0, "a", Behaviour.VIEW),
        event("e2", 1.0, "a", Behaviour.PURCHASE),
        event("e3", 1.0, "b", Behaviour.VIEW, actor="u2"),
    ]
    figures = arm(attribute(recs, events, WINDOW))  # views and purchases only, as MovieLens
    assert (figures.clicks, figures.clicked, figures.conversions, figures.converted) == (3, 2, 1, 1)
    assert figures.conversion_rate.value == 0.5


def test_repeats_in_the_log_count_once_and_item_subjects_are_not_impressions() -> None:
    recs = [
        rec("r1", 0.0),
        rec("r1", 0.0),  # a retried write
        rec("r2", 0.0, subject="a", kind=SubjectKind.ITEM),
    ]
    events = [event("e1", 1.0, "a"), event("e1", 1.0, "a")]
    report = attribute(recs, events, WINDOW)
    assert (report.recommendations, report.repeated_records, report.item_subjects) == (2, 1, 1)
    assert (report.events, report.repeated_events) == (1, 1)
    assert (arm(report).impressions, arm(report).clicks) == (1, 1)


def test_figures_are_per_model_version_and_arm_and_serialisable() -> None:
    recs = [
        rec("r1", 0.0, version="v2", arm="b"),
        rec("r2", 0.0, subject="u2", version="v1"),
        rec("r3", 0.0, subject="u3", version="v1", fallback=True),
    ]
    report = attribute(recs, [event("e1", 1.0, "a", actor="u3")], WINDOW)
    assert [(a.model_version, a.arm) for a in report.arms] == [("v1", "primary"), ("v2", "b")]
    assert (arm(report).impressions, arm(report).fallbacks, arm(report).clicked) == (2, 1, 1)
    shown = json.loads(json.dumps(report.as_dict()))
    assert shown["arms"][0]["ctr"]["hits"] == 1 and shown["window_s"] == WINDOW


def test_wilson_intervals_match_the_formula() -> None:
    half = wilson(5, 10)  # centre 0.5, half-width 1.96 * sqrt(.025 + .00096) / 1.38415
    assert (round(half.low, 4), round(half.high, 4)) == (0.2366, 0.7634)
    none = wilson(0, 10)  # upper bound z^2 / (n + z^2)
    assert (none.low, round(none.high, 4)) == (0.0, 0.2775)
    assert (wilson(0, 0).low, wilson(0, 0).high) == (0.0, 1.0)


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        attribute([], [], 0.0)

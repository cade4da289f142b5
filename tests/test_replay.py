"""graphrec replay without a server: scoring, splitting, the replay loop over a scripted answer
function, pacing, the sink backlog on the embedded log, the lag probe's test of an answer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from graphrec.pipeline import ingest
from graphrec.replay import History, Pacer, ReplaySettings, replay, split_index
from graphrec.replay_score import (
    COLD_ITEM,
    KNOWN_USER,
    NEW_USER,
    SESSION,
    Scored,
    fallback_reasons,
    figures,
    group_figures,
    rank_of,
    reason_kind,
    rolling_hit_rate,
    version_changes,
)
from graphrec.replay_sync import SinkBehind, shows, sink_backlog, wait_for_sink
from graphstore import Behaviour, Interaction, ItemRecord, NodeKind, NodeRef, open_store
from protos import graphrec_pb2 as pb
from streaming.produce import produce
from streaming.urls import open_writer


def event(n: int, actor: str, item: str, ts: float, kind: NodeKind = NodeKind.USER) -> Interaction:
    return Interaction(f"e{n}", NodeRef(kind, actor), item, Behaviour.VIEW, ts)


def test_figures_by_hand() -> None:
    # ranks 1, miss, 2, 5 at K=5
    got = figures([1, 0, 2, 5], k=5)
    assert got["n"] == 4
    assert got["hit_rate"] == 0.75
    assert got["mrr"] == round((1 + 0 + 1 / 2 + 1 / 5) / 4, 4)
    assert got["ndcg"] == round((1 + 0 + 1 / math.log2(3) + 1 / math.log2(6)) / 4, 4)
    assert figures([], k=5)["n"] == 0


def test_rank_of_counts_only_the_first_k() -> None:
    assert rank_of("b", ["a", "b", "c"], 3) == 2
    assert rank_of("c", ["a", "b", "c"], 2) == 0
    assert rank_of("z", ["a"], 5) == 0


def test_split_index_by_share_and_by_time() -> None:
    events = [event(i, "u", f"i{i}", 1_000.0 + i) for i in range(10)]
    assert split_index(events, 0.9) == 9
    assert split_index(events, 0.25) == 2  # round(2.5) to even
    assert split_index(events, 1_004.0) == 4  # first event at or after that time
    assert split_index(events, 5_000.0) == 10
    with pytest.raises(ValueError, match="split-at"):
        split_index(events, 0.0)


def test_history_classifies_subjects_items_and_repeats() -> None:
    past = [event(0, "u1", "a", 1.0), event(1, "s1", "b", 2.0, NodeKind.SESSION)]
    history = History(past)
    assert history.subject_kind(event(2, "u1", "c", 3.0)) == KNOWN_USER
    assert history.subject_kind(event(3, "u2", "c", 3.0)) == NEW_USER
    assert history.subject_kind(event(4, "s1", "c", 3.0, NodeKind.SESSION)) == SESSION
    assert history.is_repeat(event(5, "u1", "a", 4.0))
    assert not history.is_repeat(event(6, "u2", "a", 4.0))
    request = history.request(event(7, "s1", "c", 5.0, NodeKind.SESSION), k=7)
    assert request.k == 7 and request.subject.session.session_id == "s1"
    assert [e.item_id for e in request.subject.session.events] == ["b"]
    bare = history.subject(event(8, "s1", "c", 5.0, NodeKind.SESSION), with_events=False)
    assert not bare.session.events
    assert history.request(event(9, "u1", "c", 5.0), k=3).subject.user_id == "u1"


def answer(items: list[str], version: str = "v1", fallback: bool = False) -> pb.RecommendResponse:
    return pb.RecommendResponse(
        items=[pb.ScoredItem(item_id=i) for i in items], model_version=version, fallback=fallback
    )


def test_replay_asks_before_each_event_and_scores_the_answer() -> None:
    past = [event(0, "u1", "a", 1.0)]
    after = [
        event(1, "u1", "b", 2.0),  # known user, cold item b at rank 2
        event(2, "u1", "b", 3.0),  # repeat: produced, not scored
        event(3, "u2", "z", 4.0),  # new user, cold item, not in the answer
        event(4, "s1", "a", 5.0, NodeKind.SESSION),  # session, a at rank 1, version v2
    ]
    sent: list[str] = []
    sent_when_asked: list[int] = []
    answers = iter([answer(["x", "b", "c"]), answer(["y"], fallback=True), answer(["a"], "v2")])

    def recommend(request: pb.RecommendRequest) -> pb.RecommendResponse:
        sent_when_asked.append(len(sent))
        return next(answers)

    probed: list[tuple[pb.Subject, str]] = []
    outcome = replay(
        after,
        History(past),
        recommend,
        lambda e: sent.append(e.event_id),
        ReplaySettings(k=2, probe_every=2),
        lambda subject, item: probed.append((subject, item)),
    )
    assert sent == ["e1", "e2", "e3", "e4"] and outcome.produced == 4
    assert outcome.repeats == 1
    assert sent_when_asked == [0, 2, 3]  # each asked before its own event was produced
    assert [(s.rank, s.subject, s.cold_item) for s in outcome.scored] == [
        (2, KNOWN_USER, True),
        (0, NEW_USER, True),
        (1, SESSION, False),
    ]
    assert [(p.user_id or p.session.session_id, item) for p, item in probed] == [
        ("u1", "b"),
        ("u2", "z"),
    ]
    table = group_figures(outcome.scored, k=2)
    assert table["all"]["hit_rate"] == round(2 / 3, 4)
    assert table["all"]["mrr"] == round((1 / 2 + 0 + 1) / 3, 4)
    assert table[COLD_ITEM]["n"] == 2 and table[COLD_ITEM]["fallback_share"] == 0.5
    assert set(table) == {"all", "view", KNOWN_USER, NEW_USER, SESSION, COLD_ITEM}
    changes = version_changes(outcome.scored)
    assert [(c.model_version, c.from_event) for c in changes] == [("v1", 0), ("v2", 3)]


def test_rolling_hit_rate() -> None:
    scored = [
        Scored(i, float(i), "view", KNOWN_USER, False, r, "v", False)
        for i, r in enumerate([1, 0, 0, 3])
    ]
    assert rolling_hit_rate(scored, 2) == ([1, 2, 3], [0.5, 0.0, 0.5])
    assert rolling_hit_rate(scored, 10) == ([3], [0.5])


def test_pacer_spreads_events_by_their_time() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(10.0, clock=lambda: now[0], sleep=sleep)
    for ts in (1_000.0, 1_010.0, 1_030.0):
        pacer.wait(ts)
    assert slept == [1.0, 2.0]


def test_sink_backlog_on_the_embedded_log(tmp_path: Path) -> None:
    log_url = f"log://{tmp_path / 'log'}"
    items = [ItemRecord("a", ("x",)), ItemRecord("b", ("x",))]
    produce(open_writer(log_url), items, [event(i, "u1", "a", 1e9 + i) for i in range(3)])
    assert sink_backlog(log_url, "sink") == 5
    with open_store(f"sqlite://{tmp_path / 'graph'}") as store:
        ingest(log_url, store, "sink", idle_exit_s=0.2)
    assert sink_backlog(log_url, "sink") == 0
    assert sink_backlog(log_url, "another-group") == 5


def test_wait_for_sink_gives_up_with_what_is_left() -> None:
    with pytest.raises(SinkBehind, match="3 records"):
        wait_for_sink(lambda: 3, timeout_s=0.05, poll_s=0.01)
    left = iter([2, 1, 0])
    wait_for_sink(lambda: next(left), timeout_s=5.0, poll_s=0.0)


def test_an_explanation_shows_the_edge_only_through_its_first_hop() -> None:
    def path(*nodes: tuple[str, str]) -> pb.ExplanationPath:
        return pb.ExplanationPath(nodes=[pb.PathNode(label=lb, id=i) for lb, i in nodes])

    via_other = path(("User", "u1"), ("Item", "b"), ("User", "u2"), ("Item", "a"))
    assert not shows(pb.ExplainResponse(paths=[via_other]), "a")
    direct = path(("User", "u1"), ("Item", "a"))
    assert shows(pb.ExplainResponse(paths=[via_other, direct]), "a")


def test_fallback_reasons_are_counted_without_ids() -> None:
    reason = reason_kind("user 'u7' has no interactions in the graph; returning popular items")
    assert reason == "user … has no interactions in the graph"
    scored = [
        Scored(0, 0.0, "view", NEW_USER, False, 0, "v", True, reason),
        Scored(1, 1.0, "view", NEW_USER, False, 0, "v", True, reason),
        Scored(2, 2.0, "view", KNOWN_USER, False, 1, "v", False),
    ]
    assert fallback_reasons(scored) == {reason: 2}

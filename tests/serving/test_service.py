"""The Recommender service over a real channel (server on port 0) on the embedded store."""

from __future__ import annotations

import json
from collections import Counter

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from graphstore import Behaviour, NodeKind
from protos import graphrec_pb2 as pb
from serving.recommender import Recommender
from serving.types import BadRequest, NotFound, Query, SessionEvent, Subject, SubjectKind
from tests.serving.conftest import Served, World


def user_with_most_items(world: World, max_edges: int = 50) -> str:
    """The busiest user whose whole history fits the first hop's fan-out (50 edges)."""
    edges = {
        (i.actor.key, i.item_id, i.behaviour)
        for i in world.dataset.interactions
        if i.actor.kind is NodeKind.USER
    }
    users = Counter(actor for actor, _, _ in edges)
    return next(u for u, n in users.most_common() if n <= max_edges)


def items_of(world: World, actor: str) -> set[str]:
    return {i.item_id for i in world.dataset.interactions if i.actor.key == actor}


def recommend(served: Served, k: int = 10, **subject: object) -> pb.RecommendResponse:
    return served.stub.Recommend(pb.RecommendRequest(subject=pb.Subject(**subject), k=k))


def session(sid: str, items: list[str], kind: int = pb.CLICK) -> pb.SessionContext:
    return pb.SessionContext(session_id=sid, events=[pb.Event(item_id=i, type=kind) for i in items])


def test_known_user_gets_unseen_items_ranked_by_score(served: Served, world: World) -> None:
    user = user_with_most_items(world)
    response = recommend(served, k=15, user_id=user)
    assert not response.fallback
    assert response.model_version == served.serving.registry.version
    ids = [i.item_id for i in response.items]
    assert len(ids) == 15 == len(set(ids))
    assert not set(ids) & items_of(world, user)
    scores = [i.score for i in response.items]
    assert scores == sorted(scores, reverse=True)
    assert all(i.category_path and i.title for i in response.items)


def test_unknown_user_and_empty_session_fall_back_to_popular_items(served: Served) -> None:
    for subject in ({"user_id": "nobody"}, {"session": session("empty", [])}):
        response = recommend(served, k=5, **subject)
        assert response.fallback
        assert "popular items" in response.fallback_reason
        scores = [i.score for i in response.items]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)


def test_fresh_sessions_with_three_events_are_not_popularity(served: Served, world: World) -> None:
    popular = [i.item_id for i in recommend(served, k=10, user_id="nobody").items]
    same_root = 0
    for n in range(10):
        leaf = world.dataset.items[n * 7].category_path
        browsed = [i.item_id for i in world.dataset.items if i.category_path == leaf][:3]
        response = recommend(served, k=10, session=session(f"fresh-{n}", browsed))
        assert not response.fallback
        ids = [i.item_id for i in response.items]
        assert ids != popular and not set(ids) & set(browsed)
        top_root = Counter(i.category_path[0] for i in response.items).most_common(1)[0][0]
        same_root += top_root == leaf[0]
    # each session browsed one leaf category; most lean to its subtree (chance: 1 in 5)
    assert same_root >= 5


def test_similar_items_exclude_the_item_itself(served: Served, world: World) -> None:
    item = world.dataset.items[3].item_id
    response = recommend(served, k=5, item_id=item)
    assert item not in [i.item_id for i in response.items]
    assert len(response.items) == 5


def test_category_filter_and_exclusions(served: Served, world: World) -> None:
    user = user_with_most_items(world)
    root = world.dataset.items[0].category_path[0]
    first = recommend(served, k=5, user_id=user)
    response = served.stub.Recommend(
        pb.RecommendRequest(
            subject=pb.Subject(user_id=user),
            k=5,
            category=root,
            exclude_item_ids=[first.items[0].item_id],
        )
    )
    assert all(i.category_path[0] == root for i in response.items)
    assert first.items[0].item_id not in [i.item_id for i in response.items]


def test_a_batch_answers_each_query_as_it_would_be_answered_alone(
    served: Served, world: World
) -> None:
    rec = served.serving.recommender
    user = user_with_most_items(world)
    root = world.dataset.items[0].category_path[0]
    clicks = tuple(SessionEvent(i.item_id, Behaviour.CLICK, 1.8e9) for i in world.dataset.items[:3])
    users = Subject(SubjectKind.USER, user)
    queries = [
        Query(users, 7),
        Query(users, 5, category=root),  # the same subject twice, filtered
        Query(Subject(SubjectKind.USER, "nobody"), 4),  # falls back
        Query(Subject(SubjectKind.ITEM, world.dataset.items[3].item_id), 6),
        Query(Subject(SubjectKind.ITEM, "no-such-item"), 6),  # NOT_FOUND, alone
        Query(users, 5_000),  # k too large, alone
        Query(Subject(SubjectKind.USER, " "), 5),  # the store refuses the key: alone
        Query(Subject(SubjectKind.SESSION, "batch-session", clicks), 8, exclude=frozenset("x")),
        Query(Subject(SubjectKind.SESSION, "", clicks[:1]), 3, include_seen=True),
    ]
    answers = rec.recommend_many(queries)
    assert isinstance(answers[4], NotFound)
    assert isinstance(answers[5], BadRequest) and isinstance(answers[6], BadRequest)
    for query, answer in zip(queries, answers, strict=True):
        if isinstance(answer, Exception):
            with pytest.raises(type(answer)):
                rec.recommend(query)
            continue
        alone = rec.recommend(query)
        assert [i.item_id for i in answer.items] == [i.item_id for i in alone.items]
        np.testing.assert_allclose(
            [i.score for i in answer.items], [i.score for i in alone.items], rtol=1e-5
        )
        assert (answer.fallback, answer.fallback_reason) == (alone.fallback, alone.fallback_reason)
        assert len(answer.items) == query.k
    assert all(i.category_path[0] == root for i in answers[1].items)  # type: ignore[union-attr]


def test_score_items_agrees_with_recommend_and_names_unknown_ids(
    served: Served, world: World
) -> None:
    user = user_with_most_items(world)
    top = recommend(served, k=3, user_id=user).items
    scored = served.stub.ScoreItems(
        pb.ScoreItemsRequest(
            subject=pb.Subject(user_id=user), item_ids=[i.item_id for i in top] + ["no-such"]
        )
    )
    assert scored.unknown_item_ids == ["no-such"]
    assert [s.score for s in scored.items] == pytest.approx([i.score for i in top], rel=1e-5)


def test_explain_paths_start_at_the_subject_and_match_their_cypher(
    served: Served, world: World
) -> None:
    user = user_with_most_items(world)
    item = recommend(served, k=1, user_id=user).items[0].item_id
    response = served.stub.Explain(
        pb.ExplainRequest(subject=pb.Subject(user_id=user), item_id=item, max_paths=4)
    )
    assert 0 < len(response.paths) <= 4
    params = json.loads(response.cypher_params_json)
    assert response.cypher.count("MATCH p =") == len(response.paths)
    for i, path in enumerate(response.paths):
        assert (path.nodes[0].label, path.nodes[0].id) == ("User", user)
        assert path.relationships[0] in ("VIEWED", "CLICKED", "CARTED", "PURCHASED")
        assert [params[f"p{i}n{h}"] for h in range(len(path.nodes))] == [n.id for n in path.nodes]
        assert len(path.relationships) == len(path.nodes) - 1
    reaching = [p for p in response.paths if p.nodes[-1].id == item]
    assert reaching, "at least one path links the user's history to the item"
    assert response.browser_url.startswith("http://127.0.0.1:7474/browser/?dbms=neo4j")
    assert "&cmd=edit&arg=MATCH" in response.browser_url


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (
            pb.ExplainRequest(subject=pb.Subject(user_id="u1"), item_id="no-such"),
            grpc.StatusCode.NOT_FOUND,
            "not in the catalogue",
        ),
        (
            pb.ExplainRequest(subject=pb.Subject(item_id="p1"), item_id="p2"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "user or a session",
        ),
        (
            pb.ExplainRequest(subject=pb.Subject(user_id="u1")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "item_id is empty",
        ),
    ],
)
def test_explain_errors(
    served: Served, request_: pb.ExplainRequest, code: grpc.StatusCode, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        served.stub.Explain(request_)
    assert failure.value.code() is code
    assert message in failure.value.details()


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.RecommendRequest(), "subject is required"),
        (pb.RecommendRequest(subject=pb.Subject(user_id="")), "user_id is empty"),
        (pb.RecommendRequest(subject=pb.Subject(user_id="x" * 300)), "longer than 256"),
        (pb.RecommendRequest(subject=pb.Subject(user_id="u1"), k=100_000), "k must be"),
        (pb.RecommendRequest(subject=pb.Subject(item_id="no-such")), "not in the catalogue"),
        (pb.RecommendRequest(subject=pb.Subject(user_id="u1"), category="a//b"), "category"),
        (
            pb.RecommendRequest(
                subject=pb.Subject(session=pb.SessionContext(session_id="s", events=[pb.Event()]))
            ),
            "events[0].item_id is empty",
        ),
        (
            pb.RecommendRequest(
                subject=pb.Subject(
                    session=pb.SessionContext(
                        session_id="s", events=[pb.Event(item_id="p1", type=9)]
                    )
                )
            ),
            "type must be",
        ),
    ],
)
def test_bad_requests_get_a_useful_message(
    served: Served, request_: pb.RecommendRequest, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        served.stub.Recommend(request_)
    assert failure.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert message in failure.value.details()


def test_undecodable_bytes_are_invalid_argument(served: Served) -> None:
    call = served.channel.unary_unary("/graphrec.v1.Recommender/Recommend")
    with pytest.raises(grpc.RpcError) as failure:
        call(b"\xff\xff\xff\xff")
    assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_health_and_reflection(served: Served) -> None:
    health = health_pb2_grpc.HealthStub(served.channel)
    status = health.Check(health_pb2.HealthCheckRequest(service="graphrec.v1.Recommender"))
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    answers = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert "graphrec.v1.Recommender" in names


def test_deadline_is_honoured_not_internal(served: Served, world: World) -> None:
    user = user_with_most_items(world)
    with pytest.raises(grpc.RpcError) as failure:
        served.stub.Recommend(pb.RecommendRequest(subject=pb.Subject(user_id=user)), timeout=1e-4)
    # the client's clock ends it, or the server sheds it as unanswerable in time
    assert failure.value.code() in (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )


def test_metrics_count_requests_and_freshness(served: Served, world: World) -> None:
    recommend(served, k=3, user_id=user_with_most_items(world))
    registry = served.serving.metrics.registry
    ok = registry.get_sample_value(
        "graphrec_request_seconds_count", {"method": "Recommend", "code": "OK"}
    )
    assert ok and ok >= 1
    assert registry.get_sample_value("graphrec_freshness_seconds_count")
    assert (
        registry.get_sample_value(
            "graphrec_model_info", {"version": served.serving.registry.version or ""}
        )
        == 1.0
    )


def test_scores_are_finite(served: Served, world: World) -> None:
    response = recommend(served, k=50, user_id=user_with_most_items(world))
    assert np.isfinite([i.score for i in response.items]).all()


def test_fallback_uses_the_trending_counts_when_given(served: Served, world: World) -> None:
    ranking = [(i.item_id, float(100 - n)) for n, i in enumerate(world.dataset.items[20:40])]
    rec = Recommender(
        served.store, served.serving.registry.current, popular=lambda k, category: ranking[:k]
    )
    got = rec.recommend(
        Query(Subject(SubjectKind.USER, "nobody"), k=5, exclude=frozenset({ranking[0][0]}))
    )
    assert got.fallback and "trending items" in got.fallback_reason
    assert [i.item_id for i in got.items] == [item for item, _ in ranking[1:6]]

    def down(k: int, category: str) -> list[tuple[str, float]]:
        raise OSError("trending app unreachable")

    rec = Recommender(served.store, served.serving.registry.current, popular=down)
    got = rec.recommend(Query(Subject(SubjectKind.USER, "nobody"), k=5))
    assert got.fallback and "store counts" in got.fallback_reason and len(got.items) == 5


def test_oversized_requests_are_refused(served: Served) -> None:
    huge = pb.RecommendRequest(subject=pb.Subject(user_id="u1"), category="x" * (2 << 20))
    with pytest.raises(grpc.RpcError) as failure:
        served.stub.Recommend(huge)
    assert failure.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_cli_clients_talk_to_the_server(served: Served, world: World) -> None:
    from typer.testing import CliRunner

    from graphrec.cli import app

    address = f"127.0.0.1:{served.serving.server.port}"
    user = user_with_most_items(world)
    runner = CliRunner()
    shown = runner.invoke(app, ["recommend", "--user", user, "-k", "3", "--address", address])
    assert shown.exit_code == 0, shown.output
    top = recommend(served, k=3, user_id=user).items
    assert all(i.item_id in shown.output for i in top)
    why = runner.invoke(
        app, ["explain", "--user", user, "--item", top[0].item_id, "--address", address]
    )
    assert why.exit_code == 0, why.output
    assert "MATCH p = (:User {id: $p0n0})" in why.output and "Neo4j Browser:" in why.output
    bad = runner.invoke(app, ["recommend", "--item", "no-such", "--address", address])
    assert bad.exit_code == 1 and "NOT_FOUND" in bad.output


def test_explain_a_session_given_only_as_request_events(served: Served, world: World) -> None:
    clicks = [i.item_id for i in world.dataset.items[:3]]
    events = session("s-only-events", clicks)
    item = recommend(served, k=1, session=events).items[0].item_id
    response = served.stub.Explain(
        pb.ExplainRequest(subject=pb.Subject(session=events), item_id=item, max_paths=3)
    )
    assert 0 < len(response.paths) <= 3
    for path in response.paths:
        assert (path.nodes[0].label, path.nodes[0].id) == ("Session", "s-only-events")
        assert path.nodes[1].id in clicks
    assert ":Session" not in response.cypher  # the graph does not hold the session
    assert response.cypher.count("MATCH p = (:Item") == len(response.paths)


def test_a_session_of_unknown_items_falls_back_saying_why(served: Served) -> None:
    response = recommend(served, k=4, session=session("s-unknown", ["no-such-1", "no-such-2"]))
    assert response.fallback and len(response.items) == 4
    assert "none of the session's items is in the catalogue" in response.fallback_reason


def test_an_unknown_category_is_not_found_by_name(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        served.stub.Recommend(
            pb.RecommendRequest(subject=pb.Subject(user_id="u1"), category="no/such/shelf")
        )
    assert failure.value.code() is grpc.StatusCode.NOT_FOUND
    assert "'no/such/shelf'" in (failure.value.details() or "")

"""Hypothesis-generated malformed requests never crash the server nor come back INTERNAL."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protos import graphrec_pb2 as pb
from tests.serving.conftest import Served

CALLER_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
}
ids = st.one_of(
    st.sampled_from(["", " ", "u1", "p1", "p3", "s0-1", "face", "face/serums", "x" * 257]),
    st.text(max_size=40),
)
events = st.builds(
    pb.Event,
    event_id=ids,
    item_id=ids,
    type=st.integers(-5, 10),
    ts=st.builds(Timestamp, seconds=st.integers(-(2**40), 2**40), nanos=st.integers(0, 10**9 - 1)),
)
subjects = st.one_of(
    st.just(pb.Subject()),
    st.builds(lambda v: pb.Subject(user_id=v), ids),
    st.builds(lambda v: pb.Subject(item_id=v), ids),
    st.builds(
        lambda sid, evs: pb.Subject(session=pb.SessionContext(session_id=sid, events=evs)),
        ids,
        st.lists(events, max_size=6),
    ),
)
recommends = st.builds(
    pb.RecommendRequest,
    subject=subjects,
    k=st.integers(0, 2**32 - 1),
    category=ids,
    exclude_item_ids=st.lists(ids, max_size=5),
    include_seen=st.booleans(),
)
scores = st.builds(pb.ScoreItemsRequest, subject=subjects, item_ids=st.lists(ids, max_size=5))
explains = st.builds(
    pb.ExplainRequest, subject=subjects, item_id=ids, max_paths=st.integers(0, 2**32 - 1)
)


def code_of(call, request) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    try:
        call(request, timeout=30)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=recommends)
def test_recommend(served: Served, request: pb.RecommendRequest) -> None:
    assert code_of(served.stub.Recommend, request) in CALLER_CODES


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=scores)
def test_score_items(served: Served, request: pb.ScoreItemsRequest) -> None:
    assert code_of(served.stub.ScoreItems, request) in CALLER_CODES


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=explains)
def test_explain(served: Served, request: pb.ExplainRequest) -> None:
    assert code_of(served.stub.Explain, request) in CALLER_CODES


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200), method=st.sampled_from(["Recommend", "ScoreItems", "Explain"]))
def test_raw_bytes(served: Served, raw: bytes, method: str) -> None:
    call = served.channel.unary_unary(f"/graphrec.v1.Recommender/{method}")
    assert code_of(call, raw) in CALLER_CODES


def test_server_still_answers_after_the_fuzzing(served: Served) -> None:
    r = served.stub.Recommend(pb.RecommendRequest(subject=pb.Subject(user_id="nobody"), k=2))
    assert len(r.items) == 2

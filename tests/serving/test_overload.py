"""Overload: every caller gets an answer or a prompt RESOURCE_EXHAUSTED, never a deadline
that ran out on the server; callers that give up are not errors in the log."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest

from graphstore import NodeKind
from protos import graphrec_pb2 as pb
from serving.server import ServerConfig
from tests.serving.conftest import World, close, serve

SLOW_BATCH_S = 0.05  # the worker, slowed: every batch takes at least this long


@contextmanager
def slowed(recommender: object, method: str) -> Iterator[None]:
    """The recommender's ``method`` takes at least ``SLOW_BATCH_S`` a call while inside."""
    real = getattr(recommender, method)

    def slow(*args: Any) -> Any:
        time.sleep(SLOW_BATCH_S)
        return real(*args)

    setattr(recommender, method, slow)
    try:
        yield
    finally:
        setattr(recommender, method, real)


def test_a_burst_with_short_deadlines_is_answered_or_shed(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    served = serve(world, ServerConfig(address="127.0.0.1:0", workers=1, max_batch=4))
    users = sorted(
        {i.actor.key for i in world.dataset.interactions if i.actor.kind is NodeKind.USER}
    )
    try:
        with slowed(served.serving.recommender, "recommend_many"):
            caplog.set_level(logging.INFO)
            codes: Counter[grpc.StatusCode] = Counter()
            for _ in range(3):  # the first burst also teaches admission the slowed cost
                codes += _burst(
                    [
                        served.stub.Recommend.future(
                            pb.RecommendRequest(subject=pb.Subject(user_id=u), k=5), timeout=0.4
                        )
                        for u in users[:150]
                    ]
                )
        assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage()[:200] for r in errors]
        assert served.serving.server.servicer.admission.inflight == 0
    finally:
        close(served)


def test_calls_the_caller_cancels_or_lets_expire_are_not_errors_in_the_log(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    served = serve(world, ServerConfig(address="127.0.0.1:0", workers=1, max_batch=2))
    request = pb.RecommendRequest(subject=pb.Subject(user_id="nobody"), k=3)
    try:
        with slowed(served.serving.recommender, "recommend_many"):
            caplog.set_level(logging.INFO)
            calls = [served.stub.Recommend.future(request, timeout=5) for _ in range(40)]
            for call in calls[::2]:
                call.cancel()  # mid-queue or mid-batch
            expiring = [served.stub.Recommend.future(request, timeout=0.02) for _ in range(40)]
            for call in calls[1::2] + expiring:
                try:
                    call.result()
                except grpc.RpcError as exc:
                    assert exc.code() in (
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        grpc.StatusCode.DEADLINE_EXCEEDED,  # the client's own clock, 20 ms
                    )
        assert len(served.stub.Recommend(request, timeout=10).items) == 3
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage()[:300] for r in errors]
        assert served.serving.server.servicer.admission.inflight == 0
    finally:
        close(served)


def _burst(calls: list[Any]) -> Counter[grpc.StatusCode]:
    codes: Counter[grpc.StatusCode] = Counter()
    for call in calls:
        try:
            call.result()
            codes[grpc.StatusCode.OK] += 1
        except grpc.RpcError as exc:
            codes[exc.code()] += 1
    return codes


@pytest.mark.parametrize("method", ["ScoreItems", "Explain"])
def test_unbatched_methods_are_answered_or_shed_under_a_burst(
    method: str, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    served = serve(world, ServerConfig(address="127.0.0.1:0", workers=1))
    name = {"ScoreItems": "score_items", "Explain": "explain"}[method]
    users = sorted(
        {i.actor.key for i in world.dataset.interactions if i.actor.kind is NodeKind.USER}
    )[:40]
    requests = []
    for user in users:
        subject = pb.Subject(user_id=user)
        top = served.stub.Recommend(pb.RecommendRequest(subject=subject, k=3), timeout=10)
        if method == "ScoreItems":
            requests.append(
                pb.ScoreItemsRequest(subject=subject, item_ids=[i.item_id for i in top.items])
            )
        else:
            requests.append(pb.ExplainRequest(subject=subject, item_id=top.items[0].item_id))
    call = getattr(served.stub, method)
    try:
        with slowed(served.serving.recommender, name):
            caplog.set_level(logging.INFO)
            # A first burst teaches admission the slowed cost of the method (until a call of
            # it has finished, it is guessed from Recommend's, and callers may still run out).
            _burst([call.future(r, timeout=0.4) for r in requests * 3])
            codes: Counter[grpc.StatusCode] = Counter()
            for _ in range(2):
                codes += _burst([call.future(r, timeout=0.4) for r in requests * 3])
        assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage()[:200] for r in errors]
        assert served.serving.server.servicer.admission.inflight == 0
    finally:
        close(served)

"""Admission control on the event loop: authenticate, then shed what cannot finish in time.

Past ``max_inflight`` requests in progress, or when the queue ahead would outlast the
caller's deadline, a request is refused with RESOURCE_EXHAUSTED at once instead of queueing
work that cannot finish in time. A request admitted on an estimate that proved wrong is shed
from the queue before its deadline (``Admission.late``; Recommend in ``serving.batching``,
ScoreItems and Explain in ``serving.servicer``): callers get an answer or
RESOURCE_EXHAUSTED, not a deadline that ran out on the server.
"""

from __future__ import annotations

import hmac

import grpc
from prometheus_client import Counter

from serving.status import Failure

LOOP_S = 0.005  # the event loop's time to hand over a batch and send its answers
SAFETY = 1.5  # batch times vary; a request shed a little early beats one answered late


class Admission:
    """Counts requests in progress and estimates one request's worker time."""

    def __init__(self, token: str, max_inflight: int, workers: int, shed: Counter) -> None:
        self._token = f"Bearer {token}".encode() if token else None
        self.max_inflight = max_inflight
        self.workers = workers
        self.inflight = 0
        self.service_s = 0.005  # running estimate of one request's worker time
        self.batch_time_s = 0.005  # and of one batch's
        self.call_time_s: dict[str, float] = {}  # and of one call of an unbatched method
        self._shed = shed

    def admit(
        self, authorization: str | bytes, time_remaining: float | None, method: str = ""
    ) -> None:
        """Raise ``Failure`` unless a request with this authorization header value and this
        much time left may start now (a call of an unbatched ``method`` counted at that
        method's cost)."""
        if self._token is not None:
            value = authorization.encode() if isinstance(authorization, str) else authorization
            if not hmac.compare_digest(value, self._token):
                raise Failure(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        cost = self.call_time_s.get(method, self.service_s)
        if would_shed(self.inflight, self.max_inflight, self.workers, cost, time_remaining):
            self._shed.inc()
            raise Failure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"server busy ({self.inflight} requests in progress); retry with back-off",
            )

    def late(self) -> Failure:
        """The failure of an admitted request that can no longer be answered in time."""
        self._shed.inc()
        return Failure(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "server busy: the request would not be answered before its deadline; "
            "retry with back-off",
        )

    def batch_s(self, requests: int) -> float:
        """Expected worker time of a batch of ``requests`` (no less than a typical batch's:
        a batch has a fixed cost too), with a margin, plus the event loop's share."""
        return SAFETY * max(requests * self.service_s, self.batch_time_s) + LOOP_S

    def call_s(self, method: str) -> float:
        """Expected time of one call of an unbatched ``method`` (ScoreItems, Explain), with a
        margin, plus the event loop's share."""
        return SAFETY * self.call_time_s.get(method, self.service_s) + LOOP_S

    def observe_call(self, method: str, seconds: float) -> None:
        """One call's worker time per unbatched method (an Explain costs more than a
        Recommend's share of a batch): up at once to a slower call, down slowly (a moving
        average), so a call is shed rather than taken up to overrun its deadline."""
        before = self.call_time_s.get(method, seconds)
        self.call_time_s[method] = max(seconds, before + 0.05 * (seconds - before))
        self.observe_service(seconds, 1)

    def observe_service(self, seconds: float, requests: int) -> None:
        """Moving averages of the worker time one request takes (in a batch: its share) and
        of a batch's."""
        self.service_s += 0.05 * (seconds / max(1, requests) - self.service_s)
        self.batch_time_s += 0.05 * (seconds - self.batch_time_s)


def would_shed(
    inflight: int, max_inflight: int, workers: int, service_s: float, remaining: float | None
) -> bool:
    """True when the server is full, or when the requests in progress ahead of this one
    (their worker time shared among ``workers``) and its own would outlast its deadline
    (``remaining`` seconds; None for none). An idle server admits every request."""
    if inflight >= max_inflight:
        return True
    expected = (inflight / workers + 1) * service_s + LOOP_S
    return bool(inflight) and remaining is not None and expected > remaining

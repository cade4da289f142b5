"""Admission control on the event loop: authenticate, then shed what cannot finish in time.

Past ``max_inflight`` requests in progress, or when the queue ahead would outlast the
caller's deadline, a request is refused with RESOURCE_EXHAUSTED at once instead of queueing
work that cannot finish in time.
"""

from __future__ import annotations

import hmac

import grpc
from prometheus_client import Counter

from serving.status import Failure


class Admission:
    """Counts requests in progress and estimates one request's worker time."""

    def __init__(self, token: str, max_inflight: int, workers: int, shed: Counter) -> None:
        self._token = f"Bearer {token}".encode() if token else None
        self.max_inflight = max_inflight
        self.workers = workers
        self.inflight = 0
        self.service_s = 0.005  # running estimate of one request's worker time
        self._shed = shed

    def admit(self, authorization: str | bytes, time_remaining: float | None) -> None:
        """Raise ``Failure`` unless a request with this authorization header value and this
        much time left may start now."""
        if self._token is not None:
            value = authorization.encode() if isinstance(authorization, str) else authorization
            if not hmac.compare_digest(value, self._token):
                raise Failure(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        if would_shed(
            self.inflight, self.max_inflight, self.workers, self.service_s, time_remaining
        ):
            self._shed.inc()
            raise Failure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"server busy ({self.inflight} requests in progress); retry with back-off",
            )

    def observe_service(self, seconds: float, requests: int) -> None:
        """Moving average of the worker time one request takes (in a batch: its share)."""
        self.service_s += 0.05 * (seconds / max(1, requests) - self.service_s)


def would_shed(
    inflight: int, max_inflight: int, workers: int, service_s: float, remaining: float | None
) -> bool:
    """True when the server is full, or when a request would only wait out its deadline
    (``remaining`` seconds; None for none) in the queue ahead of a free worker."""
    if inflight >= max_inflight:
        return True
    queued = inflight // workers  # requests ahead of a free worker
    return bool(queued) and remaining is not None and (queued + 1) * service_s > remaining

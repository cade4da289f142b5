"""Background loops kept running through failures, and their state shown: the server's
trending refresher and change feed, the periodic trainer.

``run_forever`` runs a loop's work again after each failure, waiting longer after each
failure in a row (exponential back-off with jitter, so several servers do not retry in step)
and starting over once the work has succeeded. ``LoopState`` shows each loop in Prometheus
(``graphrec_background_up``, ``graphrec_background_failures_total``,
``graphrec_background_last_success_timestamp_seconds``, labelled by ``loop``) and in gRPC
health under a service name of its own, ``graphrec.v1.Recommender/<loop>``.

A loop of the server that cannot work does not turn the whole service NOT_SERVING: with the
change feed cut off from its event log, Recommend still answers from the graph's live
neighbourhoods, and only the re-embedding of changed items waits (with trending down, the
popularity fallback uses the store's counts). A load balancer taking the server out
for that would turn stale items into no answers. So the service's own health ("" and
``graphrec.v1.Recommender``) stays the server's to set (model loaded, store reachable), and
the loop's name tells operators and probes that want freshness.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)
SetHealth = Callable[[str, bool], None]  # (health service name, serving?)
HEALTH_PREFIX = "graphrec.v1.Recommender/"


class LoopMetrics:
    """The background loops' metrics on one registry (one set per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "graphrec_background_up",
            "1 while the background loop works, 0 while it retries after a failure.",
            ["loop"],
            registry=registry,
        )
        self.failures = Counter(
            "graphrec_background_failures",
            "Failures of the background loop, each followed by a retry.",
            ["loop"],
            registry=registry,
        )
        self.last_success = Gauge(
            "graphrec_background_last_success_timestamp_seconds",
            "Unix time the background loop last did its work.",
            ["loop"],
            registry=registry,
        )


class LoopState:
    """Up or down, failures in a row, last success of one loop; reported as it changes."""

    def __init__(
        self, name: str, metrics: LoopMetrics, set_health: SetHealth | None = None
    ) -> None:
        self.name = name
        self.health_name = HEALTH_PREFIX + name
        self._up = metrics.up.labels(loop=name)
        self._failures = metrics.failures.labels(loop=name)
        self._last_success = metrics.last_success.labels(loop=name)
        self._set_health = set_health
        self.is_up = False
        self.failures_in_a_row = 0
        self._report(False)

    def succeeded(self) -> None:
        self._last_success.set(time.time())
        self.failures_in_a_row = 0
        if not self.is_up:
            log.info("%s: working", self.name)
            self._report(True)

    def failed(self) -> None:
        self._failures.inc()
        self.failures_in_a_row += 1
        if self.is_up:
            self._report(False)

    def _report(self, up: bool) -> None:
        self.is_up = up
        self._up.set(1 if up else 0)
        if self._set_health is not None:
            try:
                self._set_health(self.health_name, up)
            except Exception:  # the server may be stopping; the metric still tells
                log.debug("health of %s not set", self.name, exc_info=True)


def run_forever(
    work: Callable[[], None],
    state: LoopState,
    stopping: threading.Event,
    first_wait_s: float = 0.5,
    max_wait_s: float = 30.0,
) -> None:
    """Call ``work`` until it returns or ``stopping`` is set, again after each failure.

    ``work`` calls ``state.succeeded()`` whenever it gets something done; that resets the
    back-off. Each failure is logged on one line with the wait before the next try."""
    while not stopping.is_set():
        try:
            work()
            return
        except Exception as exc:
            state.failed()
            wait = min(max_wait_s, first_wait_s * 2 ** (state.failures_in_a_row - 1))
            wait *= random.uniform(0.5, 1.0)
            log.warning(
                "%s failed (%s: %s); retrying in %.1f s",
                state.name,
                type(exc).__name__,
                " ".join(str(exc).split()) or "-",
                wait,
            )
            log.debug("%s failure", state.name, exc_info=True)
            stopping.wait(wait)

"""Prometheus metrics of the service, on a registry of its own (several servers per process
in tests must not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from serving.loops import LoopMetrics

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0, 3600.0)


class Metrics:
    """Latency per method and status, shed requests, batch sizes, freshness, the model
    version in use, items re-embedded and how stale the item table is, whether the graph
    store answers, the background loops' state."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "graphrec_request_seconds",
            "Time to answer a request, by method and status code.",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.shed = Counter(
            "graphrec_requests_shed",
            "Requests refused with RESOURCE_EXHAUSTED because the queue was full.",
            registry=self.registry,
        )
        self.batch = Histogram(
            "graphrec_recommend_batch_size",
            "Recommend requests answered together by one worker.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.freshness = Histogram(
            "graphrec_freshness_seconds",
            "Event time to the first response that reflects the event, per subject.",
            buckets=FRESHNESS_BUCKETS,
            registry=self.registry,
        )
        self.model = Info(
            "graphrec_model", "The model version being served.", registry=self.registry
        )
        self.items = Gauge(
            "graphrec_item_table_size",
            "Items in the served embedding table.",
            registry=self.registry,
        )
        self.refreshed = Counter(
            "graphrec_items_refreshed",
            "Items re-embedded from their live neighbourhood after a change.",
            registry=self.registry,
        )
        self.feed_staleness = Gauge(
            "graphrec_change_feed_staleness_seconds",
            "Age of the oldest graph change the change feed has read but the item table does "
            "not reflect yet (since its commit); 0 when caught up.",
            registry=self.registry,
        )

        self.store_up = Gauge(
            "graphrec_store_up",
            "1 while the graph store answers its health probe, else 0 (requests then skip "
            "the store and health is NOT_SERVING).",
            registry=self.registry,
        )
        self.store_down_answers = Counter(
            "graphrec_store_unavailable_answers",
            "Recommend answers given without the graph store because it was unavailable.",
            registry=self.registry,
        )

        self.loops = LoopMetrics(self.registry)

    def serve_http(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics over HTTP on ``host:port``."""
        serve_metrics(self.registry, port, host)


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
    """Expose ``registry`` at http://host:port/metrics (a daemon thread); an ``OSError``
    naming the address when it cannot listen there."""
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc

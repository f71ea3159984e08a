"""Prometheus metrics: requests and latency by route and status, documents, bytes, rejections, in-flight.

One registry per app (no process-global state). With several workers each process answers for itself
(a scrape sees one worker); label children are cached because ``.labels()`` is a dict walk per call.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("segur_requests", "HTTP requests answered", ["route", "method", "status"], registry=r)
        self.latency = Histogram("segur_request_seconds", "Time to answer a request", ["route", "method"],
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("segur_in_flight_requests", "Requests being worked on", registry=r)
        self.documents = Counter("segur_documents_stored", "Documents newly stored", registry=r)
        self.document_bytes = Counter("segur_document_bytes_stored", "Bytes of newly stored documents", registry=r)
        self.rejections = Counter("segur_rejections", "Requests refused, by reason", ["reason"], registry=r)
        self.commit_batch = Histogram("segur_commit_batch_writes", "Writes per group-commit transaction",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r)
        self.commit_seconds = Histogram("segur_commit_seconds", "Time to run and commit one group transaction",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self._children: dict[tuple, tuple] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(route, method, str(status)), self.latency.labels(route, method))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def reject(self, reason: str) -> None:
        self.rejections.labels(reason).inc()

    def observe_commit(self, writes: int, seconds: float) -> None:
        self.commit_batch.observe(writes)
        self.commit_seconds.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware timing every HTTP request; the route label is the matched path template."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500
        metrics = self.metrics

        async def send_with_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            metrics.in_flight.dec()
            route = scope.get("route")
            metrics.observe_request(getattr(route, "path", "unmatched"), scope["method"], status,
                                    time.perf_counter() - started)

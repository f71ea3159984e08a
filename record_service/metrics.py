"""Prometheus metrics: requests and latency by route and status, documents, bytes, rejections, in-flight,
and the worker's CPU attributed to calls (:mod:`record_service.cpu_share`).

One registry per app (no process-global state); label children are cached because ``.labels()`` is a
dict walk per call. With several worker processes a scrape reaches one of them, so every worker keeps
its figures in prometheus_client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, a directory
``segur serve`` makes fresh for each run) and ``/metrics`` answers the sum over all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from record_service.cpu_share import CpuShare, call_of

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self._shared = os.environ.get(MULTIPROCESS_DIRECTORY)
        if self._shared:
            # prometheus_client picks its value store when first imported: make sure it is the shared one
            # even if something imported it before the variable was set
            values.ValueClass = values.MultiProcessValue()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("segur_requests", "HTTP requests answered", ["route", "method", "status"], registry=r)
        self.latency = Histogram("segur_request_seconds", "Time to answer a request", ["route", "method"],
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("segur_in_flight_requests", "Requests being worked on", registry=r,
                               multiprocess_mode="livesum")
        self.documents = Counter("segur_documents_stored", "Documents newly stored", registry=r)
        self.document_bytes = Counter("segur_document_bytes_stored", "Bytes of newly stored documents", registry=r)
        # where a retrieve's bytes came from: the page cache, read on the event loop, or a thread (a miss)
        self.document_reads = Counter("segur_document_reads", "Document files read, by source: 'cache' (page-cached,"
                                      " on the event loop) or 'thread' (not all cached: read on a thread)",
                                      ["source"], registry=r)
        self.reads_cached = self.document_reads.labels("cache")
        self.reads_on_thread = self.document_reads.labels("thread")
        self.rejections = Counter("segur_rejections", "Requests refused, by reason", ["reason"], registry=r)
        self.commit_batch = Histogram("segur_commit_batch_writes", "Writes per group-commit transaction",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r)
        self.commit_seconds = Histogram("segur_commit_seconds", "Time to run and commit one group transaction",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        # the CPU per call (record_service.cpu_share): seconds attributed to the finished requests of each call
        # type, their count, and the CPU spent while no request was in flight (sum of all = the workers' CPU)
        self.request_cpu = Counter("segur_request_cpu_seconds", "Worker CPU attributed to requests (fair share "
                                   "among the requests in flight), seconds", ["route", "call"], registry=r)
        self.calls = Counter("segur_calls", "Requests answered, by call type", ["call"], registry=r)
        self.unattributed_cpu = Counter("segur_unattributed_cpu_seconds", "Worker CPU spent while no request "
                                        "was in flight, seconds", registry=r)
        self.cpu_share = CpuShare(on_idle=self.unattributed_cpu.inc)
        self._children: dict[tuple, tuple] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float,
                        call: str | None = None, cpu_s: float = 0.0) -> None:
        """One answered request: its latency (``seconds``) and attributed CPU (``cpu_s``, seconds) under its
        ``call`` (by default the call its route and method name, see :func:`record_service.cpu_share.call_of`)."""
        key = (route, method, status, call)
        children = self._children.get(key)
        if children is None:
            named = call if call is not None else call_of({}, route, method)
            children = (self.requests.labels(route, method, str(status)), self.latency.labels(route, method),
                        self.request_cpu.labels(route, named), self.calls.labels(named))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        children[2].inc(cpu_s)
        children[3].inc()

    async def sample_in_flight(self, in_flight: Callable[[], int], every_s: float = 0.1) -> None:
        """Keep the in-flight gauge at ``in_flight()``, read every ``every_s`` (until cancelled).

        Sampled rather than moved up and down by every request: with several workers each change of
        a metric is a write to a shared file, and two more per request cost the bare endpoint 8 %.
        """
        while True:
            self.in_flight.set(in_flight())
            await asyncio.sleep(every_s)

    def close(self) -> None:
        """This worker is stopping: its live gauges no longer count (a restarted worker starts its own)."""
        if self._shared:
            mark_process_dead(os.getpid(), self._shared)

    def reject(self, reason: str) -> None:
        self.rejections.labels(reason).inc()

    def observe_commit(self, writes: int, seconds: float) -> None:
        self.commit_batch.observe(writes)
        self.commit_seconds.observe(seconds)

    def exposition(self) -> bytes:
        if not self._shared:
            return generate_latest(self.registry)
        _forget_dead_workers(self._shared)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, self._shared)
        return generate_latest(every_worker)


def _forget_dead_workers(directory: str) -> None:
    """Drop the live gauges of workers that died without :meth:`Metrics.close` (SIGKILL, a crash): a
    replaced worker's last in-flight figure must not count for ever. Their counters stay summed."""
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):  # another worker's scrape removed it first
                mark_process_dead(int(pid), directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class MetricsMiddleware:
    """ASGI middleware timing every HTTP request and attributing the worker's CPU to it (fair share among the
    requests in flight, :mod:`record_service.cpu_share`); the route label is the matched path template, the
    call label the call type (:func:`record_service.cpu_share.call_of`)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500
        metrics = self.metrics
        cpu = metrics.cpu_share
        token = cpu.start()

        async def send_with_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            cpu_s = cpu.end(token)
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            metrics.observe_request(route, method, status, time.perf_counter() - started,
                                    call_of(scope, route, method), cpu_s)

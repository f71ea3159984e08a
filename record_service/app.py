"""The ASGI app factory: routes, error handling, overload control, metrics, and the store's lifetime.

No module-level state: every worker process builds its own app (store connections, writer thread,
metrics registry) from :class:`~record_service.settings.Settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from identity.structure import trusted_certificates
from identity.vihf import VihfVerifier
from record_service.admission import AdmissionMiddleware, BodyLimits
from record_service.auth import TokenVerifier, load_or_create_key
from record_service.bulk_load import BulkLoad
from record_service.capability import capability_statement
from record_service.endpoints import Endpoints, fhir
from record_service.xds.endpoints import XdsEndpoints
from record_service.metrics import Metrics, MetricsMiddleware
from record_service.outcomes import ServiceError, operation_outcome, storage_fault
from record_service.settings import Settings
from record_service.storage import open_store
from record_service.worker import tune_garbage_collector

_log = logging.getLogger("record_service")
_HEALTHY = b'{"status":"ok"}'


def create_app(settings: Settings):
    """The record service as an ASGI app (Starlette inside admission and metrics middleware)."""
    metrics = Metrics()
    store = open_store(settings, on_commit=metrics.observe_commit)
    blob_threads = ThreadPoolExecutor(settings.blob_threads, thread_name_prefix="blob-writer")
    # reads of documents not in the page cache: a pool of their own, so they never queue behind fsyncs
    blob_reads = ThreadPoolExecutor(settings.blob_read_threads, thread_name_prefix="blob-reader")
    endpoints = Endpoints(settings, store, TokenVerifier(load_or_create_key(settings.key_file)), metrics, blob_threads,
                          blob_reads)
    # the XDS front's VIHF checks: assertions signed by the structure beside the key file (`segur vihf --key`)
    vihf_verifier = VihfVerifier(trusted_certificates(settings.key_file))
    xds = XdsEndpoints(endpoints, vihf_verifier)
    bulk = BulkLoad(endpoints)  # the operator's pre-load (segur seed), see record_service.bulk_load
    capability = capability_statement()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await store.open()
        sampler = asyncio.ensure_future(metrics.sample_in_flight(lambda: admission.in_flight))
        tune_garbage_collector()  # the whole app is built: see record_service.worker
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            metrics.close()
            await store.close()
            blob_threads.shutdown(wait=True)
            blob_reads.shutdown(wait=True)

    async def metadata(request: Request) -> Response:
        return fhir(capability)

    async def health(request: Request) -> Response:
        return Response(_HEALTHY, media_type="application/json")

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=metrics.content_type)

    async def refused(request: Request, error: ServiceError) -> Response:
        metrics.reject(error.reason)
        return fhir(error.outcome(), error.status, error.headers)

    async def http_error(request: Request, error: HTTPException) -> Response:
        metrics.reject("not-found" if error.status_code == 404 else "method")
        code = "not-found" if error.status_code == 404 else "not-supported"
        return fhir(operation_outcome(code, f"{request.method} {request.url.path}: {error.detail}"),
                    error.status_code, dict(error.headers or {}))

    async def crashed(request: Request, error: Exception) -> Response:
        fault = storage_fault(error)  # the storage underneath broke where no handler expected it: 503/507
        if fault is not None:
            _log.error("storage fault on %s %s: %s", request.method, request.url.path, error)
            return await refused(request, fault)
        _log.exception("unexpected error on %s %s", request.method, request.url.path)
        metrics.reject("internal")
        return fhir(operation_outcome("exception", "internal error"), 500)

    e = endpoints
    routes = [
        # the router tries routes in order: the reads that make most of the traffic come first
        Route("/DocumentReference", e.find_documents, methods=["GET"]),
        Route("/Binary/{id}", e.retrieve, methods=["GET"]),
        Route("/", e.deposit, methods=["POST"]),
        Route("/DocumentReference/_search", e.search_documents, methods=["POST"]),
        Route("/DocumentReference/{id}", e.read_document, methods=["GET"]),
        Route("/DocumentReference/{id}", e.delete, methods=["DELETE"]),
        Route("/DocumentReference/{id}/$mask", e.mask, methods=["POST"]),
        Route("/DocumentReference/{id}/$unmask", e.unmask, methods=["POST"]),
        Route("/Patient", e.find_patients, methods=["GET"]),  # TD0.2
        Route("/Patient/$block", e.block, methods=["POST"]),
        Route("/Patient/$unblock", e.unblock, methods=["POST"]),
        Route("/Patient/$opt-out", e.opt_out, methods=["POST"]),
        Route("/AuditEvent", e.audit_events, methods=["GET"]),
        # the professionals' IHE XDS.b front (SOAP 1.2), on the same registry
        Route("/xds/iti41", xds.iti41, methods=["POST"]),
        Route("/xds/iti18", xds.iti18, methods=["POST"]),
        Route("/xds/iti43", xds.iti43, methods=["POST"]),
        Route("/xds/td02", xds.td02, methods=["POST"]),
        Route("/$bulk-load", bulk.load, methods=["POST"]),
        Route("/metadata", metadata, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={ServiceError: refused, HTTPException: http_error, Exception: crashed})
    app.state.vihf_verifier = vihf_verifier  # request.app.state.vihf_verifier.verify(assertion) -> Vihf
    admission = AdmissionMiddleware(app, settings.max_in_flight, metrics.reject, max_receiving=settings.max_receiving,
                                    body=BodyLimits(settings.max_body_bytes, settings.body_timeout_s,
                                                    settings.min_body_rate, settings.max_receiving_bytes))
    return MetricsMiddleware(admission, metrics)


def app_from_environment():
    """Granian's factory target: the app for the settings ``segur serve`` put in the environment."""
    return create_app(Settings.from_environment())

"""The bare endpoint that measures this machine's ceiling for the service's server stack.

Same server (Granian), same framework (Starlette), same admission and metrics middleware, the same
worker set-up (``record_service.worker``), one route
that answers "hello" without touching storage or tokens: what the record service could reach if its
own work cost nothing. ``bench/service.py`` compares the service's read rate with it.

A second route answers a constant body the size of the benchmark's documents (100 KB): the ceiling
for a retrieve, whose answer costs the server and the client that much copying whatever the service
does (measured: about half the "hello" rate on its own).
"""

from __future__ import annotations

import contextlib
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from record_service.admission import AdmissionMiddleware
from record_service.metrics import Metrics, MetricsMiddleware
from record_service.settings import Settings
from record_service.worker import tune_garbage_collector

DOCUMENT_BYTES = 100 * 1024  # the size the benchmark deposits and retrieves


def create_hello_app(settings: Settings):
    metrics = Metrics()

    document = os.urandom(DOCUMENT_BYTES)

    async def hello(request: Request) -> Response:
        return Response(b"hello", media_type="text/plain")

    async def hello_document(request: Request) -> Response:
        return Response(document, media_type="application/pdf")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        tune_garbage_collector()
        yield

    app = Starlette(routes=[Route("/hello", hello, methods=["GET"]),
                            Route("/hello-document", hello_document, methods=["GET"])], lifespan=lifespan)
    return MetricsMiddleware(AdmissionMiddleware(app, settings.max_in_flight, metrics.reject), metrics)


def hello_app_from_environment():
    return create_hello_app(Settings.from_environment())

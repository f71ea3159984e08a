"""The bare endpoint that measures this machine's ceiling for the service's server stack.

Same server (Granian), same framework (Starlette), same admission and metrics middleware, one route
that answers "hello" without touching storage or tokens: what the record service could reach if its
own work cost nothing. ``bench/service.py`` compares the service's read rate with it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from record_service.admission import AdmissionMiddleware
from record_service.metrics import Metrics, MetricsMiddleware
from record_service.settings import Settings


def create_hello_app(settings: Settings):
    metrics = Metrics()

    async def hello(request: Request) -> Response:
        return Response(b"hello", media_type="text/plain")

    app = Starlette(routes=[Route("/hello", hello, methods=["GET"])])
    return MetricsMiddleware(AdmissionMiddleware(app, settings.max_in_flight, metrics.reject), metrics)


def hello_app_from_environment():
    return create_hello_app(Settings.from_environment())

"""Overload control: a bound on in-flight requests per worker, past which the answer is 503 at once.

Queueing without limit turns a burst into timeouts for everyone and memory that grows with the
backlog; refusing the excess immediately, with ``Retry-After``, keeps latency and memory bounded for
the requests that are admitted, and the service recovers by itself as soon as the load drops.
Health and metrics stay reachable under overload so that operators can see what is happening.
"""

from __future__ import annotations

from record_service.outcomes import outcome_bytes

_EXEMPT = frozenset({"/health", "/metrics"})
_BODY = outcome_bytes("transient", "the service is at capacity: retry after the delay given in Retry-After")


class AdmissionMiddleware:
    def __init__(self, app, max_in_flight: int, on_reject=None, retry_after_s: int = 1):
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._on_reject = on_reject
        self._headers = [(b"content-type", b"application/fhir+json"), (b"retry-after", str(retry_after_s).encode()),
                         (b"content-length", str(len(_BODY)).encode())]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in _EXEMPT:
            return await self.app(scope, receive, send)
        if self.in_flight >= self.max_in_flight:
            if self._on_reject:
                self._on_reject("overload")
            await send({"type": "http.response.start", "status": 503, "headers": self._headers})
            await send({"type": "http.response.body", "body": _BODY})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

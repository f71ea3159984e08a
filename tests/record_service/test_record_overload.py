"""Overload: past the in-flight bound the service answers 503 with Retry-After at once, and recovers."""

from __future__ import annotations

import socket
import time

from conftest import Service
from record_service.auth import Actor
from segur.identifiers import luhn_complete


def _hold_open(port: int, token: str) -> socket.socket:
    """A deposit whose body never finishes arriving: it stays in flight until the socket closes."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/fhir+json\r\n"
                       + f"Authorization: Bearer {token}\r\n".encode()
                       + b"Content-Length: 100000\r\n\r\n{\"resourceType\":")
    return connection


def test_past_the_bound_503_with_retry_after_then_recovery(tmp_path):
    service = Service(tmp_path, None, "--max-in-flight", "2").start()
    try:
        token = service.token(Actor(rpps=luhn_complete("1234567890"), sector="lab"))
        held = [_hold_open(service.port, token) for _ in range(2)]
        time.sleep(0.3)  # let the server start working on both
        started = time.perf_counter()
        refused = service.call("GET", "/metadata")
        elapsed = time.perf_counter() - started
        assert refused.status == 503, refused
        assert refused.headers.get("retry-after") == "1"
        assert b"OperationOutcome" in refused.body
        assert elapsed < 0.5, "the refusal must be immediate, not queued"
        assert service.call("GET", "/health").status == 200  # operators can still look
        metrics = service.call("GET", "/metrics").body
        assert b'segur_rejections_total{reason="overload"}' in metrics
        assert b"segur_in_flight_requests 2.0" in metrics  # sampled every 0.1 s: the two held deposits
        for connection in held:
            connection.close()
        deadline = time.time() + 5
        while time.time() < deadline and service.call("GET", "/metadata").status == 503:
            time.sleep(0.05)
        assert service.call("GET", "/metadata").status == 200
        time.sleep(0.3)
        assert b"segur_in_flight_requests 0.0" in service.call("GET", "/metrics").body
    finally:
        service.stop()

"""Overload and slow clients on a running service: a body still arriving holds no in-flight slot and is cut
(408, connection closed) when late; past the bound on bodies being received, 503 with Retry-After. The in-flight
bound itself is tested in-process (test_admission): a complete request cannot be held from outside at will."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from conftest import BACKENDS, Service
from record_documents import deposit_bundle, make_ins, professional

_SLOW_POST = ("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/fhir+json\r\n"
              "Authorization: Bearer {token}\r\nContent-Length: 100000\r\n\r\n{{")


def _start(root, backend: str, postgres, *options: str) -> Service:
    db_url = postgres.create_database(f"overload_{uuid.uuid4().hex[:12]}") if backend == "postgresql" else None
    return Service(root, db_url, *options).start()


def _slow_body(port: int, token: str) -> socket.socket:
    """A deposit whose headers are sent, then one byte of its 100 000-byte body."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(_SLOW_POST.format(token=token).encode())
    return connection


def _answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def _metric(service: Service, line_start: bytes) -> float:
    for line in service.call("GET", "/metrics").body.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(b" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_slow_bodies_hold_no_slot_and_are_cut_with_408(tmp_path, postgres, rng, backend):
    service = _start(tmp_path, backend, postgres, "--max-in-flight", "2", "--body-timeout", "1.5")
    slow: list[socket.socket] = []
    try:
        author = professional(rng)
        token = service.token(author)
        slow = [_slow_body(service.port, token) for _ in range(10)]
        time.sleep(0.3)
        assert service.call("GET", "/metadata").status == 200  # at once: the 10 slow bodies took no slot
        deposit = deposit_bundle(make_ins(rng), author.rpps, b"complete deposits are served")
        assert service.call("POST", "/", token, deposit).status in (200, 201)
        time.sleep(0.3)  # the in-flight gauge is sampled every 0.1 s
        assert _metric(service, b"segur_in_flight_requests ") == 0.0
        started = time.monotonic()
        answers = [_answer(connection) for connection in slow]  # each ends with the server closing it
        assert time.monotonic() - started < 5
        for answer in answers:
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b"connection: close" in answer.lower() and b'"OperationOutcome"' in answer
        assert _metric(service, b'segur_rejections_total{reason="body-timeout"}') == 10
        assert service.call("GET", "/metadata").status == 200
    finally:
        for connection in slow:
            connection.close()
        service.stop()


def test_hundreds_of_slow_bodies_do_not_stop_reads_and_are_all_cut(tmp_path, postgres, rng):
    service = _start(tmp_path, "sqlite", postgres, "--max-in-flight", "8", "--body-timeout", "1")
    slow: list[socket.socket] = []
    try:
        token = service.token(professional(rng))
        slow = [_slow_body(service.port, token) for _ in range(300)]
        for _ in range(5):
            assert service.call("GET", "/metadata").status == 200
            time.sleep(0.1)
        started = time.monotonic()
        answers = [_answer(connection) for connection in slow]
        assert time.monotonic() - started < 10
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    finally:
        for connection in slow:
            connection.close()
        service.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_past_the_receiving_bound_503_with_retry_after_then_recovery(tmp_path, postgres, rng, backend):
    service = _start(tmp_path, backend, postgres, "--max-receiving", "2", "--body-timeout", "30")
    slow: list[socket.socket] = []
    try:
        author = professional(rng)
        token = service.token(author)
        slow = [_slow_body(service.port, token) for _ in range(2)]
        time.sleep(0.3)
        deposit = deposit_bundle(make_ins(rng), author.rpps, b"a deposit while two bodies are arriving")
        started = time.perf_counter()
        refused = service.call("POST", "/", token, deposit)
        assert time.perf_counter() - started < 1, "the refusal must be immediate, not queued"
        assert refused.status == 503 and refused.headers.get("retry-after") == "1", refused
        assert b"OperationOutcome" in refused.body
        assert service.call("GET", "/metadata").status == 200  # reads carry no body: still served
        assert _metric(service, b'segur_rejections_total{reason="overload-receiving"}') == 1
        for connection in slow:
            connection.close()
        deadline = time.time() + 5
        while time.time() < deadline and (reply := service.call("POST", "/", token, deposit)).status == 503:
            time.sleep(0.05)
        assert reply.status in (200, 201), reply
    finally:
        for connection in slow:
            connection.close()
        service.stop()

"""HTTP to the record service: keep-alive connections, every request reported to Locust's statistics.

Locust's FastHttpSession does more per request than a replay needs (URL parsing, a cookie jar,
a response context manager); at thousands of requests per second per process that is the
driver's own ceiling. This client sends through geventhttpclient's connection pool directly and
reports each request through Locust's ``request`` event, exactly as Locust's clients do, so its
statistics, CSV and HTML reports are unchanged.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from geventhttpclient import HTTPClient


class HttpFailure(Exception):
    """An answer with a status the caller did not accept (its text names the status and the body's start)."""


class RecordHttp:
    def __init__(self, base_url: str, request_event: Any, *, connections: int = 256,
                 connection_timeout: float = 10.0, network_timeout: float = 60.0):
        self._client = HTTPClient.from_url(base_url, concurrency=connections, connection_timeout=connection_timeout,
                                           network_timeout=network_timeout)
        self._prefix = urlsplit(base_url).path.rstrip("/")
        self._event = request_event

    def call(self, method: str, path: str, name: str, headers: dict, body: bytes | None = None,
             ok: tuple[int, ...] = (200,)) -> tuple[bool, int, bytes]:
        """Send one request; returns (accepted, status, body). Connection errors are failures, status 0."""
        started = time.perf_counter()
        try:
            response = self._client.request(method, self._prefix + path, body=body, headers=headers)
            content = response.read()
            status = response.status_code
        except Exception as error:  # noqa: BLE001 - any transport error is this request's failure, reported
            self._fire(method, name, started, 0, error)
            return False, 0, b""
        failure = None if status in ok else HttpFailure(f"{status} {content[:120].decode(errors='replace')}")
        self._fire(method, name, started, len(content), failure)
        return failure is None, status, content

    def _fire(self, method: str, name: str, started: float, length: int, exception: Exception | None) -> None:
        self._event.fire(request_type=method, name=name, response_time=(time.perf_counter() - started) * 1000,
                         response_length=length, exception=exception, context={})

    def close(self) -> None:
        self._client.close()

"""HTTP to the record service: keep-alive connections, every request reported to Locust's statistics.

Locust's FastHttpSession does more per request than a replay needs (URL parsing, a cookie jar,
a response context manager); at thousands of requests per second per process that is the
driver's own ceiling. This client sends through geventhttpclient's connection pool directly and
reports each request through Locust's ``request`` event, exactly as Locust's clients do, so its
statistics, CSV and HTML reports are unchanged. An answer with an accepted status is also given
to the caller's check (see ``load.checks``): a wrong answer is reported as that request's failure.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from typing import Any, Callable, NamedTuple
from urllib.parse import urlsplit

from gevent.lock import BoundedSemaphore
from geventhttpclient import HTTPClient

from load.checks import Outcome, Refused, WrongAnswer

_LOGGED_WRONG_ANSWERS = 5   # per process: the first wrong answers are logged with their details


class HttpFailure(Exception):
    """An answer with a status the caller did not accept (its text names the status and the body's start)."""

    def __repr__(self) -> str:  # Locust's failures table shows repr(): "503 …", not "HttpFailure('503 …')"
        return str(self)


class Reply(NamedTuple):
    """One request's end: its outcome, the status (0: no answer), the body and what the check returned."""

    outcome: Outcome
    status: int
    body: bytes
    checked: Any = None


class RecordHttp:
    def __init__(self, base_url: str, request_event: Any, *, connections: int = 256,
                 connection_timeout: float = 10.0, network_timeout: float = 60.0, calls: Any = None):
        """``calls``: a :class:`load.stats.LatencyBook` that gets every request too, under its call name."""
        self._client = HTTPClient.from_url(base_url, concurrency=connections, connection_timeout=connection_timeout,
                                           network_timeout=network_timeout)
        self._prefix = urlsplit(base_url).path.rstrip("/")
        self._slots = BoundedSemaphore(connections)
        self._event = request_event
        self._log = logging.getLogger(__name__)
        self._calls = calls
        self.wrong_answers = 0

    def slot(self) -> AbstractContextManager:
        """Hold one of the client's connections: inside it a request leaves without waiting (the
        replay takes its lateness there, see :class:`load.replay.OpenLoopReplay`)."""
        return self._slots

    def call(self, method: str, path: str, name: str, headers: dict, body: bytes | None = None,
             ok: tuple[int, ...] = (200,), check: Callable[[bytes], Any] | None = None, *,
             call: str | None = None, cpu_s: float = 0.0) -> Reply:
        """Send one request and report it to Locust. A status outside ``ok`` or a connection error is
        ``FAILED`` (status 0 for the latter); otherwise ``check(body)``, when given, runs on the answer:
        if it raises :class:`Refused` the request is ``FAILED`` (a refusal in the protocol's terms); if it raises
        :class:`WrongAnswer`, or anything else (an answer it cannot read), the request is ``WRONG`` (reported to
        Locust as a failure with that exception); else ``OK`` with what the check returned.

        ``call``: the call type's name for the calls' book (default ``name``); ``cpu_s``: the driver's CPU
        seconds spent building the request, added to its check's."""
        started = time.perf_counter()
        try:
            response = self._client.request(method, self._prefix + path, body=body, headers=headers)
            content = response.read()
            status = response.status_code
        except Exception as error:  # noqa: BLE001 - any transport error is this request's failure, reported
            self._fire(method, name, started, 0, error, call or name, cpu_s)
            return Reply(Outcome.FAILED, 0, b"")
        if status not in ok:
            self._fire(method, name, started, len(content),
                       HttpFailure(f"{status} {content[:120].decode(errors='replace')}"), call or name, cpu_s)
            return Reply(Outcome.FAILED, status, content)
        checking = time.process_time()  # a check never yields: its CPU is this request's
        try:
            checked = check(content) if check is not None else None
        except Refused as refused:
            self._fire(method, name, started, len(content), refused, call or name,
                       cpu_s + time.process_time() - checking)
            return Reply(Outcome.FAILED, status, content)
        except Exception as error:  # noqa: BLE001 - an answer the check cannot read is a wrong one, never a crash
            wrong = error if isinstance(error, WrongAnswer) else WrongAnswer(
                name, "an answer the driver cannot read", f"{type(error).__name__}: {error}")
            self._fire(method, name, started, len(content), wrong, call or name,
                       cpu_s + time.process_time() - checking)
            self._note(wrong, method, path)
            return Reply(Outcome.WRONG, status, content)
        self._fire(method, name, started, len(content), None, call or name, cpu_s + time.process_time() - checking)
        return Reply(Outcome.OK, status, content, checked)

    def _note(self, wrong: WrongAnswer, method: str, path: str) -> None:
        self.wrong_answers += 1
        if self.wrong_answers <= _LOGGED_WRONG_ANSWERS:
            self._log.warning("%s (%s %s): %s", wrong, method, path[:120], wrong.detail)

    def _fire(self, method: str, name: str, started: float, length: int, exception: Exception | None,
              call: str, cpu_s: float) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._event.fire(request_type=method, name=name, response_time=elapsed_ms,
                         response_length=length, exception=exception, context={})
        if self._calls is not None:
            self._calls.add(call, elapsed_ms, exception is None, cpu_s)

    def close(self) -> None:
        self._client.close()

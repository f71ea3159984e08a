"""Overload control: bounds on the requests a worker holds, past which the answer is a 4xx/503 at once.

Queueing without limit turns a burst into timeouts for everyone and memory that grows with the
backlog; refusing the excess immediately, with ``Retry-After``, keeps latency and memory bounded for
the requests that are admitted, and the service recovers by itself as soon as the load drops.
Health and metrics stay reachable under overload so that operators can see what is happening.

A request that carries a body (POST, PUT, PATCH) is received whole *before* it takes one of the
``max_in_flight`` slots, so a client that sends its body slowly (R.U.D.Y., slowloris on the body)
holds no slot that complete requests need. Bodies being received have their own, larger bound
(``max_receiving``) and a deadline: a body must arrive within ``grace_s`` seconds plus one second
per ``min_rate`` bytes received so far (an average rate after a grace period; a client that
stalls is answered 408 and its connection closed). Memory held by bodies being received is what
clients actually sent (not what they announce, which would let a few idle connections announcing
28 MB block every deposit): at most ``max_bytes`` each (413 beyond, or at once when ``Content-Length``
says so) and at most ``max_buffered`` for all of them together (the body whose bytes go past it is
answered 503 with ``Retry-After``). Slow *headers* are Granian's side: its HTTP/1
``header_read_timeout`` (see ``record_service.server``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from record_service.outcomes import outcome_bytes
from record_service.xds.soap import fault_bytes

_EXEMPT = frozenset({"/health", "/metrics"})
_WITHOUT_BODY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})  # bodies of these are never read
_OVERLOADED_TEXT = "the service is at capacity: retry after the delay given in Retry-After"
_OVERLOADED = outcome_bytes("transient", _OVERLOADED_TEXT)
_SOAP_PREFIX = "/xds/"  # the XDS.b front: its clients read SOAP 1.2 faults, not OperationOutcomes


@dataclass(frozen=True)
class BodyLimits:
    """How request bodies must arrive: at most ``max_bytes`` bytes each, within ``grace_s`` seconds plus one
    second per ``min_rate`` bytes received (bytes per second); at most ``max_buffered`` bytes received and
    held by all the bodies still arriving together (at least ``max_bytes``)."""

    max_bytes: int
    grace_s: float = 10.0
    min_rate: int = 64 * 1024
    max_buffered: int = 512 * 1024 * 1024


class _Refused(Exception):
    """A body that cannot be admitted: answered ``status`` with an OperationOutcome, connection closed."""

    def __init__(self, status: int, code: str, message: str, reason: str):
        super().__init__(message)
        self.status, self.code, self.message, self.reason = status, code, message, reason


class AdmissionMiddleware:
    """At most ``max_in_flight`` requests worked on and ``max_receiving`` bodies being received, per worker.

    Past either bound: 503 with ``Retry-After: retry_after_s``. A body that breaks ``body`` (see
    :class:`BodyLimits`): 413 (too large), 408 (too slow), 503 + ``Retry-After`` (its bytes would take
    the bodies being received past ``max_buffered``), each with ``Connection: close``. ``on_reject`` is
    called with the reason of every refusal (a metrics label). Each refusal is an OperationOutcome, or on the
    XDS.b front (``/xds/``) a SOAP 1.2 fault (Sender; Receiver for a 503), what its clients read.
    """

    def __init__(self, app, max_in_flight: int, on_reject: Callable[[str], None] | None = None,
                 retry_after_s: int = 1, max_receiving: int = 1024, body: BodyLimits | None = None):
        self.app = app
        self.max_in_flight = max_in_flight
        self.max_receiving = max_receiving
        self.body = body or BodyLimits(max_bytes=2**62)
        self.in_flight = 0
        self.receiving = 0
        self.buffered = _Buffered(max(self.body.max_buffered, self.body.max_bytes))
        self._on_reject = on_reject or (lambda reason: None)
        self._retry_after = str(retry_after_s).encode()
        self._headers = [(b"content-type", b"application/fhir+json"), (b"retry-after", str(retry_after_s).encode()),
                         (b"content-length", str(len(_OVERLOADED)).encode())]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in _EXEMPT:
            return await self.app(scope, receive, send)
        if scope["method"] not in _WITHOUT_BODY:
            receive = await self._received(scope, receive, send)
            if receive is None:
                return
        if self.in_flight >= self.max_in_flight:
            return await self._overloaded(send, "overload", scope["path"])
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _received(self, scope, receive, send):
        """``receive`` replaying the whole body, received under the body bounds; None when answered already
        (or when the client left)."""
        if self.receiving >= self.max_receiving:
            await self._overloaded(send, "overload-receiving", scope["path"])
            return None
        self.receiving += 1
        try:
            messages = await _receive_body(receive, self.body, _declared_length(scope), self.buffered)
        except _Refused as refused:
            self._on_reject(refused.reason)
            await _answer_and_close(send, refused, self._retry_after, scope["path"])
            return None
        finally:
            self.receiving -= 1
        return None if messages is None else _replay(messages, receive)

    async def _overloaded(self, send, reason: str, path: str = "") -> None:
        self._on_reject(reason)
        if path.startswith(_SOAP_PREFIX):
            body, content_type = _refusal(path, 503, "transient", _OVERLOADED_TEXT)
            headers = [(b"content-type", content_type), (b"retry-after", self._retry_after),
                       (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": 503, "headers": self._headers})
        await send({"type": "http.response.body", "body": _OVERLOADED})


def _declared_length(scope) -> int | None:
    """The request's ``Content-Length`` (bytes), None when absent (chunked) or not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class _Buffered:
    """Bytes held by the bodies being received (``held``), against a ``ceiling``."""

    def __init__(self, ceiling: int):
        self.ceiling = ceiling
        self.held = 0


async def _receive_body(receive, limits: BodyLimits, declared: int | None, buffered: _Buffered) -> list[dict] | None:
    """Every ``http.request`` message of the body, in order; None when the client disconnected.

    Raises :class:`_Refused`: 413 past ``limits.max_bytes``, 408 when the body is late, 503 when its bytes
    would take what all bodies being received may hold past ``buffered.ceiling``."""
    if declared is not None and declared > limits.max_bytes:
        raise _too_large(limits)
    loop = asyncio.get_running_loop()
    started = loop.time()
    messages: list[dict] = []
    received = 0
    try:
        async with asyncio.timeout_at(started + limits.grace_s) as deadline:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                size = len(message.get("body", b""))
                _hold(buffered, size, received + size, limits)
                received += size
                messages.append(message)
                if not message.get("more_body", False):
                    return messages
                deadline.reschedule(started + limits.grace_s + received / limits.min_rate)
    except TimeoutError:
        raise _late(limits, received, declared, loop.time() - started) from None
    finally:
        buffered.held -= received  # the body is whole (the app holds it now) or refused


def _hold(buffered: _Buffered, size: int, total: int, limits: BodyLimits) -> None:
    """Count ``size`` more bytes of a body (``total`` so far) in ``buffered``, or refuse the body."""
    if total > limits.max_bytes:
        raise _too_large(limits)
    if buffered.held + size > buffered.ceiling:
        raise _Refused(503, "transient", f"the service is receiving {buffered.held} bytes of request bodies, "
                       f"at most {buffered.ceiling}: retry after the delay given in Retry-After", "overload-buffered")
    buffered.held += size


def _late(limits: BodyLimits, received: int, declared: int | None, elapsed_s: float) -> _Refused:
    expected = "an unknown number of" if declared is None else f"{declared}"
    return _Refused(408, "timeout", f"the request body did not arrive in time: {received} of {expected} bytes in "
                    f"{elapsed_s:.1f} s (a body has {limits.grace_s:g} s plus 1 s per {limits.min_rate} bytes "
                    "received); send it faster, or in one go", "body-timeout")


def _too_large(limits: BodyLimits) -> _Refused:
    return _Refused(413, "too-costly", f"the request body is larger than {limits.max_bytes} bytes", "oversized")


def _refusal(path: str, status: int, code: str, message: str) -> tuple[bytes, bytes]:
    """(body, Content-Type) of a refusal: a SOAP 1.2 fault on the XDS.b front (Sender for the client's body,
    Receiver for the service's load), an OperationOutcome elsewhere."""
    if path.startswith(_SOAP_PREFIX):
        body, content_type = fault_bytes(message, "Receiver" if status == 503 else "Sender")
        return body, content_type.encode()
    return outcome_bytes(code, message), b"application/fhir+json"


def _replay(messages: list[dict], receive):
    """A ``receive`` that gives ``messages`` first, then whatever the connection says (a disconnect)."""
    pending = iter(messages)

    async def replayed():
        message = next(pending, None)
        return message if message is not None else await receive()

    return replayed


async def _answer_and_close(send, refused: _Refused, retry_after: bytes, path: str = "") -> None:
    body, content_type = _refusal(path, refused.status, refused.code, refused.message)
    headers = [(b"content-type", content_type), (b"connection", b"close"),
               (b"content-length", str(len(body)).encode())]
    if refused.status == 503:
        headers.append((b"retry-after", retry_after))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

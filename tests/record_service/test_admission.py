"""Admission in-process: the in-flight bound, bodies received whole before they take a slot, and the body bounds
(size, deadline, minimum rate, how many at once). The same on a running service: test_record_overload."""

from __future__ import annotations

import asyncio
import json

from record_service.admission import AdmissionMiddleware, BodyLimits


class _Client:
    """One request driven through the middleware: what it sends and what it is answered."""

    def __init__(self, method: str = "GET", path: str = "/metadata", content_length: int | None = None):
        headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
        self.scope = {"type": "http", "method": method, "path": path, "headers": headers}
        self.incoming: asyncio.Queue = asyncio.Queue()
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        return await self.incoming.get()

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def body(self, data: bytes, more: bool = False) -> None:
        self.incoming.put_nowait({"type": "http.request", "body": data, "more_body": more})

    @property
    def status(self) -> int | None:
        return self.sent[0]["status"] if self.sent else None

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    def outcome(self) -> dict:
        return json.loads(self.sent[1]["body"])


class _App:
    """Answers 200 with the body it read, once ``release`` is set (``block=True``)."""

    def __init__(self, block: bool = False):
        self.release = asyncio.Event()
        if not block:
            self.release.set()
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send):
        body = b""
        if scope["method"] == "POST":
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            self.bodies.append(body)
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def _run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def _middleware(app, max_in_flight=1, max_receiving=8, **limits):
    rejected: list[str] = []
    limits = {"max_bytes": 1000, "grace_s": 0.2, "min_rate": 1000, **limits}
    middleware = AdmissionMiddleware(app, max_in_flight, rejected.append, max_receiving=max_receiving,
                                     body=BodyLimits(**limits))
    return middleware, rejected


def test_past_the_in_flight_bound_503_with_retry_after_at_once_then_recovery():
    async def scenario():
        app = _App(block=True)
        middleware, rejected = _middleware(app, max_in_flight=2)
        held = [_Client(), _Client()]
        tasks = [asyncio.create_task(middleware(c.scope, c.receive, c.send)) for c in held]
        await asyncio.sleep(0.01)
        assert middleware.in_flight == 2
        refused = _Client()
        await middleware(refused.scope, refused.receive, refused.send)
        assert refused.status == 503 and refused.headers[b"retry-after"] == b"1"
        assert refused.outcome()["resourceType"] == "OperationOutcome"
        assert rejected == ["overload"]
        health = _Client(path="/health")  # operators can still look: not counted, not refused
        tasks.append(asyncio.create_task(middleware(health.scope, health.receive, health.send)))
        await asyncio.sleep(0.01)
        assert middleware.in_flight == 2 and health.sent == []
        app.release.set()
        await asyncio.gather(*tasks)
        assert [c.status for c in [*held, health]] == [200, 200, 200] and middleware.in_flight == 0
        again = _Client()
        await middleware(again.scope, again.receive, again.send)
        assert again.status == 200

    _run(scenario())


def test_a_body_still_arriving_holds_no_in_flight_slot():
    async def scenario():
        app = _App()
        middleware, _ = _middleware(app, max_in_flight=1, grace_s=5)
        slow = _Client("POST", "/", content_length=100)
        slow.body(b"{", more=True)
        task = asyncio.create_task(middleware(slow.scope, slow.receive, slow.send))
        await asyncio.sleep(0.01)
        assert (middleware.receiving, middleware.in_flight) == (1, 0)
        other = _Client()
        await middleware(other.scope, other.receive, other.send)
        assert other.status == 200  # the only slot was free
        slow.body(b"}")
        await task
        assert slow.status == 200 and app.bodies == [b"{}"]  # the app read the whole body, replayed
        assert (middleware.receiving, middleware.in_flight) == (0, 0)

    _run(scenario())


def test_a_stalled_body_is_answered_408_and_its_connection_closed():
    async def scenario():
        app = _App()
        middleware, rejected = _middleware(app, max_bytes=200_000, grace_s=0.2)
        stalled = _Client("POST", "/", content_length=100_000)
        stalled.body(b"{", more=True)
        started = asyncio.get_running_loop().time()
        await middleware(stalled.scope, stalled.receive, stalled.send)
        elapsed = asyncio.get_running_loop().time() - started
        assert stalled.status == 408 and stalled.headers[b"connection"] == b"close"
        assert stalled.outcome()["issue"][0]["code"] == "timeout"
        assert "1 of 100000 bytes" in stalled.outcome()["issue"][0]["diagnostics"]
        assert 0.2 <= elapsed < 1.0
        assert rejected == ["body-timeout"] and app.bodies == [] and middleware.receiving == 0

    _run(scenario())


async def _trickle(client: _Client, chunk: bytes, every_s: float, count: int) -> None:
    for i in range(count):
        await asyncio.sleep(every_s)
        client.body(chunk, more=i < count - 1)


def test_a_body_slower_than_the_minimum_rate_is_cut_a_faster_one_passes():
    async def scenario():
        app = _App()
        middleware, rejected = _middleware(app, max_bytes=10_000, grace_s=0.2, min_rate=1000)
        fast, slow = _Client("POST", "/"), _Client("POST", "/")  # chunked: no Content-Length
        feeding = [asyncio.create_task(_trickle(fast, b"x" * 100, 0.05, 12)),  # 2 000 bytes/s for 0.6 s
                   asyncio.create_task(_trickle(slow, b"x" * 5, 0.05, 40))]  # 100 bytes/s
        await asyncio.gather(middleware(fast.scope, fast.receive, fast.send),
                             middleware(slow.scope, slow.receive, slow.send))
        for task in feeding:
            task.cancel()
        assert fast.status == 200 and app.bodies == [b"x" * 1200]
        assert slow.status == 408 and rejected == ["body-timeout"]
        assert "unknown number of bytes" in slow.outcome()["issue"][0]["diagnostics"]

    _run(scenario())


def test_a_body_over_the_limit_is_413_declared_or_streamed():
    async def scenario():
        app = _App()
        middleware, rejected = _middleware(app, max_bytes=1000)
        declared = _Client("POST", "/", content_length=1001)  # answered before a byte of the body is read
        await middleware(declared.scope, declared.receive, declared.send)
        streamed = _Client("POST", "/")
        streamed.body(b"x" * 600, more=True)
        streamed.body(b"x" * 600)
        await middleware(streamed.scope, streamed.receive, streamed.send)
        assert [declared.status, streamed.status] == [413, 413]
        assert declared.headers[b"connection"] == b"close"
        assert declared.outcome()["issue"][0]["code"] == "too-costly"
        assert rejected == ["oversized", "oversized"] and app.bodies == []

    _run(scenario())


def test_past_the_receiving_bound_503_and_reads_still_served():
    async def scenario():
        app = _App()
        middleware, rejected = _middleware(app, max_receiving=2, grace_s=5)
        slow = [_Client("POST", "/", content_length=10) for _ in range(2)]
        tasks = [asyncio.create_task(middleware(c.scope, c.receive, c.send)) for c in slow]
        await asyncio.sleep(0.01)
        third = _Client("POST", "/", content_length=2)
        third.body(b"{}")
        await middleware(third.scope, third.receive, third.send)
        assert third.status == 503 and third.headers[b"retry-after"] == b"1"
        assert rejected == ["overload-receiving"]
        read = _Client()
        await middleware(read.scope, read.receive, read.send)
        assert read.status == 200
        for client in slow:
            client.incoming.put_nowait({"type": "http.disconnect"})
        await asyncio.gather(*tasks)
        assert [c.sent for c in slow] == [[], []]  # a client that left is not answered
        assert (middleware.receiving, middleware.in_flight) == (0, 0)

    _run(scenario())


def test_bodies_being_received_hold_at_most_their_byte_ceiling_then_503():
    async def scenario():
        app = _App()
        middleware, rejected = _middleware(app, max_bytes=1000, max_buffered=1500, grace_s=5)
        first, second = _Client("POST", "/"), _Client("POST", "/")
        first.body(b"x" * 900, more=True)
        second.body(b"y" * 500, more=True)
        tasks = [asyncio.create_task(middleware(c.scope, c.receive, c.send)) for c in (first, second)]
        await asyncio.sleep(0.01)
        assert middleware.buffered.held == 1400
        second.body(b"y" * 200)  # 1 600 bytes held: past the ceiling, this body is refused
        await asyncio.sleep(0.01)
        assert second.status == 503 and second.headers[b"retry-after"] == b"1"
        assert second.headers[b"connection"] == b"close" and rejected == ["overload-buffered"]
        assert middleware.buffered.held == 900  # the refused body's bytes are let go
        first.body(b"x" * 100)
        await asyncio.gather(*tasks)
        assert first.status == 200 and app.bodies == [b"x" * 1000]
        assert middleware.buffered.held == 0  # a whole body is the app's now

    _run(scenario())


def test_an_announced_length_holds_nothing_until_its_bytes_arrive():
    async def scenario():
        app = _App()
        middleware, _ = _middleware(app, max_bytes=1000, max_buffered=1000, grace_s=5)
        idle = [_Client("POST", "/", content_length=1000) for _ in range(5)]  # 5 000 bytes announced
        tasks = [asyncio.create_task(middleware(c.scope, c.receive, c.send)) for c in idle]
        await asyncio.sleep(0.01)
        deposit = _Client("POST", "/", content_length=1000)
        deposit.body(b"z" * 1000)
        await middleware(deposit.scope, deposit.receive, deposit.send)
        assert deposit.status == 200
        for client in idle:
            client.incoming.put_nowait({"type": "http.disconnect"})
        await asyncio.gather(*tasks)

    _run(scenario())

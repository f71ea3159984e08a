"""CPU per call: the worker process's CPU time shared fairly among the requests in flight ("virtual time").

What the capacity planner needs is "service CPU seconds per call" by call type. A worker's CPU cannot be
measured per request directly: requests interleave on the event loop, and part of their work runs on the
worker's threads (blob writes, SQLite / PostgreSQL commits, large messages parsed off the loop). So the
process's CPU time (:func:`time.process_time`, seconds, every thread of the process) is *attributed*:

- the process keeps ``last`` (its CPU time at the previous event, seconds) and ``share`` (cumulative CPU
  seconds per request in flight, a "virtual time" that only moves while requests are in flight);
- at each request's start and end: ``delta = process_time() - last``; with ``n`` requests in flight,
  ``share += delta / n``, without any the delta is *unattributed* (idle housekeeping: the in-flight
  sampler, the group committer finishing, the garbage collector); then ``last = now``;
- a request remembers ``share`` at its start; its CPU is ``share at its end - share at its start``.

Two clock reads and a few float operations per request, O(1) whatever the concurrency.

Exact in sum: every interval between two events gives its ``delta`` either to the ``n`` requests then in
flight (``delta / n`` each) or to the unattributed figure, so the CPU of all finished requests plus the
unattributed CPU equals the process's CPU time at the last event (from the process's start: ``last``
starts at 0, so the worker's start-up is in the unattributed figure too). Not counted yet: the CPU since the
last event (a worker's idle CPU is counted at its next request's start; a request's at its end).

An attribution per call, not a measurement: requests that overlap share equally whatever each one does.
A request waiting on an fsync, a slow client's upload or a database round trip while another parses a
1 MB message gets part of that parse; the per-call figures are fair when a call type is measured under
the traffic mix it will see (the planner's steps), and they are exact only in sum. Calls measured alone
(one at a time) are exact per call, up to the event loop's own work between requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# the scope key an endpoint sets to name its call more precisely than its route does (ITI-18's stored query)
CALL = "segur.call"

# (route template, method) -> the call, in the field's terms; other routes are named by their template
ROUTE_CALLS: dict[tuple[str, str], str] = {
    ("/", "POST"): "ITI-65",
    ("/DocumentReference", "GET"): "ITI-67",
    ("/DocumentReference/_search", "POST"): "ITI-67",
    ("/Binary/{id}", "GET"): "ITI-68",
    ("/Patient", "GET"): "TD0.2 (FHIR)",  # Patient?identifier=
    ("/AuditEvent", "GET"): "AuditEvent",
    ("/DocumentReference/{id}/$mask", "POST"): "$mask",
    ("/DocumentReference/{id}/$unmask", "POST"): "$unmask",
    ("/Patient/$block", "POST"): "$block",
    ("/Patient/$unblock", "POST"): "$unblock",
    ("/Patient/$opt-out", "POST"): "$opt-out",
    ("/DocumentReference/{id}", "DELETE"): "DELETE",
    # the XDS.b front; ITI-18's endpoint names its stored query (:func:`name_call`)
    ("/xds/iti41", "POST"): "ITI-41",
    ("/xds/iti18", "POST"): "ITI-18",
    ("/xds/iti43", "POST"): "ITI-43",
    ("/xds/td02", "POST"): "TD0.2",
}


def name_call(scope: dict, call: str) -> None:
    """Name this request's call (the ``call`` label of its CPU and count), instead of its route's default.

    Use a fixed vocabulary (label values are kept for ever): e.g. ``"ITI-18 FindDocuments"``."""
    scope[CALL] = call


def call_of(scope: dict, route: str, method: str) -> str:
    """The call a finished request was: what its endpoint named, else its route's call, else the route."""
    named = scope.get(CALL)
    if named is not None:
        return named
    return ROUTE_CALLS.get((route, method), route)


class CpuShare:
    """The fair-share CPU counter of one worker process (one per app; touched by the event loop only).

    ``start()`` when a request begins returns a token; ``end(token)`` when it ends returns the request's CPU
    seconds. ``unattributed`` is the CPU (seconds) spent while no request was in flight, ``on_idle`` is
    called with each such piece (seconds) as it is found (a counter's ``inc``)."""

    __slots__ = ("_clock", "_last", "_share", "in_flight", "unattributed", "_on_idle")

    def __init__(self, clock: Callable[[], float] = time.process_time,
                 on_idle: Callable[[float], None] | None = None, start: float = 0.0):
        self._clock = clock
        self._last = start  # 0: the CPU before the first request (start-up) is unattributed
        self._share = 0.0
        self.in_flight = 0
        self.unattributed = 0.0
        self._on_idle = on_idle

    def _advance(self) -> float:
        now = self._clock()
        delta = now - self._last
        self._last = now
        if self.in_flight:
            self._share += delta / self.in_flight
        elif delta > 0.0:
            self.unattributed += delta
            if self._on_idle is not None:
                self._on_idle(delta)
        return self._share

    def start(self) -> float:
        """A request begins: the share so far (its token)."""
        share = self._advance()
        self.in_flight += 1
        return share

    def end(self, token: float) -> float:
        """The request that began with ``token`` ends: its CPU (seconds)."""
        share = self._advance()
        self.in_flight -= 1
        return share - token

    @property
    def share(self) -> float:
        """CPU seconds per in-flight request so far (as of the last event)."""
        return self._share

"""The open-model replay: every row leaves at its planned time, whatever happened to earlier ones.

A single scheduler greenlet walks the schedule in time order, sleeps until each row's planned
time (start + offset / speed-up) and hands the row to a pool of greenlets that send it without
waiting for the answer. Concurrency is whatever the schedule needs, up to the pool's bound.
When the pool is full, or the driver's CPU cannot keep up, rows leave late: the lateness of
every request is measured at the moment it leaves, so the delay shows instead of being hidden
(no coordinated omission), and no row is ever dropped.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from typing import Callable, Iterable

import gevent
from gevent.pool import Pool

from load.checks import Outcome
from load.stats import ReplayStats


# below this, a request is sent at once (at most this early) rather than after a trip through the event loop,
# which at thousands of requests per second costs more lateness than it saves
_SLEEP_THRESHOLD_S = 0.001


class OpenLoopReplay:
    def __init__(self, rows: Iterable[dict], send: Callable[[dict], bool | Outcome], stats: ReplayStats, *,
                 start_at: float, speedup: float = 1.0, concurrency: int = 2000, drain_s: float | None = None,
                 clock: Callable[[], float] = time.time,
                 gate: Callable[[], AbstractContextManager] = nullcontext,
                 label: Callable[[dict], str] | None = None):
        """``gate``: what a request waits for before it can leave (the HTTP client's connection slots);
        lateness is taken once it is through, when the request really leaves. ``label``: the row's name in the
        per-request figures (as Locust names its interaction, ``load.stats.row_label``); its operation otherwise."""
        if speedup <= 0:
            raise ValueError("the speed-up must be positive")
        self.rows, self.send, self.stats = rows, send, stats
        self.start_at, self.speedup = start_at, speedup
        self.pool = Pool(concurrency)
        self.clock = clock
        self.drain_s = drain_s
        self.gate = gate
        self.label = label

    def run(self) -> None:
        """Send every row, then wait for the last answers."""
        for row in self.rows:
            planned = self.start_at + row["offset_s"] / self.speedup
            self.stats.planned(int(planned - self.start_at))
            wait = planned - self.clock()
            if wait > _SLEEP_THRESHOLD_S:  # a sleep yields to the event loop: only worth it for a real wait
                gevent.sleep(wait)
            self.pool.spawn(self._one, row, planned)  # blocks while the pool is full: lateness grows, and shows
        # wait for the last answers, for at most drain_s: what is still unanswered then is counted, not waited for
        if not self.pool.join(timeout=self.drain_s):
            self.stats.unanswered += len(self.pool)
            self.pool.kill(block=True, timeout=5)

    def _one(self, row: dict, planned: float) -> None:
        with self.gate():
            now = self.clock()  # a connection is free: the request leaves now
            lateness_ms, second = (now - planned) * 1000.0, int(now - self.start_at)
            label = self.label(row) if self.label is not None else None
            self.stats.record_send(row["operation"], lateness_ms, second, label)
            self.stats.leaving(label or row["operation"])
            try:
                outcome = self.send(row)
            finally:
                self.stats.answered(label or row["operation"])
        if outcome is Outcome.NOT_SENT:  # no request left after all: its target was never acknowledged
            self.stats.record_not_sent(row["operation"], lateness_ms, second, label)
            return
        self.stats.record_outcome(row["operation"], outcome, self.clock() - self.start_at)

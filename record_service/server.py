"""Runs an ASGI app factory under Granian, the service's HTTP server.

Why Granian: its HTTP/1.1 parsing and connection handling are in Rust, off the Python interpreter,
which leaves more of this 2-core machine's CPU to the app than a pure-Python server; it runs several
worker processes on one port, and stops them cleanly on SIGTERM/SIGINT (running the app's lifespan
shutdown, so the group committer drains its queue).

A worker that dies (SIGKILL by the OOM killer, a crash) is replaced at once (Granian's
``respawn_failed_workers``) while the others keep serving. What a worker leaves behind survives it:
its metrics files stay summed (its live gauges are dropped at the next scrape, see
``record_service.metrics``), its access-history journal is unlocked by its death and indexed by the
others, and the data directory's lock is held by this (main) process, not by workers. A worker that
keeps dying is not replaced for ever: Granian stops the service when a replacement dies within 5.5 s
of its start, and :class:`_Supervisor` when more than ``MAX_RESPAWNS`` replacements were needed within
``RESPAWN_WINDOW_S`` seconds (the service then exits 1, the workers' errors above in its log). Every
replacement is logged (a warning), so a worker that keeps failing slowly is not replaced silently.

Slow clients: Granian closes a connection whose request headers take longer than
``HTTP1Settings.header_read_timeout`` (30 s, its default) to arrive, before the app sees anything;
slow bodies are bounded by the app (``record_service.admission``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops
from granian.log import logger as granian_logger

from record_service.metrics import MULTIPROCESS_DIRECTORY
from record_service.settings import Settings

MAX_RESPAWNS = 10  # replacements of failed workers allowed within RESPAWN_WINDOW_S
RESPAWN_WINDOW_S = 60.0


class _RespawnBudget:
    """At most ``limit`` replacements of workers within any ``window_s`` seconds (monotonic clock)."""

    def __init__(self, limit: int = MAX_RESPAWNS, window_s: float = RESPAWN_WINDOW_S):
        self.limit, self.window_s = limit, window_s
        self._times: list[float] = []

    def spend(self, count: int, now: float) -> bool:
        """Count ``count`` replacements at ``now``; False when that goes past the budget."""
        self._times = [t for t in self._times if now - t < self.window_s] + [now] * count
        return len(self._times) <= self.limit

    @property
    def spent(self) -> int:
        return len(self._times)


class _Supervisor(Granian):
    """Granian's main process: says when it replaces a worker, gives up (exit 1) past a :class:`_RespawnBudget`."""

    def __init__(self, *args, budget: _RespawnBudget | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._budget = budget or _RespawnBudget()

    def _respawn_workers(self, workers, spawn_target, target_loader, delay: float = 0):
        names = ", ".join(f"worker-{idx + 1}" for idx in workers)
        if not self._budget.spend(len(workers), time.monotonic()):
            granian_logger.error(f"{names}: {self._budget.spent} replacements of workers within "
                                 f"{self._budget.window_s:g} s: stopping the service (see the errors above)")
            self.interrupt_children.extend(workers)  # the service's exit status says it failed
            self.interrupt_signal = True
            self.main_loop_interrupt.set()
            return None
        granian_logger.warning(f"{names}: starting a replacement ({self._budget.spent} within "
                               f"{self._budget.window_s:g} s, at most {self._budget.limit})")
        return super()._respawn_workers(workers, spawn_target, target_loader, delay)


def serve(settings: Settings, host: str, port: int, workers: int,
          target: str = "record_service.app:app_from_environment", announce=print) -> None:
    """Serve ``target`` (a factory reading its settings from the environment) until a signal stops it.

    Exits 1 (``SystemExit``) when failed workers could not be kept running (see the module's docstring)."""
    settings.to_environment()
    # each run's metrics start from zero, summed over its workers (see record_service.metrics)
    metrics_directory = tempfile.mkdtemp(prefix="segur-metrics-")
    os.environ[MULTIPROCESS_DIRECTORY] = metrics_directory
    server = _Supervisor(target, address=host, port=port, interface=Interfaces.ASGI, factory=True, workers=workers,
                         loop=Loops.uvloop, http=HTTPModes.http1, backlog=2048, log_level="warning",
                         log_access=False, websockets=False, respawn_failed_workers=True)
    announce(f"listening on http://{host}:{port}")
    logging.getLogger("record_service").setLevel(logging.INFO)
    try:
        server.serve()
    finally:
        shutil.rmtree(metrics_directory, ignore_errors=True)

"""Runs an ASGI app factory under Granian, the service's HTTP server.

Why Granian: its HTTP/1.1 parsing and connection handling are in Rust, off the Python interpreter,
which leaves more of this 2-core machine's CPU to the app than a pure-Python server; it runs several
worker processes on one port, and stops them cleanly on SIGTERM/SIGINT (running the app's lifespan
shutdown, so the group committer drains its queue).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops

from record_service.metrics import MULTIPROCESS_DIRECTORY
from record_service.settings import Settings


def serve(settings: Settings, host: str, port: int, workers: int,
          target: str = "record_service.app:app_from_environment", announce=print) -> None:
    """Serve ``target`` (a factory reading its settings from the environment) until a signal stops it."""
    settings.to_environment()
    # each run's metrics start from zero, summed over its workers (see record_service.metrics)
    metrics_directory = tempfile.mkdtemp(prefix="segur-metrics-")
    os.environ[MULTIPROCESS_DIRECTORY] = metrics_directory
    server = Granian(target, address=host, port=port, interface=Interfaces.ASGI, factory=True, workers=workers,
                     loop=Loops.uvloop, http=HTTPModes.http1, backlog=2048, log_level="warning",
                     log_access=False, websockets=False)
    announce(f"listening on http://{host}:{port}")
    logging.getLogger("record_service").setLevel(logging.INFO)
    try:
        server.serve()
    finally:
        shutil.rmtree(metrics_directory, ignore_errors=True)

"""Metrics over several workers: a worker that died without closing (SIGKILL) no longer counts in the live
gauges, and its counters still do. Each worker is a separate process here, as under Granian."""

from __future__ import annotations

import os
import subprocess
import sys

_WORKER = """
import os, sys
from record_service.metrics import Metrics
metrics = Metrics()
metrics.in_flight.set(5)
metrics.reject("overload"); metrics.reject("overload"); metrics.reject("overload")
sys.stdout.write(str(os.getpid()))
os._exit(0)  # no close(): as a killed worker
"""
_SCRAPE = """
import sys
from record_service.metrics import Metrics
sys.stdout.write(Metrics().exposition().decode())
"""


def _python(code: str, directory) -> str:
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_dead_workers_live_gauge_is_dropped_its_counters_kept(tmp_path):
    dead = _python(_WORKER, tmp_path)
    assert (tmp_path / f"gauge_livesum_{dead}.db").exists()
    exposition = _python(_SCRAPE, tmp_path)
    assert "segur_in_flight_requests 0.0" in exposition  # not 5.0: the dead worker's figure is gone
    assert 'segur_rejections_total{reason="overload"} 3.0' in exposition
    assert not (tmp_path / f"gauge_livesum_{dead}.db").exists()

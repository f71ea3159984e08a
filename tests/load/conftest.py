"""A real `segur serve` (SQLite) on a free port, started as `segur plan` starts it, and a small seeded run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from planner.service import Service, free_port  # noqa: F401 - free_port is used by the tests

ROOT = Path(__file__).resolve().parents[2]
SEGUR = [sys.executable, "-m", "segur.cli"]


@pytest.fixture(scope="package")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("service")
    with Service(folder, folder / "signing.key", workers=1) as running:  # the planner's own launcher
        yield running


@pytest.fixture(scope="package")
def seeded(service, smoke_run) -> Path:
    proc = subprocess.run([*SEGUR, "seed", str(smoke_run), "--target", service.url, "--key", str(service.key)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (smoke_run / "locations.parquet").exists()
    return smoke_run

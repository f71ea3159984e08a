"""A real `segur serve` (SQLite) on a free port, and a small simulated run seeded into it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from segur.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEGUR = [sys.executable, "-m", "segur.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningService:
    def __init__(self, folder: Path):
        self.key = folder / "signing.key"
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = folder / "serve.log"
        self.process = subprocess.Popen(
            [*SEGUR, "serve", "--data-dir", str(folder / "data"), "--port", self.url.rsplit(":", 1)[1],
             "--key", str(self.key)], stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"segur serve exited: {self.log.read_text()[-500:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        pytest.fail("segur serve did not answer /health within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture(scope="package")
def service(tmp_path_factory):
    running = RunningService(tmp_path_factory.mktemp("service"))
    yield running
    running.stop()


@pytest.fixture(scope="package")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("simulation") / "smoke"
    result = CliRunner().invoke(main, ["simulate", str(ROOT / "scenarios" / "smoke.yaml"), "--out", str(out),
                                       "--no-plots"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="package")
def seeded(service, smoke_run) -> Path:
    proc = subprocess.run([*SEGUR, "seed", str(smoke_run), "--target", service.url, "--key", str(service.key)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (smoke_run / "locations.parquet").exists()
    return smoke_run

"""The record service a plan measures: one started here (embedded SQLite, or PostgreSQL by URL), or one
already running elsewhere, and the CPU its processes use."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from segur.errors import InputError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ProcessTree:
    """CPU seconds used by a process and all its descendants (children come and go: keep what was seen)."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self._seen: dict[int, tuple[psutil.Process, float]] = {}

    def cpu_seconds(self) -> float:
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            processes = []
        for process in processes:
            try:
                times = process.cpu_times()
                self._seen[process.pid] = (process, times.user + times.system)
            except psutil.NoSuchProcess:
                continue
        return sum(seconds for _, seconds in self._seen.values())

    def per_process(self) -> dict[int, float]:
        """CPU seconds of each process seen (call after :meth:`cpu_seconds`)."""
        return {pid: seconds for pid, (_, seconds) in self._seen.items()}


class Service:
    """A `segur serve` started for the plan (``url`` is None) or a service given by URL."""

    def __init__(self, folder: Path, key: Path, *, url: str | None = None, db: str | None = None, workers: int = 2):
        self.folder, self.key, self.db, self.workers = folder, key, db, workers
        self.url = url
        self.process: subprocess.Popen | None = None
        self.tree: ProcessTree | None = None
        self.kind = "external" if url else ("postgresql" if db and db.startswith("postgresql") else "sqlite")

    def __enter__(self) -> "Service":
        if self.url is None:
            self._start()
        self._wait_healthy(60 if self.process else 10)
        return self

    def _start(self) -> None:
        port = free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "segur.cli", "serve", "--data-dir", str(self.folder / "data"),
                   "--host", "127.0.0.1", "--port", str(port), "--key", str(self.key), "--workers", str(self.workers)]
        if self.db:
            command += ["--db", self.db]
        log = (self.folder / "serve.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.tree = ProcessTree(self.process.pid)
        self.url = f"http://127.0.0.1:{port}"

    def _wait_healthy(self, seconds: float) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = (self.folder / "serve.log").read_text(errors="replace")[-400:]
                raise InputError(f"the record service exited {self.process.returncode} at start: {tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise InputError(f"the record service at {self.url} did not answer /health within {seconds:.0f} s")

    def cpu_seconds(self) -> float | None:
        return self.tree.cpu_seconds() if self.tree else None

    def cpu_by_process(self) -> dict[int, float]:
        return self.tree.per_process() if self.tree else {}

    def __exit__(self, *exc) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

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
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg

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
        self._read: dict[int, int] = {}

    def _processes(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        for process in self._processes():
            try:
                times = process.cpu_times()
                self._seen[process.pid] = (process, times.user + times.system)
            except psutil.NoSuchProcess:
                continue
        return sum(seconds for _, seconds in self._seen.values())

    def read_bytes(self) -> int:
        """Bytes the processes seen (alive now, or their last reading) had the kernel fetch from storage
        (``/proc/<pid>/io`` read_bytes: page-cache misses, not reads the cache served)."""
        for process in self._processes():
            try:
                self._read[process.pid] = process.io_counters().read_bytes
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return sum(self._read.values())

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
        self.database: ProcessTree | None = None  # a local PostgreSQL's processes count as the service's
        self._created_database: str | None = None
        self.kind = "external" if url else ("postgresql" if db and db.startswith("postgresql") else "sqlite")

    def __enter__(self) -> "Service":
        if self.url is None:
            if self.db and self.db.startswith("postgresql"):
                self.db = self._fresh_database(self.db)
            self._start()
        try:
            self._wait_healthy(60 if self.process else 10)
        except BaseException:  # a failed start, or SIGTERM meanwhile: stop what was started, drop the database
            self.__exit__()
            raise
        return self

    def _fresh_database(self, url: str) -> str:
        """A new, empty database on the server of ``url`` for this plan (dropped at the end): a plan never
        starts from another run's documents, whose bytes live in that run's data directory."""
        parts = urlsplit(url)
        base = parts.path.lstrip("/") or "postgres"
        self._created_database = f"{base}_plan_{int(time.time())}_{os.getpid()}"
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as connection:
                connection.execute(f'CREATE DATABASE "{self._created_database}"')
        except psycopg.Error as error:
            raise InputError(f"--db {url}: cannot create a database for the plan ({error})") from None
        return urlunsplit(parts._replace(path=f"/{self._created_database}"))

    def _database_tree(self) -> ProcessTree | None:
        """The PostgreSQL server behind --db when it runs on this machine (found by its port), else None."""
        if not self.db or not self.db.startswith("postgresql"):
            return None
        port = urlsplit(self.db).port or 5432
        try:
            for connection in psutil.net_connections(kind="tcp"):
                if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
                    return ProcessTree(connection.pid)
        except (psutil.AccessDenied, PermissionError):
            return None
        return None

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
        self.database = self._database_tree()
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

    def data_bytes(self) -> int | None:
        """Bytes the service started here has written under its data directory; None for a --target service."""
        if self.process is None:
            return None
        return sum(path.stat().st_size for path in (self.folder / "data").rglob("*") if path.is_file())

    def database_bytes(self) -> int | None:
        """The database's size on disk, bytes: the files of the data directory beside ``blobs/`` (SQLite and its
        WAL) or ``pg_database_size``; None for a --target service or an unreadable database."""
        if self.process is None:
            return None
        if self.kind == "postgresql":
            try:
                with psycopg.connect(self.db, connect_timeout=10) as connection:
                    return int(connection.execute("SELECT pg_database_size(current_database())").fetchone()[0])
            except psycopg.Error:
                return None
        data = self.folder / "data"
        return sum(path.stat().st_size for path in data.iterdir() if path.is_file()) if data.is_dir() else None

    def cpu_seconds(self) -> float | None:
        if self.tree is None:
            return None
        return self.tree.cpu_seconds() + (self.database.cpu_seconds() if self.database else 0.0)

    def read_bytes(self) -> int | None:
        """Bytes the service (and a local database) read from storage so far; None for a --target service."""
        if self.tree is None:
            return None
        return self.tree.read_bytes() + (self.database.read_bytes() if self.database else 0)

    def cpu_by_process(self) -> dict[int, float]:
        if self.tree is None:
            return {}
        return {**self.tree.per_process(), **(self.database.per_process() if self.database else {})}

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        if self._created_database:
            parts = urlsplit(self.db)
            administration = urlunsplit(parts._replace(path="/postgres"))
            try:
                with psycopg.connect(administration, autocommit=True, connect_timeout=10) as connection:
                    connection.execute(f'DROP DATABASE IF EXISTS "{self._created_database}" WITH (FORCE)')
            except psycopg.Error:
                pass  # the plan is written; a database left behind is named after the plan and harmless

"""Fixtures for the record service's tests: a throw-away PostgreSQL cluster, running services, clients.

Every service is a real ``segur serve`` process on a free loopback port, so the tests exercise what a
client sees: HTTP, the server, the worker's lifespan, the group committer and the files on disk.
One service per back end is shared by a test session; tests keep apart by using fresh patients and
professionals (random INS / RPPS), never by resetting state.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from record_service.auth import Actor, issue_token, load_or_create_key

SEGUR = str(Path(sys.executable).parent / "segur")
BACKENDS = ("sqlite", "postgresql")
MAX_DOCUMENT_BYTES = 1_000_000  # the shared services' limit, small so that oversize tests stay cheap
SHARED_OPTIONS = ("--max-document-bytes", str(MAX_DOCUMENT_BYTES))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PostgreSQL -------------------------------------------------------------------------------

def _as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the 'postgres' account then."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root and `runuser` is missing: cannot start PostgreSQL as an unprivileged user")
    return [runuser, "-u", "postgres", "--"]


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory, on a free port, for one test session."""

    def __init__(self) -> None:
        missing = [tool for tool in ("initdb", "pg_ctl", "postgres") if shutil.which(tool) is None]
        if missing:
            pytest.fail(f"PostgreSQL binaries missing from PATH: {', '.join(missing)} — install PostgreSQL "
                        "(e.g. apt-get install postgresql) so the record service's tests can run on it")
        self.dir = Path(tempfile.mkdtemp(prefix="segur-pg-"))
        self.port = free_port()
        self.prefix = _as_postgres_user()
        if self.prefix:
            os.chmod(self.dir, 0o777)
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            pytest.fail(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "segur", "-A", "trust", "-E", "UTF8", "--no-instructions")
        self.start_server()

    def start_server(self) -> None:
        """Start the server of the (initialised) cluster, again after :meth:`stop_server` too."""
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on"
                   " -c shared_buffers=256MB -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop_server(self) -> None:
        """Stop the server as an administrator would (fast: sessions ended), keeping the cluster's files."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://segur@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.prefix, "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


# --- the service ------------------------------------------------------------------------------

class Service:
    """``segur serve`` on a data directory (kept across restarts), stopped by :meth:`stop`."""

    def __init__(self, root: Path, db_url: str | None, *extra: str):
        self.root = root
        self.data_dir = root / "data"
        self.key_file = root / "signing.key"
        self.db_url = db_url
        self.extra = extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.key = load_or_create_key(self.key_file)

    def start(self, timeout: float = 30) -> "Service":
        args = [SEGUR, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port), "--key",
                str(self.key_file), *self.extra]
        if self.db_url:
            args += ["--db", self.db_url]
        log = open(self.root / "serve.log", "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"segur serve exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"segur serve did not answer /health within {timeout} s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.root / "serve.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=30)

    # --- calling it -------------------------------------------------------------------------

    def token(self, actor: Actor, expires_in: int = 3600) -> str:
        return issue_token(self.key, actor, expires_in)

    def call(self, method: str, path: str, token: str | None = None, body: bytes | dict | None = None,
             headers: dict | None = None) -> "Reply":
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if body is not None:
            request.add_header("Content-Type", "application/fhir+json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, dict(error.headers), error.read())

    def blob_exists(self, sha256: str) -> bool:
        return (self.data_dir / "blobs" / sha256[:2] / sha256).exists()


class Reply:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> dict:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


@pytest.fixture(scope="session")
def services(postgres, tmp_path_factory) -> Iterator[dict[str, Service]]:
    """One running service per back end, shared by the session."""
    running: dict[str, Service] = {}
    try:
        running["sqlite"] = Service(tmp_path_factory.mktemp("svc-sqlite"), None, *SHARED_OPTIONS).start()
        running["postgresql"] = Service(tmp_path_factory.mktemp("svc-pg"), postgres.create_database("shared_suite"),
                                        *SHARED_OPTIONS).start()
        yield running
    finally:
        for service in running.values():
            service.stop()


@pytest.fixture(params=BACKENDS)
def service(request, services) -> Service:
    """The shared service of each back end in turn: tests using it run on SQLite and PostgreSQL."""
    return services[request.param]


@pytest.fixture
def rng(request) -> random.Random:
    return random.Random(f"{request.node.nodeid}-{time.time_ns()}")


@pytest.fixture(params=BACKENDS)
def two_workers(request, postgres, tmp_path_factory) -> Iterator[Service]:
    """A service of two worker processes on each back end: two connections may write at once."""
    database = postgres.create_database(f"two_{time.time_ns()}") if request.param == "postgresql" else None
    service = Service(tmp_path_factory.mktemp("two-workers"), database, "--workers", "2").start()
    try:
        yield service
    finally:
        service.stop()

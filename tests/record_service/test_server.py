"""The server's main process: a worker killed (SIGKILL, as the OOM killer does) is replaced while the others
keep serving, and what it left (access-history journal, metrics, the data directory's lock) survives it; a worker
that cannot start is not replaced for ever: the service stops, exit status not 0, and says so."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid

import psutil
import pytest

from conftest import BACKENDS, SEGUR, Service
from record_documents import deposit_bundle, locations, make_ins, patient, professional
from record_service.server import _RespawnBudget

_INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"


def test_the_respawn_budget_refuses_past_its_limit_and_forgets_old_replacements():
    budget = _RespawnBudget(limit=3, window_s=60)
    assert budget.spend(1, now=0) and budget.spend(2, now=10)
    assert not budget.spend(1, now=20)  # a fourth within 60 s
    assert budget.spend(1, now=75)  # those of t=0 and t=10 are forgotten: t=20 and t=75 remain
    assert budget.spent == 2


def _start(root, backend: str, postgres) -> tuple[Service, str | None]:
    name = f"respawn_{uuid.uuid4().hex[:12]}" if backend == "postgresql" else None
    db_url = postgres.create_database(name) if name else None
    return Service(root, db_url, "--workers", "2").start(), name


def _workers(service: Service) -> list[int]:
    return sorted(child.pid for child in psutil.Process(service.proc.pid).children())


def _listening(pid: int, port: int) -> bool:
    try:
        sockets = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets)


def _kill_and_wait_for_replacement(service: Service, pid: int) -> None:
    """SIGKILL worker ``pid``: /health must answer 200 at once from the other worker, and within 10 s a
    replacement must listen beside it."""
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)  # the kernel hands new connections to the live worker's socket only
    assert service.call("GET", "/health").status == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        workers = _workers(service)
        if len(workers) == 2 and pid not in workers and all(_listening(w, service.port) for w in workers):
            return
        time.sleep(0.1)
    pytest.fail(f"worker {pid} not replaced within 10 s: {service.log_tail()}")


def _history(service: Service, ins: str) -> list[dict]:
    reply = service.call("GET", f"/AuditEvent?patient.identifier={_INS_SYSTEM}|{ins}&_count=100",
                         service.token(patient(ins)))
    assert reply.status == 200, reply
    return [entry["resource"] for entry in reply.json().get("entry", [])]


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_workers_are_replaced_and_what_they_left_survives(tmp_path, postgres, rng, backend):
    service, _ = _start(tmp_path, backend, postgres)
    try:
        ins, author, reader = make_ins(rng), professional(rng), professional(rng, "town_doctor")
        deposited = service.call("POST", "/", service.token(author), deposit_bundle(ins, author.rpps, b"kept"))
        assert deposited.status == 201, deposited
        [document] = locations(deposited.json(), "DocumentReference")
        token = service.token(reader)
        reads = 12  # each on a new connection: both workers answer some
        assert all(service.call("GET", f"/DocumentReference/{document}", token).status == 200 for _ in range(reads))
        first, second = _workers(service)
        _kill_and_wait_for_replacement(service, first)
        _kill_and_wait_for_replacement(service, second)  # every worker that answered those reads is dead now
        assert all(service.call("GET", "/health").status == 200 for _ in range(10))
        assert service.call("GET", f"/DocumentReference/{document}", token).status == 200
        readers = [e["agent"][0]["who"]["identifier"]["value"][1:] for e in _history(service, ins)]
        assert readers.count(reader.rpps) == reads + 1  # the dead workers' journals were indexed
        metrics = service.call("GET", "/metrics").body
        answered = sum(float(line.rsplit(b" ", 1)[1]) for line in metrics.splitlines()
                       if line.startswith(b'segur_requests_total{') and b'route="/DocumentReference/{id}"' in line)
        assert answered >= reads  # the dead workers' counters still count
        second_service = subprocess.run([SEGUR, "serve", "--port", "0", "--key", str(service.key_file),
                                         "--data-dir", str(service.data_dir)], capture_output=True, text=True,
                                        timeout=60)
        assert second_service.returncode == 2 and "in use by another service" in second_service.stderr
    finally:
        code = service.stop()
    assert code == 0, service.log_tail()  # a clean stop after replacements
    assert "starting a replacement" in service.log_tail()


def _break_storage(service: Service, backend: str, database: str | None, postgres) -> None:
    """Make the storage unusable for any worker that starts from now on."""
    if backend == "sqlite":
        database_file = service.data_dir / "records.sqlite3"
        database_file.rename(service.data_dir / "records.moved")
        database_file.mkdir()  # a directory where the database should be: a new worker cannot open it
    else:
        import psycopg

        with psycopg.connect(postgres.url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_that_cannot_start_stops_the_service_instead_of_looping(tmp_path, postgres, backend):
    service, database = _start(tmp_path, backend, postgres)
    try:
        _break_storage(service, backend, database, postgres)
        os.kill(_workers(service)[0], signal.SIGKILL)
        code = service.proc.wait(timeout=40)
    finally:
        service.stop(signal.SIGKILL)
        shutil.rmtree(service.data_dir, ignore_errors=True)
    assert code not in (0, None)
    log = (service.root / "serve.log").read_text(errors="replace")
    assert "Unexpected exit from worker" in log
    assert "crash loop" in log or "stopping the service" in log, log

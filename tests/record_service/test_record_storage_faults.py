"""Storage faults answer as faults: a full disk 507, a database away 503 with Retry-After, never a 500;
nothing half-written stays, and the service recovers by itself once the fault clears.

The full disk is a small tmpfs mounted as the data directory (the tests run as root, as the issue asks:
without the right to mount they fail, they do not skip); PostgreSQL goes away on a cluster of the test's
own, stopped and started again under load.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SHARED_OPTIONS, PostgresCluster, Reply, Service
from record_documents import deposit_bundle, locations, make_ins, patient, professional, search_path

TMPFS_SIZE = "4m"
DOCUMENT = 300_000
RECOVERY_S = 20


@contextlib.contextmanager
def tmpfs(path: Path, size: str = TMPFS_SIZE) -> Iterator[Path]:
    """``path`` as a tmpfs of ``size`` until the block ends (then unmounted, its content gone)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                               capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.fail("no `mount` command: a full disk is simulated with a small tmpfs")
    if mount.returncode != 0:
        pytest.fail(f"cannot mount a {size} tmpfs on {path} (run the tests as root, or with CAP_SYS_ADMIN): "
                    f"{mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def fill(path: Path, leave: int = 0) -> None:
    """Write zeros to ``path`` until the disk has about ``leave`` bytes free (0: until it is full)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
            if free <= leave:
                return
            try:
                os.write(fd, bytes(min(65536, max(4096, free - leave))))
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                return
    finally:
        os.close(fd)


def assert_fault(reply: Reply, statuses: tuple[int, ...] = (503, 507)) -> None:
    """A storage fault's answer: the status, Retry-After, and an OperationOutcome."""
    assert reply.status in statuses, reply
    assert int(reply.headers["retry-after"]) >= 1
    outcome = reply.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "transient"


def blob_names(service: Service) -> set[str]:
    root = service.data_dir / "blobs"
    return {p.name for p in root.glob("??/*")} | {p.name for p in root.glob("??/.*")}


def eventually(check, seconds: float = RECOVERY_S) -> Reply:
    """``check()`` until its reply is 2xx or ``seconds`` pass; the last reply (never a 500 on the way)."""
    deadline = time.monotonic() + seconds
    while True:
        reply = check()
        assert reply.status != 500, reply
        if reply.status < 300 or time.monotonic() > deadline:
            return reply
        time.sleep(0.2)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_full_disk_answers_507_keeps_nothing_half_written_and_recovers(backend, postgres, tmp_path):
    db = postgres.create_database(f"full_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    rng = random.Random(3)
    author, ins = professional(rng), make_ins(rng)
    with tmpfs(tmp_path / "data"):
        service = Service(tmp_path, db).start()
        try:
            filler = service.data_dir / "filler"
            fill(filler, leave=1_200_000)
            token = service.token(author)
            accepted: dict[str, bytes] = {}
            for _ in range(12):  # about four fit
                data = os.urandom(DOCUMENT)
                reply = service.call("POST", "/", token, deposit_bundle(ins, author.rpps, data))
                if reply.status != 201:
                    break
                accepted[locations(reply.json(), "DocumentReference")[0]] = data
            assert_fault(reply, (507,))
            assert accepted, "nothing was accepted before the disk filled"
            assert blob_names(service) == {hashlib.sha256(d).hexdigest() for d in accepted.values()}, \
                "a refused deposit left a file (or a temporary one) behind"
            for doc_id, data in accepted.items():
                assert service.call("GET", f"/Binary/{doc_id}", service.token(patient(ins))).body == data

            filler.unlink()  # space comes back: deposits go through again, by themselves
            data = os.urandom(DOCUMENT)
            again = eventually(lambda: service.call("POST", "/", token, deposit_bundle(ins, author.rpps, data)))
            assert again.status == 201, again
        finally:
            service.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_full_disk_refuses_professional_reads_rather_than_answer_them_unaudited(backend, postgres, tmp_path):
    db = postgres.create_database(f"journal_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    rng = random.Random(4)
    author, reader, ins = professional(rng), professional(rng, "pharmacy"), make_ins(rng)
    with tmpfs(tmp_path / "data"):
        service = Service(tmp_path, db).start()
        try:
            reply = service.call("POST", "/", service.token(author), deposit_bundle(ins, author.rpps, b"read me"))
            assert reply.status == 201, reply
            [doc_id] = locations(reply.json(), "DocumentReference")
            filler = service.data_dir / "filler"
            fill(filler)
            for path in (f"/Binary/{doc_id}", f"/DocumentReference/{doc_id}", search_path(ins)):
                assert_fault(service.call("GET", path, service.token(reader)))
            filler.unlink()
            read = eventually(lambda: service.call("GET", f"/Binary/{doc_id}", service.token(reader)))
            assert read.status == 200 and read.body == b"read me"
            history = service.call("GET", f"/AuditEvent?patient.identifier={ins}", service.token(patient(ins)))
            assert history.status == 200, history
            answered = [e["resource"] for e in history.json().get("entry", []) if e["resource"]["outcome"] == "0"
                        and {"reference": f"DocumentReference/{doc_id}"} in [x["what"] for x in e["resource"]["entity"]]]
            assert answered, "the read answered after the disk was freed is not in the access history"
        finally:
            service.stop()


def _call(service: Service, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(service.url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/fhir+json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def test_postgresql_away_mid_load_answers_503_and_the_service_recovers(tmp_path):
    """Deposits, finds and retrieves under way while PostgreSQL stops (for three seconds) and starts again:
    every answer is a 2xx or a 503 with Retry-After, and afterwards the service answers by itself."""
    cluster = PostgresCluster()
    cluster.start()
    try:
        service = Service(tmp_path, cluster.create_database("outage"), *SHARED_OPTIONS).start()
        try:
            _load_through_an_outage(service, cluster)
        finally:
            service.stop()
    finally:
        cluster.stop()


def _load_through_an_outage(service: Service, cluster: PostgresCluster) -> None:
    rng = random.Random(9)
    author, ins = professional(rng), make_ins(rng)
    token = service.token(author)
    reply = service.call("POST", "/", token, deposit_bundle(ins, author.rpps, b"seed"))
    assert reply.status == 201, reply
    [doc_id] = locations(reply.json(), "DocumentReference")
    answers: list[tuple[str, int, dict]] = []
    phase = ["before"]
    stop = threading.Event()

    def load(seed: int) -> None:
        local = random.Random(seed)
        while not stop.is_set():
            kind = local.choice(["deposit", "retrieve", "find"])
            at = phase[0]
            if kind == "deposit":
                status, headers = _call(service, "POST", "/", token,
                                        deposit_bundle(ins, author.rpps, os.urandom(local.randint(100, 5000))))
            else:
                status, headers = _call(service, "GET", f"/Binary/{doc_id}" if kind == "retrieve" else search_path(ins),
                                        token)
            answers.append((at, status, {k.lower(): v for k, v in headers.items()}))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        phase[0] = "outage"  # from the moment the server is told to stop (fast: its sessions are ended)
        cluster.stop_server()
        time.sleep(3)
        phase[0] = "after"
        cluster.start_server()
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not [a for a in answers if a[1] == 500], "a 500 under a database outage"
    faults = [a for a in answers if a[1] >= 300]
    assert all(status == 503 and int(headers["retry-after"]) >= 1 for _, status, headers in faults), faults[:5]
    assert any(at == "outage" and status == 503 for at, status, _ in answers), "no request met the outage"
    assert any(at == "before" and status < 300 for at, status, _ in answers)
    for path in (f"/Binary/{doc_id}", search_path(ins)):
        assert eventually(lambda: service.call("GET", path, token)).status == 200
    deposit = eventually(lambda: service.call("POST", "/", token, deposit_bundle(ins, author.rpps, os.urandom(99))))
    assert deposit.status == 201, deposit


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_file_that_cannot_be_written_answers_503_and_recovers(backend, postgres, tmp_path):
    """The directory a document's file goes in is in the way (a plain file stands there): 503 with
    Retry-After, nothing kept; once it is out of the way, the same deposit goes through."""
    db = postgres.create_database(f"unwritable_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    service = Service(tmp_path, db).start()
    try:
        rng = random.Random(6)
        author, ins = professional(rng), make_ins(rng)
        data = os.urandom(10_000)
        in_the_way = service.data_dir / "blobs" / hashlib.sha256(data).hexdigest()[:2]
        in_the_way.write_bytes(b"not a directory")
        bundle = deposit_bundle(ins, author.rpps, data)
        assert_fault(service.call("POST", "/", service.token(author), bundle), (503,))
        found = service.call("GET", search_path(ins), service.token(patient(ins)))
        assert found.status == 200 and not found.json().get("entry"), "a refused deposit left its metadata"
        in_the_way.unlink()
        assert service.call("POST", "/", service.token(author), bundle).status == 201
        assert service.blob_exists(hashlib.sha256(data).hexdigest())
    finally:
        service.stop()

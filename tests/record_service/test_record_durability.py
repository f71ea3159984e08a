"""Nothing lost: deposits under way, the service killed with SIGKILL, restarted — every acknowledged
deposit is there byte for byte, and nothing half-written is visible."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import Service
from record_documents import deposit_bundle, locations, make_ins, patient, professional, search_path

WRITERS = 8
RUN_BEFORE_KILL_S = 1.5


def _post(url: str, token: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url + "/", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_acknowledged_deposits_survive_sigkill(backend, postgres, tmp_path):
    import json

    db = postgres.create_database(f"nothing_lost_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    service = Service(tmp_path, db).start()
    rng = random.Random(7)
    patients = [make_ins(rng) for _ in range(4)]
    author = professional(rng, "hospital")
    token = service.token(author)
    acknowledged: list[tuple[str, str, bytes]] = []  # (patient, document id, bytes)
    attempted: dict[str, list[bytes]] = {ins: [] for ins in patients}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(seed: int) -> None:
        local = random.Random(seed)
        while not stop.is_set():
            ins = local.choice(patients)
            data = os.urandom(local.randint(1_000, 200_000))
            with lock:
                attempted[ins].append(data)
            try:
                status, body = _post(service.url, token, json.dumps(deposit_bundle(ins, author.rpps, data)).encode())
            except OSError:  # the server died under us: this one was never acknowledged
                return
            if 200 <= status < 300:
                [doc_id] = locations(json.loads(body), "DocumentReference")
                with lock:
                    acknowledged.append((ins, doc_id, data))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    time.sleep(RUN_BEFORE_KILL_S)
    service.stop(signal.SIGKILL)  # the whole process group: server and workers, mid-stream
    stop.set()
    for thread in threads:
        thread.join(15)
    assert len(acknowledged) > 20, "too few deposits before the kill to test anything"

    service.start()
    try:
        for ins, doc_id, data in acknowledged:
            reply = service.call("GET", f"/Binary/{doc_id}", service.token(patient(ins)))
            assert reply.status == 200 and reply.body == data, (doc_id, reply.status)
        # whatever is visible, acknowledged or not, is whole: its bytes are one of those sent for that patient
        for ins in patients:
            found = service.call("GET", search_path(ins, _count="100"), service.token(patient(ins)))
            assert found.status == 200
            sent = {hashlib.sha256(d).hexdigest() for d in attempted[ins]}
            visible = [e["resource"] for e in found.json()["entry"]]
            for doc in visible:
                body = service.call("GET", f"/Binary/{doc['id']}", service.token(patient(ins))).body
                assert hashlib.sha256(body).hexdigest() in sent
                assert len(body) == doc["content"][0]["attachment"]["size"]
        # every file under its final name holds exactly the bytes its name promises
        for path in (service.data_dir / "blobs").glob("??/*"):
            if not path.name.startswith("."):
                assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    finally:
        service.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_acknowledged_reads_stay_in_the_access_history_after_sigkill(backend, postgres, tmp_path):
    """A professional's read is answered only once its access-history row is durable: kill the service
    right after many answered reads, restart it, and the patient's history lists every one of them."""
    import json

    db = postgres.create_database(f"history_kept_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    service = Service(tmp_path, db, "--workers", "2").start()
    rng = random.Random(11)
    ins = make_ins(rng)
    author = professional(rng, "hospital")
    status, _ = _post(service.url, service.token(author), json.dumps(deposit_bundle(ins, author.rpps, b"x" * 100)).encode())
    assert status == 201
    readers = [professional(rng, "town_doctor") for _ in range(4)]
    answered = [0] * len(readers)

    def read(k: int) -> None:
        token = service.token(readers[k])
        for _ in range(60):
            if service.call("GET", search_path(ins), token).status == 200:
                answered[k] += 1

    threads = [threading.Thread(target=read, args=(k,)) for k in range(len(readers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    service.stop(signal.SIGKILL)  # no clean shutdown: nothing gets indexed on the way out
    service.start()
    try:
        history = service.call("GET", f"/AuditEvent?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|{ins}&_count=100",
                               service.token(patient(ins)))
        events = []
        while True:
            assert history.status == 200
            page = history.json()
            events += [e["resource"] for e in page.get("entry", [])]
            following = [link["url"] for link in page["link"] if link["relation"] == "next"]
            if not following:
                break
            history = service.call("GET", following[0].split(str(service.port), 1)[1], service.token(patient(ins)))
        by_reader = {r.rpps: 0 for r in readers}
        for event in events:
            by_reader[event["agent"][0]["who"]["identifier"]["value"][1:]] += 1
        assert [by_reader[r.rpps] for r in readers] == answered
        assert sum(answered) == 240
        recorded = [e["recorded"] for e in events]
        assert recorded == sorted(recorded, reverse=True)  # newest first, across workers and pages
    finally:
        service.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_restart_removes_unacknowledged_files_and_keeps_every_document(backend, postgres, tmp_path):
    """Bytes of deposits whose metadata never committed are removed at the next start; nothing else is."""
    import json

    db = postgres.create_database(f"sweep_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    service = Service(tmp_path, db).start()
    rng = random.Random(5)
    ins, author = make_ins(rng), professional(rng, "lab")
    kept = []
    for n in range(5):
        data = os.urandom(2000 + n)
        status, body = _post(service.url, service.token(author), json.dumps(deposit_bundle(ins, author.rpps, data)).encode())
        assert status == 201
        kept.append((locations(json.loads(body), "DocumentReference")[0], data))
    service.stop()
    blob_dir = service.data_dir / "blobs"
    orphan = hashlib.sha256(b"never committed").hexdigest()
    (blob_dir / orphan[:2]).mkdir(exist_ok=True)
    (blob_dir / orphan[:2] / orphan).write_bytes(b"never committed")
    unfinished = blob_dir / orphan[:2] / f".{orphan}.0badc0de.tmp"
    unfinished.write_bytes(b"never com")
    service.start()
    try:
        assert "removed 1 unfinished and 1 unreferenced document files" in service.log_tail()
        assert not (blob_dir / orphan[:2] / orphan).exists() and not unfinished.exists()
        for doc_id, data in kept:
            assert service.call("GET", f"/Binary/{doc_id}", service.token(patient(ins))).body == data
    finally:
        service.stop()


def _stopped_service_with_one_document(root) -> Service:
    import json

    service = Service(root, None).start()
    rng = random.Random(6)
    ins, author = make_ins(rng), professional(rng, "lab")
    status, _ = _post(service.url, service.token(author), json.dumps(deposit_bundle(ins, author.rpps, b"abc")).encode())
    assert status == 201
    service.stop()
    return service


def _serve_refused(service: Service, *options: str) -> str:
    """``segur serve`` with these options on ``service``'s key: it must refuse to start (exit 2); its stderr."""
    import subprocess

    from conftest import SEGUR

    proc = subprocess.run([SEGUR, "serve", "--port", "0", "--key", str(service.key_file), *options],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    return proc.stderr


def test_a_database_with_another_data_directory_is_refused_at_start(tmp_path):
    service = _stopped_service_with_one_document(tmp_path / "first")
    database = service.data_dir / "records.sqlite3"
    error = _serve_refused(service, "--db", f"sqlite:///{database}", "--data-dir", str(tmp_path / "elsewhere"))
    assert "does not belong to this database" in error


def test_a_data_directory_is_not_swept_for_another_database(tmp_path):
    """A fresh database pointed at a directory holding another database's files is refused, and the files stay."""
    service = _stopped_service_with_one_document(tmp_path / "first")
    files_before = sorted(p.name for p in (service.data_dir / "blobs").glob("??/*"))
    assert files_before
    error = _serve_refused(service, "--db", f"sqlite:///{tmp_path / 'fresh.sqlite3'}", "--data-dir",
                           str(service.data_dir))
    assert "do not belong together" in error
    assert sorted(p.name for p in (service.data_dir / "blobs").glob("??/*")) == files_before


def test_a_second_service_on_the_same_data_directory_is_refused(tmp_path):
    service = Service(tmp_path, None).start()
    try:
        assert "in use by another service" in _serve_refused(service, "--data-dir", str(service.data_dir))
        assert service.call("GET", "/health").status == 200
    finally:
        service.stop()

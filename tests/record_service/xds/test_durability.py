"""Nothing lost on the XDS.b front: ITI-41s under way (MTOM and inline base64, one to four documents per
submission), the service killed with SIGKILL mid-stream, restarted on the same data — every document of an
acknowledged ITI-41 is retrieved by ITI-43 byte for byte and found by ITI-18 FindDocuments, and a submission
that was not acknowledged is all there or not there at all (never some of its documents).

The same harness as tests/record_service/test_record_durability.py: a real ``segur serve`` process on a free
127.0.0.1 port, SQLite and PostgreSQL, its data directory kept across the restart and removed by pytest."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading
import time
import uuid

import pytest

from identity.structure import load_or_create_structure
from identity.vihf import issue_assertion
from record_service.xds import terms
from record_service.xds.terms import q
from tests.record_service.conftest import Service
from tests.record_service.record_documents import make_ins, professional
from tests.record_service.xds import messages, wire

WRITERS = 8
RUN_BEFORE_KILL_S = 2.0
MIN_ACKNOWLEDGED = 20      # submissions answered Success before the kill, or the test proves nothing
RETRIEVE_BATCH = 5         # uniqueIds per ITI-43


class _Vihfs:
    """One VIHF per (professional, patient), made once: signing is slow, and real clients reuse theirs."""

    def __init__(self, service: Service):
        self.structure = load_or_create_structure(service.key_file)
        self.made: dict[tuple, bytes] = {}
        self.lock = threading.Lock()

    def __call__(self, actor, ins: str) -> bytes:
        with self.lock:
            if (actor.rpps, ins) not in self.made:
                self.made[(actor.rpps, ins)] = issue_assertion(self.structure, actor, ins, expires_in=3600)
            return self.made[(actor.rpps, ins)]


def _send(service: Service, vihf: bytes, action: str, path: str, body, as_mtom: bool, timeout: float = 10):
    envelope = messages.envelope(action, body, vihf)
    if as_mtom:
        payload, content_type = wire.mtom(envelope)
        return wire.post(service.url, path, payload, content_type, timeout=timeout)
    return wire.post(service.url, path, envelope, timeout=timeout)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_acknowledged_iti41_documents_survive_sigkill(backend, postgres, tmp_path):
    db = postgres.create_database(f"xds_lost_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    service = Service(tmp_path, db).start()
    vihfs = _Vihfs(service)
    rng = random.Random(41)
    patients = [make_ins(rng) for _ in range(4)]
    authors = [professional(rng, "hospital"), professional(rng, "lab")]
    reader = professional(rng, "town_doctor")
    for author in authors:  # sign before the clock starts
        for ins in patients:
            vihfs(author, ins)
    attempted: list[tuple[str, list[tuple[str, bytes]]]] = []       # (patient, [(uniqueId, bytes)])
    acknowledged: list[tuple[str, list[tuple[str, bytes]]]] = []
    other_answers: list[tuple[int, bytes]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(seed: int) -> None:
        local = random.Random(seed)
        n = 0
        while not stop.is_set():
            ins, author = local.choice(patients), local.choice(authors)
            documents = []
            for _ in range(local.choice([1, 1, 2, 3, 4])):
                n += 1
                documents.append((f"1.2.250.1.999.41.{seed}.{n}.{time.time_ns()}",
                                  os.urandom(local.randint(500, 150_000))))
            submission = (ins, documents)
            with lock:
                attempted.append(submission)
            body = messages.provide_and_register(ins, author.rpps, author.finess, documents)
            try:
                answer = _send(service, vihfs(author, ins), terms.ITI41, "/xds/iti41", body, local.random() < 0.5)
            except OSError:  # the server died under us: never acknowledged
                return
            with lock:
                if answer.status == 200 and answer.registry_status() == ("Success", []):
                    acknowledged.append(submission)
                else:
                    other_answers.append((answer.status, answer.payload[:300]))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    time.sleep(RUN_BEFORE_KILL_S)
    service.stop(signal.SIGKILL)  # the whole process group, mid-stream
    stop.set()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads), "a client still waits 20 s after the kill"
    assert not [a for a in other_answers if a[0] != 503], f"refused before the kill: {other_answers[:3]}"
    assert len(acknowledged) >= MIN_ACKNOWLEDGED, \
        f"only {len(acknowledged)} ITI-41 acknowledged before the kill: too few to test anything"
    assert any(len(documents) > 1 for _, documents in acknowledged), "no acknowledged multi-document submission"

    service.start()
    try:
        sent = {uid: (ins, data) for ins, documents in attempted for uid, data in documents}
        # every acknowledged document: found by FindDocuments, retrieved byte for byte, several per ITI-43
        found: dict[str, set[str]] = {}
        for ins in patients:
            status, uids = _find(service, vihfs(reader, ins), ins)
            assert status == 200, uids
            found[ins] = set(uids)
        for ins, documents in acknowledged:
            missing = [uid for uid, _ in documents if uid not in found[ins]]
            assert not missing, f"acknowledged, not found by ITI-18 after the restart: {missing}"
        for ins in patients:
            wanted = sorted(found[ins])
            assert all(sent.get(uid, ("",))[0] == ins for uid in wanted), "a document nobody sent for this patient"
            for start in range(0, len(wanted), RETRIEVE_BATCH):
                batch = wanted[start:start + RETRIEVE_BATCH]
                answer = _send(service, vihfs(reader, ins), terms.ITI43, "/xds/iti43", messages.retrieve(*batch),
                               False, timeout=30)
                assert answer.status == 200 and answer.registry_status() == ("Success", []), answer.payload[:400]
                assert sorted(answer.documents) == batch
                for uid in batch:
                    assert answer.documents[uid] == sent[uid][1], f"{uid}: other bytes after the restart"
        # nothing half-written: each submission is all there or not at all
        for ins, documents in attempted:
            there = [uid in found[ins] for uid, _ in documents]
            assert all(there) or not any(there), f"a submission partly there after the kill: {there}"
        # every file under its final name holds exactly the bytes its name promises
        for path in (service.data_dir / "blobs").glob("??/*"):
            if not path.name.startswith("."):
                assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    finally:
        service.stop()


def _find(service: Service, vihf: bytes, ins: str) -> tuple[int, list[str]]:
    answer = _send(service, vihf, terms.ITI18, "/xds/iti18", messages.find_documents(ins), False, timeout=30)
    if answer.status != 200 or answer.registry_status() != ("Success", []):
        return answer.status, [answer.payload[:400]]
    return 200, [{e.get("identificationScheme"): e.get("value") for e in entry.findall(q("rim", "ExternalIdentifier"))}
                 [terms.DE_UNIQUE_ID] for entry in answer.body.iter(q("rim", "ExtrinsicObject"))]

"""The lifecycle of document bytes: a refused deposit leaves none behind, whatever refused it; a delete
removes them once no live document has them; a file another deposit of the same bytes needs is never lost
(record_service.blobs.ContentHolds, storage.Store.discard). Both back ends."""

from __future__ import annotations

import hashlib
import json
import os
import random
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import SHARED_OPTIONS, Service
from record_documents import deposit_bundle, locations, make_ins, multi_document_bundle, patient, professional

UNKNOWN = "0" * 32  # a well-formed document id that names nothing
PAYLOAD = 200_000


def blob_files(service: Service) -> set[str]:
    """Every file under the data directory's blobs/ (temporary ones included)."""
    root = service.data_dir / "blobs"
    return {p.name for p in root.glob("??/*")} | {p.name for p in root.glob("??/.*")}


def data_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def post(service: Service, token: str, bundle: dict) -> int:
    """One deposit on its own connection (safe from threads): its status."""
    request = urllib.request.Request(service.url + "/", data=json.dumps(bundle).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def replacing_unknown(ins: str, rpps: str, data: bytes) -> dict:
    return deposit_bundle(ins, rpps, data, replaces=UNKNOWN)


def test_refused_deposits_leave_no_bytes(service, rng):
    """404 (unknown replacement target), 409 early and inside the transaction (a lost masterIdentifier
    race), 403 (an opt-out racing the deposits), a bundle refused for its second document: the blobs
    directory ends up with the accepted documents' files and nothing else."""
    author, ins = professional(rng), make_ins(rng)
    token = service.token(author)
    before, size_before = blob_files(service), data_size(service.data_dir)
    accepted: set[str] = set()

    refused = [os.urandom(PAYLOAD) for _ in range(5)]
    for data in refused:
        assert post(service, token, replacing_unknown(ins, author.rpps, data)) == 404
    kept, dropped = os.urandom(PAYLOAD), os.urandom(PAYLOAD)
    bundle = multi_document_bundle(ins, author.rpps, [kept, dropped])
    bundle["entry"][3]["resource"]["relatesTo"] = [{"code": "replaces",
                                                    "target": {"reference": f"DocumentReference/{UNKNOWN}"}}]
    assert post(service, token, bundle) == 404
    assert blob_files(service) == before, "a refused deposit left files behind"

    master = f"urn:uuid:{uuid.uuid4()}"  # one masterIdentifier, eight contents, sent at once: one wins
    racing = [os.urandom(PAYLOAD) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda d: post(service, token, deposit_bundle(ins, author.rpps, d,
                                                                               master_id=master)), racing))
    assert sorted(statuses) == [201] + [409] * 7, statuses
    accepted.add(sha(racing[statuses.index(201)]))
    assert post(service, token, deposit_bundle(ins, author.rpps, os.urandom(PAYLOAD), master_id=master)) == 409

    closing = make_ins(rng)  # deposits racing the patient's opt-out: each is accepted, or refused (403) bare
    payloads = [os.urandom(PAYLOAD) for _ in range(8)]
    with ThreadPoolExecutor(9) as pool:
        futures = [pool.submit(post, service, token, deposit_bundle(closing, author.rpps, d)) for d in payloads]
        opt_out = service.call("POST", "/Patient/$opt-out", service.token(patient(closing)), {})
        statuses = [f.result() for f in futures]
    assert opt_out.status == 200 and set(statuses) <= {201, 403}, statuses
    accepted |= {sha(d) for d, status in zip(payloads, statuses) if status == 201}

    assert blob_files(service) - before == accepted
    grown = data_size(service.data_dir) - size_before
    assert grown < (len(accepted) + 2) * PAYLOAD, f"the data directory grew {grown} bytes"


@pytest.mark.parametrize("rounds", [12])
def test_identical_bytes_refused_and_accepted_at_once_keep_the_accepted_file(service, rng, rounds):
    """Refused and accepted deposits of the same bytes, at the same time: the accepted document keeps its
    file (content addressing shares it), and once it is gone nothing is left."""
    author, ins = professional(rng), make_ins(rng)
    token = service.token(author)
    before = blob_files(service)
    with ThreadPoolExecutor(4) as pool:
        for _ in range(rounds):
            data = os.urandom(50_000)
            bundles = [replacing_unknown(ins, author.rpps, data), deposit_bundle(ins, author.rpps, data),
                       replacing_unknown(ins, author.rpps, data), replacing_unknown(ins, author.rpps, data)]
            statuses = list(pool.map(lambda b: post(service, token, b), bundles))
            assert statuses == [404, 201, 404, 404]
            assert service.blob_exists(sha(data)), "a refused deposit removed the file of an accepted one"
    assert len(blob_files(service) - before) == rounds


def _deposit(service: Service, author, ins: str, data: bytes) -> str:
    reply = service.call("POST", "/", service.token(author), deposit_bundle(ins, author.rpps, data))
    assert reply.status == 201, reply
    return locations(reply.json(), "DocumentReference")[0]


def test_a_patients_delete_removes_the_bytes(service, rng):
    author, ins = professional(rng), make_ins(rng)
    data = os.urandom(30_000)
    doc_id = _deposit(service, author, ins, data)
    assert service.blob_exists(sha(data))
    assert service.call("DELETE", f"/DocumentReference/{doc_id}", service.token(patient(ins))).status == 204
    assert not service.blob_exists(sha(data))
    assert service.call("GET", f"/Binary/{doc_id}", service.token(author)).status == 404


def test_an_authors_delete_removes_the_bytes_of_every_version(service, rng):
    author, ins = professional(rng), make_ins(rng)
    first, second = os.urandom(20_000), os.urandom(20_000)
    v1 = _deposit(service, author, ins, first)
    reply = service.call("POST", "/", service.token(author), deposit_bundle(ins, author.rpps, second, replaces=v1))
    assert reply.status == 201, reply
    v2 = locations(reply.json(), "DocumentReference")[0]
    assert service.call("DELETE", f"/DocumentReference/{v2}", service.token(author)).status == 204
    assert not service.blob_exists(sha(first)) and not service.blob_exists(sha(second))


def test_a_delete_keeps_bytes_another_live_document_has(service, rng):
    """Two documents, two patients, the same bytes: deleting one leaves the other whole; deleting both
    removes the file."""
    author, ins, other = professional(rng), make_ins(rng), make_ins(rng)
    data = os.urandom(25_000)
    mine, theirs = _deposit(service, author, ins, data), _deposit(service, author, other, data)
    assert service.call("DELETE", f"/DocumentReference/{mine}", service.token(patient(ins))).status == 204
    kept = service.call("GET", f"/Binary/{theirs}", service.token(patient(other)))
    assert kept.status == 200 and kept.body == data
    assert service.call("DELETE", f"/DocumentReference/{theirs}", service.token(patient(other))).status == 204
    assert not service.blob_exists(sha(data))


def test_deletes_racing_deposits_of_the_same_bytes_lose_no_live_document(service, rng):
    """A delete and a new deposit of the same bytes at once: the new document always keeps its file."""
    author, ins = professional(rng), make_ins(rng)
    with ThreadPoolExecutor(2) as pool:
        for _ in range(10):
            data = os.urandom(20_000)
            old = _deposit(service, author, ins, data)
            deleting = pool.submit(service.call, "DELETE", f"/DocumentReference/{old}", service.token(patient(ins)))
            new = pool.submit(_deposit, service, author, ins, data)
            assert deleting.result().status == 204
            kept = service.call("GET", f"/Binary/{new.result()}", service.token(patient(ins)))
            assert kept.status == 200 and kept.body == data


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_share_files_safely(backend, postgres, tmp_path):
    """With two worker processes, refused and accepted deposits of the same bytes (spread over both
    workers) keep every accepted file and leave no refused one."""
    db = postgres.create_database(f"bytes_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    service = Service(tmp_path, db, "--workers", "2", *SHARED_OPTIONS).start()
    try:
        rng = random.Random(11)
        author, ins = professional(rng), make_ins(rng)
        token = service.token(author)
        with ThreadPoolExecutor(6) as pool:
            for _ in range(10):
                data = os.urandom(40_000)
                bundles = [deposit_bundle(ins, author.rpps, data)] + [replacing_unknown(ins, author.rpps, data)] * 5
                assert list(pool.map(lambda b: post(service, token, b), bundles)) == [201] + [404] * 5
                assert service.blob_exists(sha(data))
            lost = [os.urandom(40_000) for _ in range(6)]
            assert set(pool.map(lambda d: post(service, token, replacing_unknown(ins, author.rpps, d)), lost)) == {404}
        assert not any(service.blob_exists(sha(d)) for d in lost)
    finally:
        service.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_start_up_counts_deleted_documents_as_naming_no_file(backend, postgres, tmp_path):
    """A data directory whose documents were all deleted starts (their files are gone by design), and a file
    a deleted document named, left by a removal cut short, is swept at start."""
    db = postgres.create_database(f"sweep_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    service = Service(tmp_path, db).start()
    rng = random.Random(5)
    author, ins = professional(rng), make_ins(rng)
    payloads = [os.urandom(5_000) for _ in range(3)]
    try:
        for data in payloads:
            doc_id = _deposit(service, author, ins, data)
            assert service.call("DELETE", f"/DocumentReference/{doc_id}", service.token(patient(ins))).status == 204
        live = os.urandom(5_000)
        _deposit(service, author, ins, live)
    finally:
        service.stop()
    leftover = service.data_dir / "blobs" / sha(payloads[0])[:2] / sha(payloads[0])
    leftover.parent.mkdir(exist_ok=True)
    leftover.write_bytes(payloads[0])
    service.start()
    try:
        assert not leftover.exists() and service.blob_exists(sha(live))
    finally:
        service.stop()


"""ITI-65 deposit, ITI-67 find, ITI-68 retrieve: the happy paths, idempotency and replacement, on both back ends."""

from __future__ import annotations

import base64
import os

from fhir_validation import validate
from record_documents import (deposit_bundle, locations, make_ins, multi_document_bundle, patient, professional,
                              search_path, instant)


def _deposit(service, token, bundle):
    reply = service.call("POST", "/", token, bundle)
    return reply, (locations(reply.json(), "DocumentReference") if reply.body.startswith(b"{") else [])


def test_deposit_then_find_and_retrieve_byte_for_byte(service, rng):
    ins, lab = make_ins(rng), professional(rng, "lab")
    data = os.urandom(30_000)
    reply, ids = _deposit(service, service.token(lab), deposit_bundle(ins, lab.rpps, data))
    assert reply.status == 201, reply
    validate(reply.json())
    assert reply.json()["type"] == "transaction-response"
    assert len(ids) == 1
    statuses = [e["response"]["status"] for e in reply.json()["entry"]]
    assert statuses[1:] == ["201 Created", "201 Created"]

    found = service.call("GET", search_path(ins), service.token(patient(ins)))
    assert found.status == 200, found
    bundle = validate(found.json())
    assert bundle.type == "searchset"
    [doc] = [e["resource"] for e in found.json()["entry"]]
    assert doc["id"] == ids[0] and doc["status"] == "current"
    assert doc["content"][0]["attachment"]["url"] == f"Binary/{ids[0]}"

    raw = service.call("GET", f"/Binary/{ids[0]}", service.token(lab))
    assert raw.status == 200 and raw.body == data
    assert raw.headers["content-type"].startswith("application/pdf")
    as_fhir = service.call("GET", f"/Binary/{ids[0]}", service.token(lab), headers={"Accept": "application/fhir+json"})
    assert as_fhir.status == 200
    validate(as_fhir.json())
    assert base64.b64decode(as_fhir.json()["data"]) == data
    read = service.call("GET", f"/DocumentReference/{ids[0]}", service.token(patient(ins)))
    assert read.status == 200 and validate(read.json()).id == ids[0]


def test_same_master_identifier_same_content_is_idempotent(service, rng):
    ins, doctor = make_ins(rng), professional(rng, "town_doctor")
    bundle = deposit_bundle(ins, doctor.rpps, os.urandom(5000))
    first, ids = _deposit(service, service.token(doctor), bundle)
    again, ids_again = _deposit(service, service.token(doctor), bundle)
    assert (first.status, again.status) == (201, 200)
    assert ids == ids_again
    assert [e["response"]["status"] for e in again.json()["entry"]][1] == "200 OK"
    found = service.call("GET", search_path(ins), service.token(patient(ins))).json()
    assert len(found["entry"]) == 1


def test_same_master_identifier_other_content_is_a_conflict(service, rng):
    ins, doctor = make_ins(rng), professional(rng, "town_doctor")
    master = "urn:oid:1.2.250.1.999.1." + str(rng.randint(1, 10**12))
    first, ids = _deposit(service, service.token(doctor), deposit_bundle(ins, doctor.rpps, b"one", master_id=master))
    other = service.call("POST", "/", service.token(doctor), deposit_bundle(ins, doctor.rpps, b"two", master_id=master))
    assert first.status == 201 and other.status == 409, other
    validate(other.json())
    raw = service.call("GET", f"/Binary/{ids[0]}", service.token(patient(ins)))
    assert raw.body == b"one"


def test_replacement_supersedes_the_old_document(service, rng):
    ins, doctor = make_ins(rng), professional(rng, "hospital")
    token = service.token(doctor)
    _, [old] = _deposit(service, token, deposit_bundle(ins, doctor.rpps, b"version 1", date=instant(1)))
    reply, [new] = _deposit(service, token, deposit_bundle(ins, doctor.rpps, b"version 2", replaces=old))
    assert reply.status == 201, reply
    current = service.call("GET", search_path(ins, status="current"), service.token(patient(ins))).json()
    assert [e["resource"]["id"] for e in current["entry"]] == [new]
    superseded = service.call("GET", search_path(ins, status="superseded"), service.token(patient(ins))).json()
    [old_doc] = [e["resource"] for e in superseded["entry"]]
    assert old_doc["id"] == old and old_doc["status"] == "superseded" and old_doc["meta"]["versionId"] == "2"
    validate(superseded)
    # the superseded document can still be retrieved, and cannot be replaced a second time
    assert service.call("GET", f"/Binary/{old}", token).body == b"version 1"
    again = service.call("POST", "/", token, deposit_bundle(ins, doctor.rpps, b"version 3", replaces=old))
    assert again.status == 409, again


def test_replacing_someone_elses_document_is_forbidden(service, rng):
    ins, author, other = make_ins(rng), professional(rng, "hospital"), professional(rng, "hospital")
    _, [old] = _deposit(service, service.token(author), deposit_bundle(ins, author.rpps, b"original"))
    reply = service.call("POST", "/", service.token(other), deposit_bundle(ins, other.rpps, b"x", replaces=old))
    assert reply.status == 403, reply
    missing = service.call("POST", "/", service.token(author),
                           deposit_bundle(ins, author.rpps, b"y", replaces="0" * 32))
    assert missing.status == 404, missing
    current = service.call("GET", search_path(ins), service.token(patient(ins))).json()
    assert [e["resource"]["id"] for e in current["entry"]] == [old]


def test_several_documents_in_one_bundle(service, rng):
    ins, lab = make_ins(rng), professional(rng, "lab")
    payloads = [os.urandom(1000) for _ in range(3)]
    reply, ids = _deposit(service, service.token(lab), multi_document_bundle(ins, lab.rpps, payloads))
    assert reply.status == 201 and len(set(ids)) == 3
    for doc_id, data in zip(ids, payloads):
        assert service.call("GET", f"/Binary/{doc_id}", service.token(lab)).body == data


def test_find_filters_newest_first_and_pages(service, rng):
    ins, lab, imaging = make_ins(rng), professional(rng, "lab"), professional(rng, "imaging")
    ids = {}
    for days, who, code in [(30, lab, "11502-2"), (20, imaging, "18748-4"), (10, lab, "11502-2"),
                            (5, imaging, "18748-4"), (1, lab, "11502-2")]:
        _, [doc_id] = _deposit(service, service.token(who),
                               deposit_bundle(ins, who.rpps, os.urandom(100), type_code=code, date=instant(days)))
        ids[days] = doc_id
    me = service.token(patient(ins))

    everything = service.call("GET", search_path(ins), me).json()
    assert [e["resource"]["id"] for e in everything["entry"]] == [ids[d] for d in (1, 5, 10, 20, 30)]
    by_type = service.call("GET", search_path(ins, type="http://loinc.org|18748-4"), me).json()
    assert [e["resource"]["id"] for e in by_type["entry"]] == [ids[5], ids[20]]
    by_author = service.call("GET", search_path(ins, **{"author.identifier": f"urn:oid:1.2.250.1.71.4.2.1|8{lab.rpps}"}),
                             me).json()
    assert [e["resource"]["id"] for e in by_author["entry"]] == [ids[1], ids[10], ids[30]]
    since = (instant(12))[:10]
    recent = service.call("GET", search_path(ins, date=f"ge{since}"), me).json()
    assert [e["resource"]["id"] for e in recent["entry"]] == [ids[1], ids[5], ids[10]]
    window = service.call("GET", search_path(ins, date=f"ge{instant(25)[:10]}") + f"&date=le{instant(8)[:10]}", me).json()
    assert [e["resource"]["id"] for e in window["entry"]] == [ids[10], ids[20]]

    seen, path = [], search_path(ins, _count="2")
    pages = 0
    while path:
        page = service.call("GET", path, me)
        assert page.status == 200, page
        validate(page.json())
        seen += [e["resource"]["id"] for e in page.json()["entry"]]
        links = {link["relation"]: link["url"] for link in page.json()["link"]}
        path = links.get("next", "").removeprefix(service.url) or None
        pages += 1
    assert seen == [ids[d] for d in (1, 5, 10, 20, 30)] and pages == 3


def test_metadata_health_and_metrics(service, rng):
    ins, author = make_ins(rng), professional(rng)
    assert _deposit(service, service.token(author), deposit_bundle(ins, author.rpps, b"counted"))[0].status == 201
    capability = service.call("GET", "/metadata")
    assert capability.status == 200
    validate(capability.json())
    assert service.call("GET", "/health").status == 200
    assert service.call("GET", "/no-such-route").status == 404  # a rejection, so that its counter has a sample
    metrics = service.call("GET", "/metrics").body.decode()
    for name in ("segur_requests_total", "segur_request_seconds", "segur_documents_stored_total",
                 "segur_document_bytes_stored_total", "segur_in_flight_requests", "segur_rejections_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in metrics, name
    assert 'route="/"' in metrics and 'status="201"' in metrics


def test_a_professional_without_facility_finds_and_reads(service, rng):
    ins, author = make_ins(rng), professional(rng, "town_doctor", facility=False)
    reply, [doc_id] = _deposit(service, service.token(author), deposit_bundle(ins, author.rpps, b"no facility"))
    assert reply.status == 201
    found = service.call("GET", search_path(ins), service.token(author))
    assert found.status == 200 and [e["resource"]["id"] for e in found.json()["entry"]] == [doc_id]
    reader = professional(rng, "pharmacy", facility=False)
    assert service.call("GET", f"/Binary/{doc_id}", service.token(reader)).body == b"no facility"


def test_a_document_whose_file_is_gone_is_a_clear_storage_fault_not_a_crash(service, rng):
    """The database and the data directory must belong together; when they do not, the retrieve says so
    (503 with Retry-After, like any storage fault: never a 500)."""
    import hashlib

    ins = make_ins(rng)
    author = professional(rng)
    data = os.urandom(3000)
    reply = service.call("POST", "/", service.token(author), deposit_bundle(ins, author.rpps, data))
    assert reply.status == 201
    [doc_id] = locations(reply.json(), "DocumentReference")
    sha256 = hashlib.sha256(data).hexdigest()
    (service.data_dir / "blobs" / sha256[:2] / sha256).unlink()
    for accept in ({}, {"Accept": "application/fhir+json"}):
        missing = service.call("GET", f"/Binary/{doc_id}", service.token(patient(ins)), headers=accept)
        assert missing.status == 503 and missing.headers.get("retry-after")
        outcome = missing.json()
        validate(outcome)
        assert "data directory" in outcome["issue"][0]["diagnostics"]


def _requests_counted(metrics: str, route: str) -> float:
    prefix = "segur_requests_total{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith(prefix) and f'route="{route}"' in line and 'method="GET"' in line)


def test_metrics_count_the_requests_of_every_worker(tmp_path):
    """With several workers, whichever answers the scrape reports the whole service's figures."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import Service

    service = Service(tmp_path, None, "--workers", "2").start()
    try:
        requests = 200
        with ThreadPoolExecutor(8) as pool:  # a new connection per request: both workers get some
            statuses = list(pool.map(lambda _: service.call("GET", "/metadata").status, range(requests)))
        assert statuses == [200] * requests
        for _ in range(12):  # scrapes land on either worker
            assert _requests_counted(service.call("GET", "/metrics").body.decode(), "/metadata") == requests
    finally:
        service.stop()

"""The operator's bulk load (``POST /$bulk-load``, record_service/bulk_load.py), on SQLite and PostgreSQL: what it
stores is what a deposit stores (retrievable byte for byte, found by a search, one row and one file each), it is
idempotent by masterIdentifier, and bad input gets a precise 4xx OperationOutcome with nothing stored."""

from __future__ import annotations

import copy
import hashlib
import struct
import uuid

import orjson
import pytest

from identity.tokens import issue_operator_token
from segur.bulk_frame import MAGIC, MEDIA_TYPE, encode_document
from tests.record_service.record_documents import document_reference, make_ins, patient, professional


def _frame(documents: list[tuple[dict, dict, bytes]], sha256: dict[int, str] | None = None) -> bytes:
    parts = [MAGIC]
    for i, (resource, depositor, data) in enumerate(documents):
        parts += encode_document(resource, depositor, data, (sha256 or {}).get(i, hashlib.sha256(data).hexdigest()))
    return b"".join(parts)


def _bulk(service, body: bytes, token: str | None = "operator", content_type: str = MEDIA_TYPE):
    if token == "operator":
        token = issue_operator_token(service.key)
    return service.call("POST", "/$bulk-load", token, body, headers={"Content-Type": content_type})


def _documents(rng, count: int, size: int = 3000) -> list[tuple[dict, dict, bytes]]:
    ins = make_ins(rng)
    author = professional(rng, "lab")
    made = []
    for i in range(count):
        data = f"%PDF-1.7 bulk {uuid.uuid4().hex} {i}\n".encode() + rng.randbytes(size)
        resource = document_reference(ins, author.rpps, data, master_id=f"urn:uuid:{uuid.uuid4()}")
        made.append((resource, {"rpps": author.rpps, "sector": author.sector, "finess": author.finess}, data))
    return made


def _search(service, ins: str) -> list[dict]:
    reader = service.token(patient(ins))
    reply = service.call("GET", f"/DocumentReference?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|{ins}"
                                "&_count=100", reader)
    assert reply.status == 200, reply
    return [entry["resource"] for entry in reply.json().get("entry", [])]


def test_bulk_load_stores_what_a_deposit_stores_and_is_idempotent(service, rng):
    documents = _documents(rng, 6)
    ins = documents[0][0]["subject"]["identifier"]["value"]
    first = _bulk(service, _frame(documents))
    assert first.status == 200, first
    answer = first.json()
    assert (answer["created"], answer["existing"]) == (6, 0)
    reader = service.token(patient(ins))
    for (resource, _, data), located in zip(documents, answer["documents"]):
        assert located["masterIdentifier"] == resource["masterIdentifier"]["value"] and located["created"]
        assert located["binary"] == f"Binary/{located['document']}"
        assert located["sha256"] == hashlib.sha256(data).hexdigest()
        retrieved = service.call("GET", f"/{located['binary']}", reader)
        assert retrieved.status == 200 and retrieved.body == data
        assert service.blob_exists(located["sha256"])
    found = _search(service, ins)
    assert sorted(r["id"] for r in found) == sorted(d["document"] for d in answer["documents"])
    stored = found[0]["content"][0]["attachment"]
    assert stored["url"] == f"Binary/{found[0]['id']}" and "data" not in stored and stored["hash"]

    again = _bulk(service, _frame(documents))  # the same request: nothing stored twice, the same locations
    assert again.status == 200, again
    assert (again.json()["created"], again.json()["existing"]) == (0, 6)
    assert again.json()["documents"] == [dict(d, created=False) for d in answer["documents"]]
    assert len(_search(service, ins)) == 6

    more = _documents(rng, 1)  # part new, part known: only the new one is created
    more[0][0]["subject"]["identifier"]["value"] = ins
    mixed = _bulk(service, _frame(documents[:2] + more))
    assert mixed.status == 200 and (mixed.json()["created"], mixed.json()["existing"]) == (1, 2), mixed
    assert len(_search(service, ins)) == 7


def test_a_bulk_document_is_also_known_to_ordinary_deposits(service, rng):
    """An ITI-65 retry of a bulk-loaded document is answered as a retry (same id), not stored again."""
    from tests.record_service.record_documents import deposit_bundle

    (resource, depositor, data), = _documents(rng, 1)
    located = _bulk(service, _frame([(resource, depositor, data)])).json()["documents"][0]
    ins = resource["subject"]["identifier"]["value"]
    author = professional(rng, "lab")
    bundle = deposit_bundle(ins, author.rpps, data, master_id=resource["masterIdentifier"]["value"])
    reply = service.call("POST", "/", service.token(author), bundle)
    assert reply.status == 200, reply
    assert any(e["response"].get("location", "").startswith(f"DocumentReference/{located['document']}")
               for e in reply.json()["entry"])


def _broken(rng, change) -> tuple[bytes, list[tuple[dict, dict, bytes]]]:
    documents = _documents(rng, 3)
    return change(documents), documents


def _corrupt_resource(index: int, edit):
    def change(documents):
        documents = copy.deepcopy(documents)
        edit(documents[index][0])
        return _frame(documents)
    return change


BAD = {
    "magic": (400, lambda d: b"NOTBULK\n" + _frame(d)[len(MAGIC):], "starts with"),
    "empty": (400, lambda d: MAGIC, "at least one document"),
    "truncated": (400, lambda d: _frame(d)[:-10], "left in the body"),
    "header length past the end": (400, lambda d: _frame(d) + struct.pack(">I", 10_000), "header of 10000 bytes"),
    "header not JSON": (400, lambda d: _frame(d[:1]) + struct.pack(">I", 5) + b"{nope", "not valid JSON"),
    "no size": (400, lambda d: _frame(d[:1]) + struct.pack(">I", 2) + b"{}", "with a size"),
    "sha256 differs": (422, lambda d: _frame(d, {1: "0" * 64}), "document 1"),
    "attachment size differs": (422, _corrupt_resource(
        2, lambda r: r["content"][0]["attachment"].update(size=5)), "document 2"),
    "attachment hash differs": (422, _corrupt_resource(
        1, lambda r: r["content"][0]["attachment"].update(hash="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")), "hash"),
    "bad INS": (400, _corrupt_resource(1, lambda r: r["subject"]["identifier"].update(value="123")), "document 1"),
    "not a DocumentReference": (400, _corrupt_resource(0, lambda r: r.update(resourceType="Binary")), "document 0"),
    "status": (400, _corrupt_resource(2, lambda r: r.update(status="superseded")), "status"),
    "bytes inline too": (400, _corrupt_resource(0, lambda r: r["content"][0]["attachment"].update(data="AA==")),
                         "travel in the frame"),
    "unknown content type": (415, _corrupt_resource(
        1, lambda r: r["content"][0]["attachment"].update(contentType="application/x-nothing")), "document 1"),
    "masterIdentifier twice": (400, lambda d: _frame(d + d[:1]), "also document 0"),
    "bad depositor": (400, lambda d: _frame([(d[0][0], {"rpps": "123", "sector": "lab"}, d[0][2])]),
                      "depositor"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_bulk_input_is_a_precise_4xx_and_stores_nothing(service, rng, case):
    status, change, says = BAD[case]
    body, documents = _broken(rng, change)
    reply = _bulk(service, body)
    assert reply.status == status, reply
    outcome = reply.json()
    assert outcome["resourceType"] == "OperationOutcome" and says in outcome["issue"][0]["diagnostics"], outcome
    ins = documents[0][0]["subject"]["identifier"]["value"]
    assert _search(service, ins) == []  # not even the good documents before the bad one
    for _, _, data in documents:
        assert not service.blob_exists(hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("who", ["nobody", "garbage", "professional", "patient", "wrong key"])
def test_only_the_operator_may_bulk_load(service, rng, who):
    documents = _documents(rng, 1)
    ins = documents[0][0]["subject"]["identifier"]["value"]
    token = {"nobody": None, "garbage": "not-a-token", "professional": service.token(professional(rng)),
             "patient": service.token(patient(ins)),
             "wrong key": issue_operator_token(b"another key of thirty-two bytes!")}[who]
    reply = _bulk(service, _frame(documents), token)
    assert reply.status == (403 if who in ("professional", "patient") else 401), reply
    assert _search(service, ins) == []
    # and an operator token is no actor elsewhere
    assert service.call("GET", f"/DocumentReference?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|{ins}",
                        issue_operator_token(service.key)).status == 401


def test_wrong_content_type_is_415(service, rng):
    reply = _bulk(service, _frame(_documents(rng, 1)), content_type="application/json")
    assert reply.status == 415, reply


def test_a_master_identifier_reused_for_other_bytes_refuses_the_whole_request(service, rng):
    documents = _documents(rng, 2)
    assert _bulk(service, _frame(documents[:1])).status == 200
    other = copy.deepcopy(documents[0][0])
    changed = documents[0][2] + b"changed"
    other["content"][0]["attachment"].update(size=len(changed))
    del other["content"][0]["attachment"]["hash"]
    reply = _bulk(service, _frame([documents[1], (other, documents[0][1], changed)]))
    assert reply.status == 409 and "document 1" in reply.json()["issue"][0]["diagnostics"], reply
    ins = documents[0][0]["subject"]["identifier"]["value"]
    assert len(_search(service, ins)) == 1  # document 0 of that request was not stored either
    assert not service.blob_exists(hashlib.sha256(documents[1][2]).hexdigest())
    assert not service.blob_exists(hashlib.sha256(changed).hexdigest())


def test_a_closed_record_refuses_the_bulk_load(service, rng):
    documents = _documents(rng, 2)
    ins = documents[0][0]["subject"]["identifier"]["value"]
    assert service.call("POST", "/Patient/$opt-out", service.token(patient(ins))).status == 200
    reply = _bulk(service, _frame(documents))
    assert reply.status == 403 and "opted out" in reply.json()["issue"][0]["diagnostics"], reply
    for _, _, data in documents:
        assert not service.blob_exists(hashlib.sha256(data).hexdigest())

"""Every class of bad input gets a precise 4xx OperationOutcome naming what is wrong, and nothing is stored."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time

import pytest

from conftest import MAX_DOCUMENT_BYTES
from fhir_validation import validate
from record_documents import (altered, deposit_bundle, make_ins, patient, professional, search_path, the_binary,
                              the_document)
from record_service.auth import Actor, issue_token


def _set(path: str, value):
    """A change setting ``path`` (dots, [i]) of the DocumentReference, or deleting it when value is ...."""

    def change(bundle):
        node = the_document(bundle)
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is ...:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return change


def _binary(key, value):
    def change(bundle):
        the_binary(bundle)[key] = value
    return change


def _entry_resource(index, resource):
    def change(bundle):
        bundle["entry"][index]["resource"] = resource
    return change


# (name, change to a valid bundle, expected status, a fragment the OperationOutcome must name)
BAD_BUNDLES = [
    ("not a Bundle", lambda b: b.update(resourceType="Patient"), 400, "resourceType"),
    ("batch, not transaction", lambda b: b.update(type="batch"), 400, "Bundle.type"),
    ("no entries", lambda b: b.update(entry=[]), 400, "Bundle.entry"),
    ("a Patient entry", _entry_resource(0, {"resourceType": "Patient"}), 400, "resource.resourceType"),
    ("no submission set", lambda b: b["entry"].pop(0), 400, "SubmissionSet"),
    ("missing masterIdentifier", _set("masterIdentifier", ...), 400, "masterIdentifier"),
    ("empty masterIdentifier", _set("masterIdentifier.value", ""), 400, "masterIdentifier.value"),
    ("status not current", _set("status", "superseded"), 400, ".status"),
    ("missing type", _set("type", ...), 400, ".type"),
    ("unknown type code", _set("type.coding.0.code", "99999-9"), 400, "type.coding[0].code"),
    ("type from an unknown system", _set("type.coding.0.system", "http://example.org"), 400, ".type"),
    ("type system not a string (found by the fuzzer)", _set("type.coding.0.system", ["http://loinc.org"]), 400, ".type"),
    ("missing subject", _set("subject", ...), 400, ".subject"),
    ("invalid INS key", _set("subject.identifier.value", "295109912611194"), 400, "subject.identifier.value"),
    ("INS of the wrong system", _set("subject.identifier.system", "urn:oid:1.2.3"), 400, "subject.identifier.system"),
    ("missing date", _set("date", ...), 400, ".date"),
    ("unreadable date", _set("date", "yesterday"), 400, ".date"),
    ("missing author", _set("author", ...), 400, ".author"),
    ("author with a bad RPPS", _set("author.0.identifier.value", "812345678901"), 400, "author[0].identifier.value"),
    ("missing content", _set("content", ...), 400, ".content"),
    ("missing contentType", _set("content.0.attachment.contentType", ...), 400, "attachment.contentType"),
    ("unaccepted content type", _set("content.0.attachment.contentType", "text/html"), 415, "attachment.contentType"),
    ("Binary of another content type", _binary("contentType", "text/plain"), 415, "contentType"),
    ("attachment pointing nowhere", _set("content.0.attachment.url", "urn:uuid:nothing"), 400, "attachment.url"),
    ("declared size differs", _set("content.0.attachment.size", 12345), 422, "attachment.size"),
    ("declared hash differs", _set("content.0.attachment.hash", base64.b64encode(b"x" * 20).decode()), 422,
     "attachment.hash"),
    ("Binary data not base64", _binary("data", "%%% not base64 %%%"), 400, ".data"),
    ("Binary without data", _binary("data", ...), 400, ".data"),
    ("unsupported relation", _set("relatesTo", [{"code": "appends", "target": {"reference": "DocumentReference/x"}}]),
     422, "relatesTo[0].code"),
    ("unknown relation", _set("relatesTo", [{"code": "follows", "target": {"reference": "DocumentReference/x"}}]),
     400, "relatesTo[0].code"),
    ("List of another patient", lambda b: b["entry"][0]["resource"]["subject"]["identifier"].update(
        value="253072A07300443"), 400, "subject.identifier.value"),
]


def _binary_fix(change):
    """_binary(..., ...) means delete; apply that convention."""
    def apply(bundle):
        change(bundle)
        binary = the_binary(bundle) if any(e["resource"].get("resourceType") == "Binary" for e in bundle["entry"]) \
            else {}
        for key in [k for k, v in binary.items() if v is ...]:
            del binary[key]
    return apply


@pytest.mark.parametrize("name,change,status,names", BAD_BUNDLES, ids=[case[0] for case in BAD_BUNDLES])
def test_bad_deposit_is_refused_precisely_and_stores_nothing(service, rng, name, change, status, names):
    ins, author = make_ins(rng), professional(rng)
    data = os.urandom(3000)
    bundle = altered(deposit_bundle(ins, author.rpps, data), _binary_fix(change))
    reply = service.call("POST", "/", service.token(author), bundle)
    assert reply.status == status, reply
    outcome = reply.json()
    validate(outcome)
    issue = outcome["issue"][0]
    assert names in issue["diagnostics"] or any(names in e for e in issue.get("expression", [])), issue
    _assert_nothing_stored(service, ins, data)


def _assert_nothing_stored(service, ins, data):
    found = service.call("GET", search_path(ins), service.token(patient(ins)))
    assert found.status == 200 and "entry" not in found.json()
    assert not service.blob_exists(hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("body,content_type,status", [
    (b"{not json", "application/fhir+json", 400),
    (b"", "application/fhir+json", 400),
    (b"[1, 2, 3]", "application/fhir+json", 400),
    (b'"just a string"', "application/json", 400),
    (b'{"resourceType": "Bundle"}', "text/plain", 415),
    (b'{"resourceType": "Bundle"}', "application/xml", 415),
])
def test_unparseable_bodies(service, rng, body, content_type, status):
    reply = service.call("POST", "/", service.token(professional(rng)), body, headers={"Content-Type": content_type})
    assert reply.status == status, reply
    validate(reply.json())


def test_oversized_document_is_413_and_not_stored(service, rng):
    ins, author = make_ins(rng), professional(rng)
    data = os.urandom(MAX_DOCUMENT_BYTES + 1)
    reply = service.call("POST", "/", service.token(author), deposit_bundle(ins, author.rpps, data))
    assert reply.status == 413, reply
    assert "Binary" in json.dumps(reply.json())
    _assert_nothing_stored(service, ins, data)
    at_limit = os.urandom(MAX_DOCUMENT_BYTES)
    assert service.call("POST", "/", service.token(author), deposit_bundle(ins, author.rpps, at_limit)).status == 201


def test_oversized_body_is_413_before_reading_it(service, rng):
    """Announcing a body over the limit is refused at once: the server does not wait for (or buffer) it."""
    import socket

    declared = MAX_DOCUMENT_BYTES * 3
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as connection:
        connection.sendall((f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/fhir+json\r\n"
                            f"Authorization: Bearer {service.token(professional(rng))}\r\n"
                            f"Content-Length: {declared}\r\n\r\n").encode() + b"{")
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"OperationOutcome" in answer


def test_corsican_ins_is_accepted(service, rng):
    ins, author = make_ins(rng, corsica=True), professional(rng)
    assert service.call("POST", "/", service.token(author), deposit_bundle(ins, author.rpps, b"ok")).status == 201


@pytest.mark.parametrize("query,names", [
    ("", "patient.identifier"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|123", "patient.identifier"),
    ("?patient.identifier=urn:oid:9.9|295109912611193", "patient.identifier"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|295109912611193&status=gone", "status"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|295109912611193&type=http://loinc.org|0000-0", "type"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|295109912611193&date=ge2025-13-45", "date"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|295109912611193&date=xx2025-01-01", "date"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|295109912611193&_count=-1", "_count"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|295109912611193&_count=abc", "_count"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|295109912611193&_cursor=zzz", "_cursor"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|295109912611193&_cursor=%C2%B2.abc", "_cursor"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|295109912611193&_cursor=1" + "0" * 30 + ".abc", "_cursor"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|295109912611193&_count=%C2%B2", "_count"),
    ("?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|295109912611193&author.identifier=42", "author.identifier"),
])
def test_bad_search_parameters_are_400_naming_the_parameter(service, rng, query, names):
    reply = service.call("GET", "/DocumentReference" + query, service.token(professional(rng)))
    assert reply.status == 400, reply
    issue = validate(reply.json()).issue[0]
    assert issue.expression == [names]


@pytest.mark.parametrize("cursor", ["zzz", "%C2%B2.1", "1.%C2%B2", "1" + "0" * 30 + ".1", "1.-2"])
def test_bad_access_history_cursors_are_400(service, rng, cursor):
    ins = make_ins(rng)
    reply = service.call("GET", f"/AuditEvent?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|{ins}&_cursor={cursor}",
                         service.token(patient(ins)))
    assert reply.status == 400, reply
    assert validate(reply.json()).issue[0].expression == ["_cursor"]


def test_bad_block_parameters(service, rng):
    me = service.token(patient(make_ins(rng)))
    assert service.call("POST", "/Patient/$block", me, {"resourceType": "Bundle"}).status == 400
    assert service.call("POST", "/Patient/$block", me, {"resourceType": "Parameters", "parameter": []}).status == 400
    bad = {"resourceType": "Parameters", "parameter": [{"name": "professional", "valueIdentifier": {"value": "1"}}]}
    assert service.call("POST", "/Patient/$block", me, bad).status == 400


# --- identity -----------------------------------------------------------------------------------

def test_missing_or_bad_tokens_are_401(service, rng):
    ins, author = make_ins(rng), professional(rng)
    bundle = deposit_bundle(ins, author.rpps, b"data")
    good = service.token(author)
    forged = issue_token(b"another key of thirty-two characters!!", author, 3600)
    expired = issue_token(service.key, author, 60, now=time.time() - 3600)
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer not.a.jwt"}, {"Authorization": f"Bearer {forged}"},
                    {"Authorization": f"Bearer {expired}"}, {"Authorization": f"Bearer {good}x"}):
        reply = service.call("POST", "/", None, bundle, headers=headers)
        assert reply.status == 401, (headers, reply)
        assert reply.headers.get("www-authenticate", "").startswith("Bearer")
        validate(reply.json())
        assert service.call("GET", search_path(ins), None, headers=headers).status == 401
    _assert_nothing_stored(service, ins, b"data")
    assert service.call("POST", "/", good, bundle).status == 201


def test_a_token_with_malformed_claims_is_401(service, rng):
    import jwt

    claims = {"iss": "segur-record-service", "iat": int(time.time()), "exp": int(time.time()) + 60,
              "sub": "professional:1", "rpps": "12345678901", "sector": "hospital"}
    reply = service.call("GET", search_path(make_ins(rng)), jwt.encode(claims, service.key, algorithm="HS256"))
    assert reply.status == 401, reply
    unsigned = jwt.encode({**claims, "rpps": professional(rng).rpps}, None, algorithm="none")
    assert service.call("GET", search_path(make_ins(rng)), unsigned).status == 401


def test_a_patient_cannot_deposit_for_another_patient(service, rng):
    ins, other = make_ins(rng), make_ins(rng)
    reply = service.call("POST", "/", service.token(Actor(ins=other)), deposit_bundle(ins, professional(rng).rpps, b"x"))
    assert reply.status == 403, reply
    _assert_nothing_stored(service, ins, b"x")


def test_unknown_routes_and_methods_answer_operation_outcomes(service):
    for method, path, status in (("GET", "/Patient/123", 404), ("PUT", "/DocumentReference", 405)):
        reply = service.call(method, path)
        assert reply.status == status, reply
        validate(reply.json())

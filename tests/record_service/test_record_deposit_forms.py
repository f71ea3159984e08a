"""ITI-65 as the DMP's FHIR guide, IHE MHD and HL7 write it: every form of patient, author, replacement
and attachment they allow is accepted, with the same checks; what FHIR R4 forbids is a precise 4xx.

The field cases (tests/record_service/cases/02-08) are replayed as sent, each with a fresh
masterIdentifier so that the shared services can take them again.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from record_documents import (deposit_bundle, locations, make_finess, make_ins, patient, professional, search_path,
                              the_binary, the_document)
from conftest import BACKENDS, Service
from record_service.auth import Actor
from segur.identifiers import INS_NIR_SYSTEM, RPPS_SYSTEM

CASES = Path(__file__).parent / "cases"
FINESS_SYSTEM = "https://finess.esante.gouv.fr"


def field_case(name: str, ins: str | None = None) -> dict:
    """A handed deposit, with a fresh masterIdentifier (and patient, when given)."""
    bundle = json.loads((CASES / name).read_text())
    for entry in bundle["entry"]:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "DocumentReference":
            resource["masterIdentifier"]["value"] = f"urn:uuid:{uuid.uuid4()}"
        if ins and resource.get("resourceType") in ("List", "DocumentReference"):
            resource["subject"] = {"identifier": {"system": INS_NIR_SYSTEM, "value": ins}}
    return bundle


def deposited(reply) -> str:
    assert reply.status == 201, reply
    [doc_id] = locations(reply.json(), "DocumentReference")
    return doc_id


def found_ids(service, token: str, ins: str, **params: str) -> list[str]:
    reply = service.call("GET", search_path(ins, **params), token)
    assert reply.status == 200, reply
    return [e["resource"]["id"] for e in reply.json().get("entry", [])]


def with_subject(bundle: dict, subject: dict) -> dict:
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] in ("List", "DocumentReference"):
            entry["resource"]["subject"] = copy.deepcopy(subject)
    return bundle


# --- the patient ------------------------------------------------------------------------------

def test_field_case_02_the_patient_as_a_conditional_reference(service, rng):
    author = Actor(rpps="99700218896", sector="town_doctor")
    bundle = field_case("02-subject-conditional-reference-minimal.json")
    doc_id = deposited(service.call("POST", "/", service.token(author), bundle))
    assert doc_id in found_ids(service, service.token(author), "179069201204576")


@pytest.mark.parametrize("form", ["conditional", "url-encoded", "absolute", "identifier-and-reference", "contained"])
def test_every_form_mhd_allows_for_the_patient_names_the_same_record(service, rng, form):
    ins, author = make_ins(rng), professional(rng)
    conditional = f"Patient?identifier={INS_NIR_SYSTEM}|{ins}"
    subject = {
        "conditional": {"reference": conditional},
        "url-encoded": {"reference": "Patient?identifier=" + urllib.parse.quote(f"{INS_NIR_SYSTEM}|{ins}", safe="")},
        "absolute": {"reference": "https://dmp.example.fr/fhir/" + conditional},
        "identifier-and-reference": {"reference": conditional,
                                     "identifier": {"system": INS_NIR_SYSTEM, "value": ins}},
        "contained": {"reference": "#patient"},
    }[form]
    bundle = with_subject(deposit_bundle(ins, author.rpps, os.urandom(50)), subject)
    if form == "contained":
        for entry in bundle["entry"]:
            if entry["resource"]["resourceType"] in ("List", "DocumentReference"):
                entry["resource"]["contained"] = [{"resourceType": "Patient", "id": "patient", "identifier": [
                    {"system": INS_NIR_SYSTEM, "value": ins}]}]
    doc_id = deposited(service.call("POST", "/", service.token(author), bundle))
    assert found_ids(service, service.token(patient(ins)), ins) == [doc_id]


@pytest.mark.parametrize("subject,status,where", [
    ({"reference": "Patient/123"}, 422, "subject.reference"),
    ({"reference": "Patient?identifier=urn:oid:1.2.3|{ins}"}, 400, "subject.reference"),
    ({"reference": "Patient?identifier={ins}"}, 400, "subject.reference"),
    ({"reference": "Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|123456789012345"}, 400, "subject.reference"),
    ({"reference": "Patient?name=Dupont"}, 422, "subject.reference"),
    ({"reference": "Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|{ins}&birthdate=1980"}, 422, "subject.reference"),
    ({"reference": "#nobody"}, 400, "subject.reference"),
    ({"reference": "Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|{other}",
      "identifier": {"system": INS_NIR_SYSTEM, "value": "{ins}"}}, 400, "subject"),
    ({"display": "Jean Dupont"}, 400, "subject.identifier"),
])
def test_a_patient_reference_that_names_no_ins_is_refused_with_the_same_checks(service, rng, subject, status, where):
    ins, other, author = make_ins(rng), make_ins(rng), professional(rng)
    subject = json.loads(json.dumps(subject).replace("{ins}", ins).replace("{other}", other))
    bundle = with_subject(deposit_bundle(ins, author.rpps, os.urandom(50)), subject)
    reply = service.call("POST", "/", service.token(author), bundle)
    assert reply.status == status, reply
    issue = reply.json()["issue"][0]
    assert any(where in e for e in issue.get("expression", [])), issue
    assert found_ids(service, service.token(patient(ins)), ins) == []


# --- the authors ------------------------------------------------------------------------------

def test_field_case_03_a_contained_author_keeps_the_authors_rights(service, rng):
    """03-contained-author-masked-invisible-to-author.txt, steps 1-6."""
    depositor = Actor(rpps="99700218896", sector="town_doctor")
    author = Actor(rpps="10001234565", sector="hospital", finess="750000127")
    ins = make_ins(rng)
    doc_id = deposited(service.call("POST", "/", service.token(depositor),
                                    field_case("03-contained-author-deposit.json", ins)))
    by_author = found_ids(service, service.token(depositor), ins, **{"author.identifier": f"{RPPS_SYSTEM}|810001234565"})
    assert by_author == [doc_id]
    assert service.call("POST", f"/DocumentReference/{doc_id}/$mask", service.token(patient(ins)), b"{}").status == 200
    assert service.call("GET", f"/DocumentReference/{doc_id}", service.token(author)).status == 200
    assert found_ids(service, service.token(author), ins) == [doc_id]
    assert service.call("DELETE", f"/DocumentReference/{doc_id}", service.token(author)).status == 204


def _contained_author_bundle(ins: str, depositor: Actor, contained: list[dict], reference: str) -> dict:
    bundle = deposit_bundle(ins, depositor.rpps, os.urandom(60))
    document = the_document(bundle)
    if contained:
        document["contained"] = contained
    document["author"] = [{"reference": reference}]
    return bundle


@pytest.mark.parametrize("kind", ["Practitioner", "PractitionerRole", "PractitionerRole-with-contained-practitioner",
                                  "Organization", "identifier", "conditional-reference"])
def test_authors_resolve_from_contained_resources_and_identifiers_alike(service, rng, kind):
    ins = make_ins(rng)
    depositor, author = professional(rng, "town_doctor", facility=False), professional(rng, "hospital")
    colleague = Actor(rpps=professional(rng).rpps, sector="hospital", finess=author.finess)
    stranger = professional(rng, "pharmacy")
    rpps_id = {"system": RPPS_SYSTEM, "value": "8" + author.rpps}
    org_id = {"system": FINESS_SYSTEM, "value": author.finess}
    contained, reference = {
        "Practitioner": ([{"resourceType": "Practitioner", "id": "a", "identifier": [rpps_id]}], "#a"),
        "PractitionerRole": ([{"resourceType": "PractitionerRole", "id": "r", "practitioner": {"identifier": rpps_id},
                               "organization": {"identifier": org_id}}], "#r"),
        "PractitionerRole-with-contained-practitioner": (
            [{"resourceType": "Practitioner", "id": "p", "identifier": [rpps_id]},
             {"resourceType": "PractitionerRole", "id": "r", "practitioner": {"reference": "#p"}}], "#r"),
        "Organization": ([{"resourceType": "Organization", "id": "o", "identifier": [
            {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1" + author.finess}]}], "#o"),
        "identifier": ([], None),
        "conditional-reference": ([], "Practitioner?identifier=" + urllib.parse.quote(
            f"{RPPS_SYSTEM}|8{author.rpps}", safe="")),
    }[kind]
    bundle = _contained_author_bundle(ins, depositor, contained, reference) if reference else \
        deposit_bundle(ins, author.rpps, os.urandom(60))
    doc_id = deposited(service.call("POST", "/", service.token(depositor), bundle))
    assert service.call("POST", f"/DocumentReference/{doc_id}/$mask", service.token(patient(ins)), b"{}").status == 200
    sees = {who: service.call("GET", f"/DocumentReference/{doc_id}", service.token(actor)).status
            for who, actor in (("author", author), ("colleague", colleague), ("stranger", stranger))}
    facility_named = kind in ("Organization", "PractitionerRole")  # the author's FINESS is among the authors
    assert sees == {"author": 200, "colleague": 200 if facility_named else 404, "stranger": 404}


@pytest.mark.parametrize("author,status", [
    ({"reference": "Practitioner?name=Martin"}, 422),
    ({"reference": "Practitioner?identifier=8123"}, 400),
    ({"reference": "#missing"}, 400),
    ({"reference": "#patient-not-an-author"}, 400),
    ({"identifier": {"system": RPPS_SYSTEM, "value": "8123"}}, 400),
    ({"identifier": {"system": FINESS_SYSTEM, "value": "123456789"}}, 400),
])
def test_an_author_reference_that_does_not_resolve_is_refused(service, rng, author, status):
    ins, depositor = make_ins(rng), professional(rng)
    bundle = deposit_bundle(ins, depositor.rpps, os.urandom(60))
    document = the_document(bundle)
    document["contained"] = [{"resourceType": "Patient", "id": "patient-not-an-author"}]
    document["author"] = [author]
    reply = service.call("POST", "/", service.token(depositor), bundle)
    assert reply.status == status, reply
    assert "author" in reply.json()["issue"][0]["expression"][0]


# --- replacement ------------------------------------------------------------------------------

def _stored(service, token: str, rng, ins: str, author: Actor) -> tuple[str, str]:
    master = f"urn:uuid:{uuid.uuid4()}"
    doc_id = deposited(service.call("POST", "/", token, deposit_bundle(ins, author.rpps, os.urandom(80),
                                                                        master_id=master)))
    return doc_id, master


def test_field_case_06_replacement_with_an_update_document_refs_patch_entry(service, rng):
    author = Actor(rpps="99700218896", sector="town_doctor")
    ins = make_ins(rng)
    old, _ = _stored(service, service.token(author), rng, ins, author)
    text = (CASES / "06-replace-with-patch-entry.json").read_text().replace("<ID-OF-A-STORED-DOCUMENT>", old)
    bundle = json.loads(text)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] in ("List", "DocumentReference"):
            resource["subject"] = {"identifier": {"system": INS_NIR_SYSTEM, "value": ins}}
        if resource["resourceType"] == "DocumentReference":
            resource["masterIdentifier"]["value"] = f"urn:uuid:{uuid.uuid4()}"
    reply = service.call("POST", "/", service.token(author), bundle)
    assert reply.status == 201, reply
    patch_answer = reply.json()["entry"][2]["response"]
    assert patch_answer["status"].startswith("200") and old in patch_answer["location"]
    read = service.call("GET", f"/DocumentReference/{old}", service.token(author)).json()
    assert read["status"] == "superseded"


@pytest.mark.parametrize("form", ["masterIdentifier", "version-specific absolute reference"])
def test_every_form_of_target_names_the_replaced_document(service, rng, form):
    """relatesTo.target as MHD 4.2 allows it: the replaced masterIdentifier, or a reference to it, relative or
    absolute, version-specific or not."""
    ins, author = make_ins(rng), professional(rng)
    token = service.token(author)
    old, master = _stored(service, token, rng, ins, author)
    bundle = deposit_bundle(ins, author.rpps, os.urandom(80))
    target = {"identifier": {"system": "urn:ietf:rfc:3986", "value": master}} if form == "masterIdentifier" else \
        {"reference": f"https://dmp.example.fr/fhir/DocumentReference/{old}/_history/1"}
    the_document(bundle)["relatesTo"] = [{"code": "replaces", "target": target}]
    new = deposited(service.call("POST", "/", token, bundle))
    assert found_ids(service, token, ins, status="current") == [new]
    assert found_ids(service, token, ins, status="superseded") == [old]


def _patch(target: str, path: str = "DocumentReference.status", value: str = "superseded") -> dict:
    return {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "PATCH", "url": f"DocumentReference/{target}"},
            "resource": {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
                {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": path},
                {"name": "value", "valueCode": value}]}]}}


@pytest.mark.parametrize("case", ["patch-without-replacement", "patch-of-another-document", "patch-of-another-field",
                                  "json-patch", "transforms", "unknown-identifier"])
def test_what_the_service_does_not_support_of_replacement_is_refused_precisely(service, rng, case):
    ins, author = make_ins(rng), professional(rng)
    token = service.token(author)
    old, _ = _stored(service, token, rng, ins, author)
    other, _ = _stored(service, token, rng, ins, author)
    bundle = deposit_bundle(ins, author.rpps, os.urandom(80), replaces=None if case.startswith("patch-without")
                            else old)
    if case == "patch-without-replacement":
        bundle["entry"].append(_patch(old))
    elif case == "patch-of-another-document":
        bundle["entry"].append(_patch(other))
    elif case == "patch-of-another-field":
        bundle["entry"].append(_patch(old, "DocumentReference.securityLabel", "V"))
    elif case == "json-patch":
        bundle["entry"].append({"request": {"method": "PATCH", "url": f"DocumentReference/{old}"}, "resource": {
            "resourceType": "Binary", "contentType": "application/json-patch+json",
            "data": base64.b64encode(b'[{"op":"replace","path":"/status","value":"superseded"}]').decode()}})
    elif case == "transforms":
        the_document(bundle)["relatesTo"][0]["code"] = "transforms"
    elif case == "unknown-identifier":
        the_document(bundle)["relatesTo"] = [{"code": "replaces", "target": {"identifier": {"value": "urn:nothing"}}}]
    reply = service.call("POST", "/", token, bundle)
    assert reply.status == (404 if case == "unknown-identifier" else 422), reply
    assert reply.json()["resourceType"] == "OperationOutcome"
    assert sorted(found_ids(service, token, ins, status="current")) == sorted([old, other])


# --- attachments and datatypes ----------------------------------------------------------------

def test_field_case_07_base64_with_mime_line_breaks(service, rng):
    author = Actor(rpps="99700218896", sector="town_doctor")
    bundle = field_case("07-binary-base64-with-newlines.json", make_ins(rng))
    data = base64.b64decode("".join(the_binary(bundle)["data"].split()))
    doc_id = deposited(service.call("POST", "/", service.token(author), bundle))
    assert service.call("GET", f"/Binary/{doc_id}", service.token(author)).body == data


def test_field_case_08_a_content_type_with_a_charset(service, rng):
    author = Actor(rpps="99700218896", sector="town_doctor")
    bundle = field_case("08-contenttype-with-charset.json", make_ins(rng))
    declared = the_document(bundle)["content"][0]["attachment"]["contentType"]
    doc_id = deposited(service.call("POST", "/", service.token(author), bundle))
    reply = service.call("GET", f"/Binary/{doc_id}", service.token(author))
    assert reply.status == 200
    assert reply.headers["content-type"].replace(" ", "").lower() == declared.replace(" ", "").lower()


def test_an_attachment_may_carry_its_bytes_inline(service, rng):
    ins, author = make_ins(rng), professional(rng)
    data = os.urandom(300)
    bundle = deposit_bundle(ins, author.rpps, data)
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Binary"]
    attachment = the_document(bundle)["content"][0]["attachment"]
    del attachment["url"]
    attachment["data"] = base64.encodebytes(data).decode()  # with line breaks, as MIME writes it
    doc_id = deposited(service.call("POST", "/", service.token(author), bundle))
    assert service.call("GET", f"/Binary/{doc_id}", service.token(author)).body == data
    stored = service.call("GET", f"/DocumentReference/{doc_id}", service.token(author)).json()
    assert "data" not in stored["content"][0]["attachment"]
    assert stored["content"][0]["attachment"]["url"] == f"Binary/{doc_id}"


def test_a_binary_named_relative_to_the_bundles_base(service, rng):
    ins, author = make_ins(rng), professional(rng)
    bundle = deposit_bundle(ins, author.rpps, b"relative")
    bundle["entry"][2]["fullUrl"] = "https://dmp.example.fr/fhir/Binary/b1"
    the_document(bundle)["content"][0]["attachment"]["url"] = "Binary/b1"
    deposited(service.call("POST", "/", service.token(author), bundle))


def _set_attachment(name, value):
    return lambda bundle: the_document(bundle)["content"][0]["attachment"].__setitem__(name, value)


@pytest.mark.parametrize("what,change,status,where", [
    ("size as a string", _set_attachment("size", "5"), 400, "attachment.size"),
    ("size with a decimal point", _set_attachment("size", 5.0), 400, "attachment.size"),
    ("negative size", _set_attachment("size", -5), 400, "attachment.size"),
    ("hash not base64", _set_attachment("hash", "not base64!"), 400, "attachment.hash"),
    ("creation not a dateTime", _set_attachment("creation", "2026-06-12T10:00"), 400, "attachment.creation"),
    ("contentType not a MIME type", _set_attachment("contentType", "pdf"), 400, "attachment.contentType"),
    ("date without time zone", lambda b: the_document(b).__setitem__("date", "2026-06-12T10:00:00"), 400, ".date"),
    ("date without time", lambda b: the_document(b).__setitem__("date", "2026-06-12"), 400, ".date"),
    ("period ends before it starts", lambda b: the_document(b).__setitem__("context", {"period": {
        "start": "2026-06-12", "end": "2026-06-01"}}), 400, "context.period"),
    ("base64 without padding", lambda b: the_binary(b).__setitem__("data", "QUJDRA"), 400, ".data"),
    ("an element DocumentReference does not have", lambda b: the_document(b).__setitem__("fooBar", {"x": 1}), 400,
     ".fooBar"),
    ("null", lambda b: the_document(b).__setitem__("description", None), 400, ".description"),
    ("an empty object", lambda b: the_document(b).__setitem__("category", [{}]), 400, ".category"),
    ("language not a string", lambda b: the_document(b).__setitem__("language", 5), 400, ".language"),
    ("a modifier extension", lambda b: the_document(b).__setitem__("modifierExtension", [{
        "url": "http://example.org/entered-in-error", "valueBoolean": True}]), 422, ".modifierExtension"),
    ("a reference to another type", lambda b: the_document(b).__setitem__("relatesTo", [{
        "code": "replaces", "target": {"reference": "NotDocumentReference/abc"}}]), 400, "relatesTo"),
])
def test_what_fhir_r4_forbids_is_refused_naming_the_field(service, rng, what, change, status, where):
    ins, author = make_ins(rng), professional(rng)
    bundle = deposit_bundle(ins, author.rpps, b"ABCD")
    change(bundle)
    reply = service.call("POST", "/", service.token(author), bundle)
    assert reply.status == status, (what, reply)
    assert where in reply.json()["issue"][0]["expression"][0], (what, reply)


@pytest.mark.parametrize("what,change", [
    ("hash with MIME line breaks", lambda b, data: _set_attachment(
        "hash", base64.encodebytes(hashlib.sha1(data).digest()).decode())(b)),
    ("instant with fractional seconds and Z", lambda b, data: the_document(b).__setitem__(
        "date", "2026-06-12T10:00:00.123456789Z")),
    ("creation at year precision", lambda b, data: _set_attachment("creation", "2026")(b)),
    ("upper-case MIME type", lambda b, data: (_set_attachment("contentType", "Application/PDF")(b),
                                              the_binary(b).__setitem__("contentType", "application/pdf"))),
])
def test_what_fhir_r4_allows_is_accepted(service, rng, what, change):
    ins, author = make_ins(rng), professional(rng)
    data = os.urandom(64)
    bundle = deposit_bundle(ins, author.rpps, data)
    change(bundle, data)
    deposited(service.call("POST", "/", service.token(author), bundle))


# --- size of a deposit ------------------------------------------------------------------------

def _many_documents(ins: str, rpps: str, n: int) -> bytes:
    """The adversary case many_documents_one_bundle.py: one Bundle of ``n`` tiny documents."""
    subject = {"identifier": {"system": INS_NIR_SYSTEM, "value": ins}}
    entries = [{"fullUrl": "urn:uuid:ss", "resource": {
        "resourceType": "List", "status": "current", "mode": "working", "subject": subject,
        "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                             "code": "submissionset"}]}}}]
    for i in range(n):
        entries.append({"fullUrl": f"urn:uuid:d{i}", "resource": {
            "resourceType": "DocumentReference", "status": "current",
            "masterIdentifier": {"value": f"urn:uuid:{uuid.uuid4()}"},
            "type": {"coding": [{"system": "http://loinc.org", "code": "11502-2"}]}, "subject": subject,
            "date": "2026-11-01T10:00:00+00:00", "author": [{"identifier": {"system": RPPS_SYSTEM, "value": "8" + rpps}}],
            "content": [{"attachment": {"contentType": "text/plain", "url": f"urn:uuid:b{i}"}}]}})
        entries.append({"fullUrl": f"urn:uuid:b{i}", "resource": {
            "resourceType": "Binary", "contentType": "text/plain",
            "data": base64.b64encode(b"%d %s" % (i, os.urandom(4).hex().encode())).decode()}})
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode()


@pytest.fixture(params=BACKENDS)
def default_service(request, postgres, tmp_path_factory):
    """A service with the default limits (the shared ones take 1 MB documents, so 2.3 MB bodies at most)."""
    database = postgres.create_database(f"forms_{uuid.uuid4().hex[:8]}") if request.param == "postgresql" else None
    service = Service(tmp_path_factory.mktemp("defaults"), database).start()
    try:
        yield service
    finally:
        service.stop()


def test_a_deposit_of_too_many_documents_is_refused_at_once_and_others_are_served(default_service, rng):
    """many_documents_one_bundle.py: 30 000 documents in 24.6 MB, under the body limit."""
    service = default_service
    ins, author = make_ins(rng), professional(rng)
    body = _many_documents(ins, author.rpps, 30_000)
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        answer = pool.submit(service.call, "POST", "/", service.token(author), body)
        worst = 0.0
        while not answer.done():
            t = time.monotonic()
            assert service.call("GET", "/metadata").status == 200
            worst = max(worst, time.monotonic() - t)
            time.sleep(0.05)
        reply = answer.result()
    assert reply.status == 413, reply
    assert "at most" in reply.json()["issue"][0]["diagnostics"]
    assert time.monotonic() - started < 15
    assert worst < 2.0
    assert found_ids(service, service.token(patient(ins)), ins) == []


def test_a_deposit_within_the_bound_is_taken_whole(service, rng):
    ins, author = make_ins(rng), professional(rng)
    reply = service.call("POST", "/", service.token(author), _many_documents(ins, author.rpps, 200))
    assert reply.status == 201, reply
    assert len(locations(reply.json(), "DocumentReference")) == 200


@pytest.mark.parametrize("value", ["0751234567", "3750000127/12345"])
def test_an_author_of_another_idnat_ps_kind_is_accepted(service, rng, value):
    """IdNat_PS is "8" + RPPS, "0" + ADELI or "3" + FINESS + "/" + number (ANS, annexe transverse du CI-SIS)."""
    ins, depositor = make_ins(rng), professional(rng)
    bundle = deposit_bundle(ins, depositor.rpps, os.urandom(60))
    the_document(bundle)["author"] = [{"identifier": {"system": RPPS_SYSTEM, "value": value}}]
    deposited(service.call("POST", "/", service.token(depositor), bundle))


def test_one_master_identifier_deposited_at_once_on_two_workers(two_workers, rng):
    """Sixteen copies of one deposit and four of another content under the same masterIdentifier, all at once
    on two workers: one is created, the copies answer as retries, the others 409; never a 500."""
    service = two_workers
    for _ in range(3):
        ins, author = make_ins(rng), professional(rng)
        master = f"urn:uuid:{uuid.uuid4()}"
        same = deposit_bundle(ins, author.rpps, b"the same bytes", master_id=master)
        other = deposit_bundle(ins, author.rpps, b"other bytes", master_id=master)
        token = service.token(author)
        with ThreadPoolExecutor(20) as pool:
            replies = list(pool.map(lambda body: service.call("POST", "/", token, body), [same] * 16 + [other] * 4))
        statuses = sorted(r.status for r in replies)
        created = [r for r in replies if r.status == 201]
        assert len(created) == 1 and set(statuses) <= {200, 201, 409}, statuses
        assert len({locations(r.json(), "DocumentReference")[0] for r in replies if r.status in (200, 201)}) == 1

"""The XDS.b front on a running service (SQLite and PostgreSQL): round trips across fronts, the VIHF's
refusals, idempotent ITI-41, the patient's mask and TD0.2 — each refused request stores nothing."""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.request

import pytest
from lxml import etree

from identity.structure import load_or_create_structure
from identity.vihf import issue_assertion
from record_service.xds import terms
from record_service.xds.terms import NS, q
from tests.record_service.record_documents import make_ins, patient, professional
from tests.record_service.xds import messages


def _post(service, path: str, body: bytes) -> tuple[int, etree._Element]:
    request = urllib.request.Request(service.url + path, data=body, method="POST",
                                     headers={"Content-Type": "application/soap+xml; charset=UTF-8"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, payload, content_type = answer.status, answer.read(), answer.headers.get("content-type", "")
    except urllib.error.HTTPError as error:
        status, payload, content_type = error.code, error.read(), error.headers.get("content-type", "")
    if content_type.startswith("multipart/related"):
        boundary = content_type.split('boundary="', 1)[1].split('"', 1)[0].encode()
        parts = payload.split(b"--" + boundary)[1:-1]
        root = parts[0].split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
        envelope = etree.fromstring(root)
        binaries = {}
        for part in parts[1:]:
            head, data = part.split(b"\r\n\r\n", 1)
            cid = head.decode().split("Content-ID: <", 1)[1].split(">", 1)[0]
            binaries[cid] = data[:-2]
        for include in list(envelope.iter(q("xop", "Include"))):
            parent = include.getparent()
            parent.remove(include)
            parent.text = base64.b64encode(binaries[include.get("href")[4:]]).decode()
    else:
        envelope = etree.fromstring(payload)
    assert envelope.tag == q("soap", "Envelope"), payload[:300]
    return status, envelope.find(q("soap", "Body"))[0]


class Caller:
    """A professional's software: a VIHF per patient, reused within its lifetime, as real clients do."""

    def __init__(self, service, actor, ins: str, mode: str = "normal"):
        self.service, self.actor, self.ins = service, actor, ins
        self.assertion = issue_assertion(load_or_create_structure(service.key_file), actor, ins, mode)

    def send(self, action: str, path: str, body: etree._Element, assertion: bytes | None | bool = True):
        assertion = self.assertion if assertion is True else assertion
        return _post(self.service, path, messages.envelope(action, body, assertion))

    def deposit(self, *documents, **options):
        rpps, finess = self.actor.rpps, self.actor.finess
        return self.send(terms.ITI41, "/xds/iti41",
                         messages.provide_and_register(self.ins, rpps, finess, list(documents), **options))

    def find(self, **slots):
        status, answer = self.send(terms.ITI18, "/xds/iti18", messages.find_documents(self.ins, **slots))
        assert status == 200 and answer.get("status") == terms.SUCCESS, etree.tostring(answer)[:400]
        return [{e.get("identificationScheme"): e.get("value") for e in entry.findall(q("rim", "ExternalIdentifier"))}
                [terms.DE_UNIQUE_ID] for entry in answer.iter(q("rim", "ExtrinsicObject"))]

    def retrieve(self, *unique_ids):
        return self.send(terms.ITI43, "/xds/iti43", messages.retrieve(*unique_ids))


def _status(answer) -> tuple[str, list[str]]:
    return answer.get("status", "").rsplit(":", 1)[-1], [e.get("errorCode") for e in answer.iter(q("rs", "RegistryError"))]


def _uid(rng) -> str:
    return f"1.2.250.1.999.{rng.randint(1, 10**9)}.{time.time_ns()}"


def test_iti41_then_iti18_iti43_and_iti67_find_it(service, rng):
    caller = Caller(service, professional(rng, "lab"), make_ins(rng))
    data, uid = b"%PDF-1.4 " + rng.randbytes(5000), _uid(rng)
    status, answer = caller.deposit((uid, data))
    assert status == 200 and _status(answer) == ("Success", [])
    assert caller.find() == [uid]
    status, answer = caller.retrieve(uid)
    got = answer.find(q("xdsb", "DocumentResponse"))
    assert _status(answer.find(q("rs", "RegistryResponse")))[0] == "Success"
    assert base64.b64decode(got.findtext(q("xdsb", "Document"))) == data
    found = service.call("GET", f"/DocumentReference?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|{caller.ins}",
                         service.token(caller.actor)).json()
    assert [e["resource"]["masterIdentifier"]["value"] for e in found["entry"]] == [f"urn:oid:{uid}"]


def test_a_document_deposited_by_iti65_is_found_by_iti18_and_retrieved_by_iti43(service, rng):
    from tests.record_service.record_documents import deposit_bundle
    actor, ins = professional(rng), make_ins(rng)
    data = rng.randbytes(3000)
    uid = _uid(rng)
    reply = service.call("POST", "/", service.token(actor), deposit_bundle(ins, actor.rpps, data, master_id=f"urn:oid:{uid}"))
    assert reply.status in (200, 201), reply
    caller = Caller(service, professional(rng), ins)
    assert caller.find() == [uid]
    _, answer = caller.retrieve(uid)
    assert base64.b64decode(answer.find(f"{q('xdsb', 'DocumentResponse')}/{q('xdsb', 'Document')}").text) == data


def test_a_mask_made_in_fhir_hides_the_document_from_iti18_and_iti43(service, rng):
    caller = Caller(service, professional(rng), make_ins(rng))
    uid = _uid(rng)
    caller.deposit((uid, b"secret " + rng.randbytes(100)))
    other = Caller(service, professional(rng), caller.ins)
    assert other.find() == [uid]
    found = service.call("GET", f"/DocumentReference?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|{caller.ins}",
                         service.token(patient(caller.ins))).json()
    document_id = found["entry"][0]["resource"]["id"]
    assert service.call("POST", f"/DocumentReference/{document_id}/$mask", service.token(patient(caller.ins))).status == 200
    assert other.find() == []
    status, answer = other.retrieve(uid)
    assert _status(answer.find(q("rs", "RegistryResponse"))) == ("Failure", ["XDSDocumentUniqueIdError"])
    assert caller.find() == [uid]       # the author still sees it, as on the FHIR front


def test_iti41_is_idempotent_and_refuses_other_bytes_under_the_same_unique_id(service, rng):
    caller = Caller(service, professional(rng), make_ins(rng))
    uid, data = _uid(rng), rng.randbytes(2000)
    assert _status(caller.deposit((uid, data))[1]) == ("Success", [])
    assert _status(caller.deposit((uid, data))[1]) == ("Success", [])
    assert _status(caller.deposit((uid, data + b"x"))[1]) == ("Failure", ["XDSNonIdenticalHash"])
    assert caller.find() == [uid]


def test_a_declared_hash_that_is_not_the_bytes_stores_nothing(service, rng):
    caller = Caller(service, professional(rng), make_ins(rng))
    data = rng.randbytes(1000)
    status, answer = caller.deposit((_uid(rng), data), hash_of={0: hashlib.sha1(b"other").hexdigest()})
    assert status == 200 and _status(answer) == ("Failure", ["XDSRepositoryMetadataError"])
    assert not service.blob_exists(hashlib.sha256(data).hexdigest()) and caller.find() == []


def _signature_flipped(assertion: bytes) -> bytes:
    root = etree.fromstring(assertion)
    value = root.find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue")
    raw = bytearray(base64.b64decode("".join(value.text.split())))
    raw[5] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    return etree.tostring(root)


@pytest.mark.parametrize("kind", ["missing", "bad-signature", "expired", "other-structure", "other-patient"])
def test_a_refused_vihf_is_a_sender_fault_and_stores_nothing(service, rng, tmp_path, kind):
    caller = Caller(service, professional(rng), make_ins(rng))
    assertion = {
        "missing": None,
        "bad-signature": _signature_flipped(caller.assertion),
        "expired": issue_assertion(load_or_create_structure(service.key_file), caller.actor, caller.ins,
                                   expires_in=60, now=time.time() - 3600),
        "other-structure": issue_assertion(load_or_create_structure(tmp_path / "other.key"), caller.actor, caller.ins),
        "other-patient": issue_assertion(load_or_create_structure(service.key_file), caller.actor, make_ins(rng)),
    }[kind]
    data = rng.randbytes(500)
    status, answer = caller.send(terms.ITI41, "/xds/iti41", messages.provide_and_register(
        caller.ins, caller.actor.rpps, caller.actor.finess, [(_uid(rng), data)]), assertion)
    if kind == "other-patient":  # a valid VIHF for another patient: the registry's refusal
        assert status == 200 and _status(answer) == ("Failure", ["XDSPatientIdDoesNotMatch"])
    else:
        assert status == 400 and answer.tag == q("soap", "Fault")
        assert answer.find(f".//{q('rs', 'RegistryError')}").get("errorCode") == "XDSRegistryError"
        assert "VIHF" in answer.findtext(f"{q('soap', 'Reason')}/{q('soap', 'Text')}")
    assert not service.blob_exists(hashlib.sha256(data).hexdigest()) and caller.find() == []


def test_bad_messages_are_sender_faults_never_500(service, rng):
    caller = Caller(service, professional(rng), make_ins(rng))
    for body, content_type in ((b"<not xml", "application/soap+xml"), (b"{}", "application/json"),
                               (messages.envelope(terms.ITI18, messages.find_documents(caller.ins), caller.assertion),
                                "text/xml")):
        request = urllib.request.Request(service.url + "/xds/iti41", data=body, method="POST",
                                         headers={"Content-Type": content_type})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        assert caught.value.code == 400
    status, answer = caller.send(terms.ITI18, "/xds/iti41", messages.find_documents(caller.ins))  # wrong operation
    assert status == 400 and "ActionNotSupported" in etree.tostring(answer).decode()


def test_unknown_query_and_missing_parameter_have_their_codes(service, rng):
    caller = Caller(service, professional(rng), make_ins(rng))
    _, answer = caller.send(terms.ITI18, "/xds/iti18", messages.stored_query("urn:uuid:00000000-0000-0000-0000-000000000000", {}))
    assert _status(answer) == ("Failure", ["XDSUnknownStoredQuery"])
    _, answer = caller.send(terms.ITI18, "/xds/iti18", messages.stored_query(terms.FIND_DOCUMENTS, {}))
    assert _status(answer) == ("Failure", ["XDSStoredQueryMissingParam"])


def test_find_documents_filters_by_type_and_rplc_deprecates_the_replaced(service, rng):
    caller = Caller(service, professional(rng), make_ins(rng))
    lab, letter = _uid(rng), _uid(rng)
    caller.deposit((lab, b"lab report"))
    caller.deposit((letter, b"letter"), type_code="11490-0")
    assert caller.find(**{"$XDSDocumentEntryTypeCode": ["('11490-0^^2.16.840.1.113883.6.1')"]}) == [letter]
    _, answer = caller.send(terms.ITI18, "/xds/iti18", messages.stored_query(terms.GET_DOCUMENTS, {
        "$XDSDocumentEntryUniqueId": [f"('{lab}')"]}))
    entry_uuid = next(answer.iter(q("rim", "ExtrinsicObject"))).get("id")
    newer = _uid(rng)
    assert _status(caller.deposit((newer, b"lab report v2"), replaces={0: entry_uuid})[1]) == ("Success", [])
    assert sorted(caller.find()) == sorted([letter, newer])
    assert caller.find(**{"$XDSDocumentEntryStatus": [f"('{terms.DEPRECATED}')"]}) == [lab]
    _, answer = caller.send(terms.ITI18, "/xds/iti18", messages.stored_query(terms.GET_ASSOCIATIONS, {
        "$uuid": [f"('{entry_uuid}')"]}))
    kinds = [a.get("associationType") for a in answer.iter(q("rim", "Association"))]
    assert sorted(kinds) == sorted([terms.RPLC, terms.HAS_MEMBER])  # replaced by the newer; its submission set's


def test_td02_says_whether_the_record_is_open_and_the_professional_allowed(service, rng):
    caller = Caller(service, professional(rng), make_ins(rng))
    request = etree.Element(q("segur", "TD02Request"), nsmap={"segur": NS["segur"]})
    status, answer = caller.send(terms.TD02, "/xds/td02", request)
    assert status == 200 and answer.findtext(q("segur", "DmpStatus")) == "OK"
    assert answer.findtext(q("segur", "Autorisation")) == "VALIDE"
    assert service.call("POST", "/Patient/$block", service.token(patient(caller.ins)), {
        "resourceType": "Parameters", "parameter": [{"name": "professional", "valueIdentifier": {
            "system": "urn:oid:1.2.250.1.71.4.2.1", "value": "8" + caller.actor.rpps}}]}).status == 200
    _, answer = caller.send(terms.TD02, "/xds/td02", request)
    assert answer.findtext(q("segur", "Autorisation")) == "INTERDIT"


def test_every_xds_read_is_in_the_access_history_a_blocked_search_as_a_refusal(service, rng):
    caller = Caller(service, professional(rng), make_ins(rng), mode="emergency")
    uid = _uid(rng)
    caller.deposit((uid, b"report"))
    assert caller.find() == [uid]
    caller.retrieve(uid)
    me = service.token(patient(caller.ins))
    assert service.call("POST", "/Patient/$block", me, {"resourceType": "Parameters", "parameter": [
        {"name": "professional", "valueIdentifier": {"value": caller.actor.rpps}}]}).status == 200
    assert caller.find() == []
    history = service.call("GET", f"/AuditEvent?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|{caller.ins}", me).json()
    said = [(e["resource"]["subtype"][0]["code"], e["resource"]["outcome"], e["resource"].get("outcomeDesc", ""))
            for e in history["entry"]]
    said.reverse()  # oldest first
    assert [(kind, outcome) for kind, outcome, _ in said] == [("search-type", "0"), ("read", "0"), ("search-type", "4")]
    assert "bris de glace" in said[0][2] and "blocked by the patient" in said[2][2]


@pytest.fixture(scope="module")
def xds_schema():
    from tests import schemas
    return schemas.load(schemas.XDS)


def _valid(schema, element) -> None:
    copy = etree.fromstring(etree.tostring(element))
    assert schema.validate(copy), [f"line {e.line}: {e.message}" for e in schema.error_log
                                   if "X509SerialNumber" not in e.message]


def test_the_answers_follow_the_official_schemas(service, rng, xds_schema):
    caller = Caller(service, professional(rng), make_ins(rng))
    old, new = _uid(rng), _uid(rng)
    status, answer = caller.deposit((old, b"v1"))
    _valid(xds_schema, answer)                                             # rs:RegistryResponse
    _, answer = caller.send(terms.ITI18, "/xds/iti18", messages.stored_query(terms.GET_DOCUMENTS, {
        "$XDSDocumentEntryUniqueId": [f"('{old}')"]}))
    caller.deposit((new, b"v2"), replaces={0: next(answer.iter(q("rim", "ExtrinsicObject"))).get("id")})
    for query in (messages.find_documents(caller.ins), messages.stored_query(
            terms.GET_DOCUMENTS_AND_ASSOCIATIONS, {"$XDSDocumentEntryUniqueId": [f"('{old}','{new}')"]}),
            messages.find_documents(caller.ins, **{"$XDSDocumentEntryTypeCode": ["('nope^^1.2.3')"]})):
        for return_type in ("LeafClass", "ObjectRef"):
            query.find(q("query", "ResponseOption")).set("returnType", return_type)
            _, answer = caller.send(terms.ITI18, "/xds/iti18", query)
            _valid(xds_schema, answer)                                     # query:AdhocQueryResponse
    _, answer = caller.retrieve(new, "1.2.3.4.5")                          # one found, one not: PartialSuccess
    assert _status(answer.find(q("rs", "RegistryResponse")))[0] == "PartialSuccess"
    _valid(xds_schema, answer)                                             # xdsb:RetrieveDocumentSetResponse
    _, answer = caller.deposit((_uid(rng), b"x"), type_code="00000-0")
    _valid(xds_schema, answer)                                             # a Failure with its RegistryErrorList
    status, fault = caller.send(terms.ITI41, "/xds/iti41", messages.provide_and_register(
        caller.ins, caller.actor.rpps, caller.actor.finess, [(_uid(rng), b"x")]), None)
    assert status == 400
    _valid(xds_schema, fault)                                              # soap:Fault with its Detail

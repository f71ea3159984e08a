"""Every class of bad input the FHIR front refuses has its XDS.b counterpart, refused as precisely: a SOAP
Sender fault (4xx) for a message that is not one, or the operation's response with status Failure and the
XDS error code IHE gives (HTTP 200, ITI TF-3 4.2.4); never a 500, never a traceback, and nothing stored
(checked by ITI-18 and ITI-67 afterwards, and the document's bytes are on no disk). On SQLite and PostgreSQL.

| FHIR front (tests/record_service/…)                                     | XDS.b here (case id)                         |
|--------------------------------------------------------------------------|----------------------------------------------|
| test_unparseable_bodies: not JSON, empty body, [1, 2, 3]                 | malformed-xml, empty-body, truncated-envelope, not-an-envelope, empty-soap-body |
| test_unparseable_bodies: wrong Content-Type (415)                        | json-content-type, text-plain, no-content-type, soap11-text-xml, soap11-envelope |
| not a Bundle / batch / a Patient entry                                   | wrong-body-element, iti43-wrong-body-element, iti18-wrong-body-element |
| test_oversized_body_is_413_before_reading_it                             | test_declared_oversize_body_is_413_before_reading_it, test_an_oversize_chunked_body_is_413_and_stores_nothing |
| test_oversized_document_is_413_and_not_stored                            | oversize-document, oversize-document-mtom (XDSRepositoryOutOfResources) |
| many_documents_one_bundle (adversary case): too many documents           | too-many-documents                           |
| invalid INS key / INS of the wrong system / missing subject              | entry-ins-bad-key, set-ins-bad-key, ins-other-authority, ins-not-cx, entry-patient-missing, set-patient-missing |
| author with a bad RPPS / missing author                                  | rpps-bad-key, rpps-wrong-length, finess-malformed, author-missing |
| List of another patient (submission set vs entry)                        | entry-patient-differs (XDSPatientIdDoesNotMatch), vihf-other-patient |
| test_missing_or_bad_tokens_are_401, test_a_token_with_malformed_claims_is_401, test_a_patient_cannot_deposit_for_another_patient | vihf-other-patient, query-other-patient; test_front.test_a_refused_vihf_is_a_sender_fault_and_stores_nothing (missing, bad signature, expired, untrusted, other patient) |
| unknown type code / type from an unknown system / two types              | type-unknown, type-unknown-scheme, type-twice |
| missing type / content / contentType; empty masterIdentifier             | class-missing, format-missing, facility-missing, practice-missing, confidentiality-missing, code-empty, code-no-scheme, unique-id-missing, unique-id-not-oid, unique-id-too-long, mime-type-missing, creation-time-missing, object-type-on-demand |
| unaccepted content type (415) / Binary of another content type           | mime-type-unaccepted                         |
| missing date / unreadable date                                           | creation-time-unreadable, creation-time-month-13, service-time-unreadable, submission-time-unreadable |
| no submission set / batch / no entries                                   | no-submission-set, two-submission-sets, folder, set-unique-id-missing, no-entries, no-object-list |
| attachment pointing nowhere / Binary without data                        | entry-without-document (XDSMissingDocument), document-without-entry (XDSMissingDocumentMetadata), not-a-member, has-member-to-nothing |
| duplicate ids (a masterIdentifier twice; fullUrl twice)                  | unique-id-twice (XDSRepositoryDuplicateUniqueIdInMessage), entry-id-twice, document-twice |
| masterIdentifier reused for other bytes (409)                            | test_a_unique_id_reused_for_other_bytes_or_another_patient (XDSNonIdenticalHash) |
| declared size / hash differs (422)                                       | hash-differs, hash-not-hex, size-differs, size-not-a-number, size-superscript-digit, second-document-bad-hash (all or nothing) |
| Binary data not base64 / base64 with newlines (field case 07: accepted)  | bad-base64; test_base64_with_line_breaks_is_accepted |
| unsupported / unknown relation; replace with a PATCH entry (field 06)    | association-unsupported, rplc-target-not-uuid, rplc-target-unknown; test_rplc_of_another_patients_document |
| — (XML only)                                                             | doctype-entity, billion-laughs, xxe-file, xxe-http, external-dtd, parameter-entity, deep-xml, non-utf8 |
| — (MTOM only)                                                            | mtom-missing-part, mtom-extra-part, mtom-duplicate-part, mtom-bad-boundary, mtom-no-boundary, mtom-unclosed, mtom-start-unknown, mtom-root-not-xop, mtom-href-not-cid |
| — (SOAP only)                                                            | action-missing, action-of-another-operation, must-understand-unknown |
| test_bad_search_parameters_are_400_naming_the_parameter; field cases 04 (unknown parameters ignored), 12 (repeated parameters) | query-too-many-values, query-bad-quoting, query-unknown-parameter, query-unknown-id, query-patient-missing, query-status-missing, query-patient-twice, query-code-slot-twice, query-bad-code, query-bad-date, query-bad-ins, query-other-patient, query-bad-return-type, query-no-adhoc-query, query-author-not-idnat, query-uuid-and-unique-id |
| GET /Binary of an unknown or hidden document (404, no leak); field case 13 (_count over the bound) | retrieve-unknown, retrieve-unknown-repository, retrieve-nothing, retrieve-empty-unique-id, retrieve-too-many, iti43-wrong-body (test_iti43_with_another_body_element_is_a_sender_fault); test_retrieving_another_patients_document_leaks_nothing |
| test_record_storage_faults (503 + Retry-After)                           | test_storage_faults_are_503_receiver_faults_with_retry_after (a blob directory in the way; PostgreSQL away) |
| test_record_fuzz / test_parsing_fuzz (hypothesis)                        | test_a_mutated_submission_is_parsed_or_refused_with_an_xds_error, test_fuzzed_submissions_never_crash_and_refusals_store_nothing |
"""

from __future__ import annotations

import copy
import hashlib
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from identity.structure import load_or_create_structure
from identity.vihf import issue_assertion
from record_service.xds import metadata, soap, terms
from record_service.xds.errors import XdsError
from record_service.xds.terms import NS, q
from tests.record_service.conftest import MAX_DOCUMENT_BYTES, SHARED_OPTIONS, PostgresCluster, Service
from tests.record_service.record_documents import make_ins, patient, professional, search_path
from tests.record_service.xds import messages, wire

MAX_BODY_BYTES = MAX_DOCUMENT_BYTES * 4 // 3 + 1024 * 1024   # the shared services' body limit (settings.max_body_bytes)
MAX_DOCUMENTS = 500                                          # the shared services' --max-documents (the default)
BAD_INS = "295109912611194"                                   # the FHIR test's INS with a wrong key


# --- what a refusal must look like ---------------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    """A SOAP fault: HTTP ``status``, fault code, words its Reason must hold, its Subcode if given."""
    words: str
    status: int = 400
    code: str = "soap:Sender"
    subcode: str | None = None


@dataclass(frozen=True)
class Failure:
    """The operation's response, HTTP 200, status Failure, exactly this one XDS error code."""
    code: str


def _assert_refused(answer: wire.Answer, expected: Fault | Failure) -> None:
    assert answer.status != 500 and b"Traceback" not in answer.payload and b'File "' not in answer.payload, \
        answer.payload[:600]
    assert answer.body is not None, f"not a SOAP envelope: {answer.status} {answer.payload[:300]!r}"
    if isinstance(expected, Fault):
        assert answer.status == expected.status, (answer.status, answer.payload[:600])
        fault = answer.fault()
        assert fault is not None, answer.payload[:600]
        code, subcode, reason = fault
        assert code == expected.code, fault
        assert expected.words.lower() in reason.lower(), fault
        if expected.subcode:
            assert subcode == expected.subcode, fault
    else:
        assert answer.status == 200, (answer.status, answer.payload[:600])
        assert answer.fault() is None, answer.payload[:600]
        assert answer.registry_status() == ("Failure", [expected.code]), answer.payload[:800]


# --- the caller and its messages -------------------------------------------------------------------

class Ctx:
    """One case's professional, patient, VIHF and documents (fresh ones: cases never see each other)."""

    def __init__(self, service: Service, rng: random.Random, documents: int = 1):
        self.service, self.rng = service, rng
        self.actor, self.ins = professional(rng, "lab"), make_ins(rng)
        self.structure = load_or_create_structure(service.key_file)
        self.vihf = issue_assertion(self.structure, self.actor, self.ins)
        self.documents = [(f"1.2.250.1.999.66.{rng.randint(1, 10**9)}.{time.time_ns()}",
                           b"%PDF-1.4 " + os.urandom(2000)) for _ in range(documents)]

    def request(self, mutate=None, documents=None, **options) -> etree._Element:
        request = messages.provide_and_register(self.ins, self.actor.rpps, self.actor.finess,
                                                documents or self.documents, **options)
        if mutate is not None:
            mutate(self, request)
        return request

    def envelope(self, body: etree._Element, action: str = terms.ITI41, vihf: bytes | None | bool = True) -> bytes:
        return messages.envelope(action, body, self.vihf if vihf is True else vihf)

    def deposit(self, mutate=None, **options) -> bytes:
        return self.envelope(self.request(mutate, **options))

    def find(self, ins: str | None = None) -> list[str]:
        ins = ins or self.ins
        vihf = issue_assertion(self.structure, professional(self.rng), ins)
        answer = wire.post(self.service.url, "/xds/iti18", messages.envelope(
            terms.ITI18, messages.find_documents(ins, **{"$XDSDocumentEntryStatus": [
                f"('{terms.APPROVED}','{terms.DEPRECATED}')"]}), vihf))
        assert answer.status == 200 and answer.registry_status() == ("Success", []), answer.payload[:400]
        return [{e.get("identificationScheme"): e.get("value") for e in entry.findall(q("rim", "ExternalIdentifier"))}
                [terms.DE_UNIQUE_ID] for entry in answer.body.iter(q("rim", "ExtrinsicObject"))]

    def assert_nothing_stored(self, *others: str) -> None:
        for ins in (self.ins, *others):
            assert self.find(ins) == [], f"ITI-18 finds documents of {ins} after a refusal"
            found = self.service.call("GET", search_path(ins), self.service.token(patient(ins)))
            assert found.status == 200 and "entry" not in found.json(), "ITI-67 finds documents after a refusal"
        for _, data in self.documents:
            assert not self.service.blob_exists(hashlib.sha256(data).hexdigest()), "a refused document's bytes stayed"


# --- mutations of a valid ITI-41 -------------------------------------------------------------------

def _objects(request):
    return request.find(f"{q('lcm', 'SubmitObjectsRequest')}/{q('rim', 'RegistryObjectList')}")


def _entry(request, index: int = 0):
    return _objects(request).findall(q("rim", "ExtrinsicObject"))[index]


def _package(request):
    return _objects(request).find(q("rim", "RegistryPackage"))


def _classification(obj, scheme):
    return next(c for c in obj.findall(q("rim", "Classification")) if c.get("classificationScheme") == scheme)


def _external(obj, scheme):
    return next(e for e in obj.findall(q("rim", "ExternalIdentifier")) if e.get("identificationScheme") == scheme)


def _slot_values(obj, name):
    return next(s for s in obj.findall(q("rim", "Slot")) if s.get("name") == name).iter(q("rim", "Value"))


def _remove(element) -> None:
    element.getparent().remove(element)


def remove_code(scheme):
    return lambda ctx, r: _remove(_classification(_entry(r), scheme))


def set_code(scheme, code=None, coding_scheme=None):
    def change(ctx, r):
        classification = _classification(_entry(r), scheme)
        if code is not None:
            classification.set("nodeRepresentation", code)
        if coding_scheme is not None:
            next(_slot_values(classification, "codingScheme")).text = coding_scheme
    return change


def set_slot(name, value, of=_entry):
    def change(ctx, r):
        next(_slot_values(of(r), name)).text = value
    return change


def remove_slot(name, of=_entry):
    return lambda ctx, r: _remove(next(s for s in of(r).findall(q("rim", "Slot")) if s.get("name") == name))


def set_external(scheme, value, of=_entry):
    def change(ctx, r):
        _external(of(r), scheme).set("value", value(ctx) if callable(value) else value)
    return change


def remove_external(scheme, of=_entry):
    return lambda ctx, r: _remove(_external(of(r), scheme))


def set_author(person=None, institution=None):
    def change(ctx, r):
        author = _classification(_entry(r), terms.DE_AUTHOR)
        if person is not None:
            next(_slot_values(author, "authorPerson")).text = person
        if institution is not None:
            next(_slot_values(author, "authorInstitution")).text = institution
    return change


def _duplicate_type(ctx, r):
    entry = _entry(r)
    entry.append(copy.deepcopy(_classification(entry, terms.DE_TYPE)))


def _second_package(ctx, r):
    objects = _objects(r)
    second = copy.deepcopy(_package(r))
    second.set("id", "SubmissionSet02")
    objects.append(second)
    etree.SubElement(objects, q("rim", "Classification"), id=f"urn:uuid:{uuid.uuid4()}",
                     classifiedObject="SubmissionSet02",
                     classificationNode=terms.SUBMISSION_SET)


def _folder(ctx, r):
    etree.SubElement(_objects(r), q("rim", "RegistryPackage"), id="Folder01")


def _no_set_classification(ctx, r):
    for c in _objects(r).findall(q("rim", "Classification")):
        if c.get("classificationNode") == terms.SUBMISSION_SET:
            _remove(c)


def _no_entries(ctx, r):
    for entry in _objects(r).findall(q("rim", "ExtrinsicObject")):
        _remove(entry)
    for association in _objects(r).findall(q("rim", "Association")):
        _remove(association)
    for document in r.findall(q("xdsb", "Document")):
        _remove(document)


def _no_object_list(ctx, r):
    _remove(_objects(r))


def _associations(r, kind=terms.HAS_MEMBER):
    return [a for a in _objects(r).findall(q("rim", "Association")) if a.get("associationType") == kind]


def _not_a_member(ctx, r):
    _remove(_associations(r)[0])


def _member_of_nothing(ctx, r):
    _associations(r)[0].set("targetObject", "NoSuchEntry")


def _association_type(kind):
    return lambda ctx, r: _associations(r)[0].set("associationType", kind)


def _rplc(target):
    def change(ctx, r):
        etree.SubElement(_objects(r), q("rim", "Association"), id=f"urn:uuid:{uuid.uuid4()}",
                         associationType=terms.RPLC,
                         sourceObject="Document00", targetObject=target)
    return change


def _entry_id_twice(ctx, r):
    second = _entry(r, 1)
    second.set("id", "Document00")
    for element in second.iter():
        for attribute in ("classifiedObject", "registryObject"):
            if element.get(attribute) == "Document01":
                element.set(attribute, "Document00")
    for association in _associations(r):
        if association.get("targetObject") == "Document01":
            association.set("targetObject", "Document00")
    for document in r.findall(q("xdsb", "Document")):
        if document.get("id") == "Document01":
            _remove(document)


def _unique_id_twice(ctx, r):
    _external(_entry(r, 1), terms.DE_UNIQUE_ID).set("value", ctx.documents[0][0])


def _document_twice(ctx, r):
    r.append(copy.deepcopy(r.find(q("xdsb", "Document"))))


def _object_type(ctx, r):
    _entry(r).set("objectType", "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248")  # on-demand


def _mime_type(value):
    def change(ctx, r):
        if value is None:
            del _entry(r).attrib["mimeType"]
        else:
            _entry(r).set("mimeType", value)
    return change


# --- raw messages ------------------------------------------------------------------------------------

def _text_replaced(envelope: bytes, old: bytes, new: bytes, doctype: bytes = b"") -> bytes:
    assert old in envelope
    head, rest = envelope.split(b"?>", 1)
    return head + b"?>" + doctype + rest.replace(old, new, 1)


def _doctype(ctx, doctype: str, text: bytes) -> bytes:
    return _text_replaced(ctx.deposit(), b"fr-FR", text, doctype.encode())


def _billion_laughs() -> str:
    entities = ['<!ENTITY l0 "lol">'] + [f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    return f"<!DOCTYPE soap:Envelope [{''.join(entities)}]>"


def _deep(ctx) -> bytes:
    depth = 5000
    return _text_replaced(ctx.deposit(), b"fr-FR", b"<a>" * depth + b"x" + b"</a>" * depth)


def _mtom(ctx, **options) -> tuple[bytes, str]:
    return wire.mtom(ctx.deposit(), **options)


def _header_block(ctx) -> bytes:
    envelope = etree.fromstring(ctx.deposit())
    etree.SubElement(envelope.find(q("soap", "Header")), "{urn:example:unknown}Block",
                     {q("soap", "mustUnderstand"): "true"})
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _no_action(ctx) -> bytes:
    envelope = etree.fromstring(ctx.deposit())
    _remove(envelope.find(f"{q('soap', 'Header')}/{q('wsa', 'Action')}"))
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _soap11(ctx) -> bytes:
    return ctx.deposit().replace(NS["soap"].encode(), b"http://schemas.xmlsoap.org/soap/envelope/")


def _bad_base64(ctx) -> bytes:
    envelope = etree.fromstring(ctx.deposit())
    next(envelope.iter(q("xdsb", "Document"))).text = "%%% not base64 %%%"
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _empty_soap_body(ctx) -> bytes:
    envelope = etree.fromstring(ctx.deposit())
    envelope.find(q("soap", "Body")).remove(envelope.find(q("soap", "Body"))[0])
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _mtom_href(ctx) -> tuple[bytes, str]:
    body, content_type = _mtom(ctx)
    return body.replace(b'href="cid:', b'href="http://127.0.0.1/', 1), content_type


# ITI-41 cases: (id, build(ctx) -> (body, content_type), expected); bodies are SOAP 1.2 unless said
def _xml(mutate=None, **options):
    return lambda ctx: (ctx.deposit(mutate, **options), wire.SOAP_XML)


def _raw(body_of, content_type=wire.SOAP_XML):
    return lambda ctx: (body_of(ctx), content_type)


META = "XDSRegistryMetadataError"
DEPOSITS = [
    # the message
    ("malformed-xml", _raw(lambda ctx: b"<not xml"), Fault("not well-formed")),
    ("empty-body", _raw(lambda ctx: b""), Fault("not well-formed")),
    ("truncated-envelope", _raw(lambda ctx: ctx.deposit()[:-40]), Fault("not well-formed")),
    ("not-an-envelope", _raw(lambda ctx: etree.tostring(ctx.request())), Fault("not a SOAP 1.2 Envelope")),
    ("empty-soap-body", _raw(_empty_soap_body), Fault("Body is missing or empty")),
    ("json-content-type", _raw(lambda ctx: b'{"resourceType": "Bundle"}', "application/json"),
     Fault("expected application/soap+xml")),
    ("text-plain", _raw(lambda ctx: ctx.deposit(), "text/plain"), Fault("expected application/soap+xml")),
    ("no-content-type", _raw(lambda ctx: ctx.deposit(), None), Fault("expected application/soap+xml")),
    ("soap11-text-xml", _raw(lambda ctx: ctx.deposit(), "text/xml; charset=UTF-8"),
     Fault("SOAP 1.1", code="soap:VersionMismatch")),
    ("soap11-envelope", _raw(_soap11), Fault("expected SOAP 1.2", code="soap:VersionMismatch")),
    ("wrong-body-element", _raw(lambda ctx: ctx.envelope(messages.find_documents(ctx.ins))),
     Fault("ProvideAndRegisterDocumentSetRequest")),
    ("action-missing", _raw(_no_action), Fault("wsa:Action is missing",
                                               subcode="wsa:MessageAddressingHeaderRequired")),
    ("action-of-another-operation", _raw(lambda ctx: ctx.envelope(ctx.request(), terms.ITI18)),
     Fault("is not this endpoint", subcode="wsa:ActionNotSupported")),
    ("must-understand-unknown", _raw(_header_block), Fault("not understood", code="soap:MustUnderstand")),
    ("bad-base64", _raw(_bad_base64), Fault("not valid base64")),
    # XML that must be refused, never resolved
    ("doctype-entity", _raw(lambda ctx: _doctype(ctx, '<!DOCTYPE soap:Envelope [<!ENTITY x "fr-FR">]>', b"&x;")),
     Fault("DOCTYPE")),
    ("billion-laughs", _raw(lambda ctx: _doctype(ctx, _billion_laughs(), b"&l9;")), Fault("DOCTYPE")),
    ("xxe-file", _raw(lambda ctx: _doctype(ctx, '<!DOCTYPE soap:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
                                           b"&x;")), Fault("DOCTYPE")),
    ("xxe-http", _raw(lambda ctx: _doctype(ctx, f'<!DOCTYPE soap:Envelope [<!ENTITY x SYSTEM "{ctx.listener}/x">]>',
                                           b"&x;")), Fault("DOCTYPE")),
    ("external-dtd", _raw(lambda ctx: _doctype(ctx, f'<!DOCTYPE soap:Envelope SYSTEM "{ctx.listener}/dtd">', b"fr-FR")),
     Fault("DOCTYPE")),
    ("parameter-entity", _raw(lambda ctx: _doctype(
        ctx, f'<!DOCTYPE soap:Envelope [<!ENTITY % p SYSTEM "{ctx.listener}/p"> %p;]>', b"fr-FR")), Fault("DOCTYPE")),
    ("deep-xml", _raw(_deep), Fault("not well-formed")),
    ("non-utf8", _raw(lambda ctx: _text_replaced(ctx.deposit(), b"fr-FR", b"fr-\xe9\xe8FR")), Fault("not well-formed")),
    # MTOM/XOP
    ("mtom-missing-part", lambda ctx: _mtom(ctx, drop={0}), Fault("which the message does not have")),
    ("mtom-extra-part", lambda ctx: _mtom(ctx, extra={"stray@test": b"stray bytes"}), Fault("no xop:Include")),
    ("mtom-duplicate-part", lambda ctx: _mtom(ctx, duplicate=0), Fault("two MIME parts")),
    ("mtom-bad-boundary", lambda ctx: _mtom(ctx, header_boundary="NotTheBoundary"), Fault("multipart/related")),
    ("mtom-no-boundary", lambda ctx: (_mtom(ctx)[0], 'multipart/related; type="application/xop+xml"'),
     Fault("boundary")),
    ("mtom-unclosed", lambda ctx: _mtom(ctx, closed=False), Fault("multipart/related")),
    ("mtom-start-unknown", lambda ctx: _mtom(ctx, start="nowhere@test"), Fault("start part")),
    ("mtom-root-not-xop", lambda ctx: _mtom(ctx, root_type="text/plain"), Fault("root MIME part")),
    ("mtom-href-not-cid", _mtom_href, Fault("not a cid: URL")),
    # sizes and counts
    ("oversize-document", _xml(documents=[("1.2.250.1.999.66.1", os.urandom(MAX_DOCUMENT_BYTES + 1))]),
     Failure("XDSRepositoryOutOfResources")),
    ("oversize-document-mtom", lambda ctx: wire.mtom(ctx.deposit(documents=[
        (ctx.documents[0][0], os.urandom(MAX_DOCUMENT_BYTES + 1))])), Failure("XDSRepositoryOutOfResources")),
    ("too-many-documents", _xml(documents=[(f"1.2.250.1.999.67.{i}.{time.time_ns()}", b"%d" % i)
                                           for i in range(MAX_DOCUMENTS + 1)]), Failure(META)),
    # identifiers
    ("entry-ins-bad-key", _xml(patient_of={0: BAD_INS}), Failure(META)),
    ("set-ins-bad-key", _xml(set_external(terms.SS_PATIENT_ID, messages.cx(BAD_INS), _package)), Failure(META)),
    ("ins-other-authority", _xml(set_external(terms.DE_PATIENT_ID, lambda ctx: f"{ctx.ins}^^^&1.2.3&ISO")),
     Failure(META)),
    ("ins-not-cx", _xml(set_external(terms.DE_PATIENT_ID, lambda ctx: ctx.ins)), Failure(META)),
    ("entry-patient-missing", _xml(remove_external(terms.DE_PATIENT_ID)), Failure(META)),
    ("set-patient-missing", _xml(remove_external(terms.SS_PATIENT_ID, _package)), Failure(META)),
    ("rpps-bad-key", _xml(set_author(person="812345678901^MARTIN^CLAIRE^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^^IDNPS")),
     Failure(META)),
    ("rpps-wrong-length", _xml(set_author(person="81234567890^MARTIN^CLAIRE^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^^IDNPS")),
     Failure(META)),
    ("finess-malformed", _xml(set_author(institution="Labo^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1123456789")),
     Failure(META)),
    ("author-missing", _xml(remove_code(terms.DE_AUTHOR)), Failure(META)),
    ("entry-patient-differs", lambda ctx: (ctx.deposit(patient_of={0: ctx.other}), wire.SOAP_XML),
     Failure("XDSPatientIdDoesNotMatch")),
    ("vihf-other-patient", lambda ctx: (ctx.envelope(ctx.request(), vihf=issue_assertion(
        ctx.structure, ctx.actor, ctx.other)), wire.SOAP_XML), Failure("XDSPatientIdDoesNotMatch")),
    # codes
    ("type-unknown", _xml(type_code="99999-9"), Failure(META)),
    ("type-unknown-scheme", _xml(set_code(terms.DE_TYPE, coding_scheme="1.2.3.4")), Failure(META)),
    ("type-twice", _xml(_duplicate_type), Failure(META)),
    ("class-missing", _xml(remove_code(terms.DE_CLASS)), Failure(META)),
    ("format-missing", _xml(remove_code(terms.DE_FORMAT)), Failure(META)),
    ("facility-missing", _xml(remove_code(terms.DE_FACILITY_TYPE)), Failure(META)),
    ("practice-missing", _xml(remove_code(terms.DE_PRACTICE)), Failure(META)),
    ("confidentiality-missing", _xml(remove_code(terms.DE_CONFIDENTIALITY)), Failure(META)),
    ("code-empty", _xml(set_code(terms.DE_CLASS, code="")), Failure(META)),
    ("code-no-scheme", _xml(lambda ctx, r: _remove(next(
        _classification(_entry(r), terms.DE_CLASS).iter(q("rim", "Slot"))))), Failure(META)),
    # required metadata
    ("unique-id-missing", _xml(remove_external(terms.DE_UNIQUE_ID)), Failure(META)),
    ("unique-id-not-oid", _xml(set_external(terms.DE_UNIQUE_ID, "not-an-oid")), Failure(META)),
    ("unique-id-too-long", _xml(set_external(terms.DE_UNIQUE_ID, "1.2." + ".".join(["123456789"] * 20))),
     Failure(META)),
    ("mime-type-missing", _xml(_mime_type(None)), Failure(META)),
    ("mime-type-unaccepted", _xml(_mime_type("text/html")), Failure(META)),
    ("creation-time-missing", _xml(remove_slot("creationTime")), Failure(META)),
    ("object-type-on-demand", _xml(_object_type), Failure(META)),
    ("set-unique-id-missing", _xml(remove_external(terms.SS_UNIQUE_ID, _package)), Failure(META)),
    # dates
    ("creation-time-unreadable", _xml(set_slot("creationTime", "yesterday")), Failure(META)),
    ("creation-time-month-13", _xml(set_slot("creationTime", "20261345101500")), Failure(META)),
    ("service-time-unreadable", _xml(set_slot("serviceStartTime", "2026-11-30")), Failure(META)),
    ("submission-time-unreadable", _xml(set_slot("submissionTime", "20261130T10", _package)), Failure(META)),
    # structure and references
    ("no-submission-set", _xml(_no_set_classification), Failure(META)),
    ("two-submission-sets", _xml(_second_package), Failure(META)),
    ("folder", _xml(_folder), Failure(META)),
    ("no-entries", _xml(_no_entries), Failure(META)),
    ("no-object-list", _xml(_no_object_list), Failure(META)),
    ("not-a-member", _xml(_not_a_member), Failure(META)),
    ("has-member-to-nothing", _xml(_member_of_nothing), Failure(META)),
    ("association-unsupported", _xml(_association_type("urn:ihe:iti:2007:AssociationType:APND")), Failure(META)),
    ("rplc-target-not-uuid", _xml(_rplc("Document07")), Failure(META)),
    ("rplc-target-unknown", _xml(_rplc(f"urn:uuid:{uuid.uuid4()}")), Failure(META)),
    ("entry-without-document", _xml(drop_document=0), Failure("XDSMissingDocument")),
    ("document-without-entry", _xml(extra_document=True), Failure("XDSMissingDocumentMetadata")),
    # duplicates
    ("unique-id-twice", lambda ctx: (ctx.deposit(_unique_id_twice, documents=ctx.two()), wire.SOAP_XML),
     Failure("XDSRepositoryDuplicateUniqueIdInMessage")),
    ("entry-id-twice", lambda ctx: (ctx.deposit(_entry_id_twice, documents=ctx.two()), wire.SOAP_XML), Failure(META)),
    ("document-twice", _xml(_document_twice), Failure(META)),
    # hash and size
    ("hash-differs", _xml(hash_of={0: hashlib.sha1(b"other").hexdigest()}), Failure("XDSRepositoryMetadataError")),
    ("hash-not-hex", _xml(hash_of={0: "zz" * 20}), Failure("XDSRepositoryMetadataError")),
    ("size-differs", _xml(size_of={0: 12345}), Failure("XDSRepositoryMetadataError")),
    ("size-not-a-number", _xml(size_of={0: "12a"}), Failure("XDSRepositoryMetadataError")),
    ("size-superscript-digit", _xml(size_of={0: "\u00b2"}), Failure("XDSRepositoryMetadataError")),  # found by the fuzzer
    ("second-document-bad-hash", lambda ctx: (ctx.deposit(documents=ctx.two(), hash_of={1: "00" * 20}), wire.SOAP_XML),
     Failure("XDSRepositoryMetadataError")),
]


class _Listener:
    """A 127.0.0.1 port that counts the connections made to it: an entity or DTD resolved would call it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.calls = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                continue
            self.calls += 1
            connection.close()

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def listener():
    server = _Listener()
    yield server
    server.close()


def _ctx(service, rng, listener, documents: int = 1) -> Ctx:
    ctx = Ctx(service, rng, documents)
    ctx.listener = listener.url
    ctx.other = make_ins(rng)
    extra = [(f"1.2.250.1.999.68.{rng.randint(1, 10**9)}.{time.time_ns()}", b"%PDF-1.4 " + os.urandom(1500))]
    ctx.two = lambda: ctx.documents + extra
    ctx.documents_all = ctx.documents + extra
    return ctx


@pytest.mark.parametrize("name,build,expected", DEPOSITS, ids=[case[0] for case in DEPOSITS])
def test_a_bad_iti41_is_refused_precisely_and_stores_nothing(service, rng, listener, name, build, expected):
    ctx = _ctx(service, rng, listener)
    calls_before = listener.calls
    body, content_type = build(ctx)
    answer = wire.post(service.url, "/xds/iti41", body, content_type)
    _assert_refused(answer, expected)
    assert listener.calls == calls_before, "the service fetched an external entity or DTD"
    assert b"root:x:0" not in answer.payload
    ctx.documents = ctx.documents_all
    ctx.assert_nothing_stored(ctx.other)


def _sent_raw(service, head: bytes, body: bytes) -> bytes:
    """What the service answers to ``head`` + ``body`` sent on a socket (it may answer, and close, before the body
    is all sent)."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as connection:
        try:
            connection.sendall(head)
            for start in range(0, len(body), 65536):
                connection.sendall(body[start:start + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def test_declared_oversize_body_is_413_before_reading_it(service, rng):
    answer = _sent_raw(service, (f"POST /xds/iti41 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {wire.SOAP_XML}\r\n"
                                 f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n").encode(), b"<")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"Fault" in answer and b"larger than" in answer and b"Traceback" not in answer


def test_an_oversize_chunked_body_is_413_and_stores_nothing(service, rng, listener):
    """No Content-Length (chunked): refused as soon as what arrives passes the limit."""
    ctx = _ctx(service, rng, listener)
    ctx.documents = [(ctx.documents[0][0], os.urandom(MAX_BODY_BYTES))]
    body = ctx.deposit()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536])
                       for i in range(0, len(body), 65536)) + b"0\r\n\r\n"
    answer = _sent_raw(service, (f"POST /xds/iti41 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {wire.SOAP_XML}\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n").encode(), chunked)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"Fault" in answer and b"Traceback" not in answer
    ctx.assert_nothing_stored()


def test_base64_with_line_breaks_is_accepted(service, rng, listener):
    """Field case 07 on the XDS front: base64 cut in lines (as MIME encoders do) is the same bytes."""
    ctx = _ctx(service, rng, listener)
    envelope = etree.fromstring(ctx.deposit())
    document = next(envelope.iter(q("xdsb", "Document")))
    text = document.text
    document.text = "\r\n".join(text[i:i + 76] for i in range(0, len(text), 76))
    answer = wire.post(service.url, "/xds/iti41", etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))
    assert answer.status == 200 and answer.registry_status() == ("Success", []), answer.payload[:400]
    retrieved = wire.post(service.url, "/xds/iti43", ctx.envelope(messages.retrieve(ctx.documents[0][0]), terms.ITI43))
    assert retrieved.documents == {ctx.documents[0][0]: ctx.documents[0][1]}


def test_a_unique_id_reused_for_other_bytes_or_another_patient(service, rng, listener):
    """A uniqueId already registered: other bytes, or the same bytes for another patient, is XDSNonIdenticalHash;
    the first document stays as it was, and nothing else is stored."""
    ctx = _ctx(service, rng, listener)
    assert wire.post(service.url, "/xds/iti41", ctx.deposit()).registry_status() == ("Success", [])
    uid, data = ctx.documents[0]
    other_bytes = data + b"x"
    answer = wire.post(service.url, "/xds/iti41", ctx.deposit(documents=[(uid, other_bytes)]))
    _assert_refused(answer, Failure("XDSNonIdenticalHash"))
    other = Ctx(service, rng)
    other.documents = [(uid, data)]
    answer = wire.post(service.url, "/xds/iti41", other.deposit())
    _assert_refused(answer, Failure("XDSNonIdenticalHash"))
    assert ctx.find() == [uid] and other.find() == []
    assert not service.blob_exists(hashlib.sha256(other_bytes).hexdigest())
    retrieved = wire.post(service.url, "/xds/iti43", ctx.envelope(messages.retrieve(uid), terms.ITI43))
    assert retrieved.documents == {uid: data}


def _entry_uuid_of(ctx, uid) -> str:
    answer = wire.post(ctx.service.url, "/xds/iti18", ctx.envelope(messages.stored_query(
        terms.GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": [f"('{uid}')"]}), terms.ITI18))
    return next(answer.body.iter(q("rim", "ExtrinsicObject"))).get("id")


def test_rplc_of_another_patients_document_is_refused_as_unknown(service, rng, listener):
    """An RPLC naming another patient's document is refused exactly as one naming no document: no leak."""
    owner = _ctx(service, rng, listener)
    assert wire.post(service.url, "/xds/iti41", owner.deposit()).registry_status() == ("Success", [])
    target = _entry_uuid_of(owner, owner.documents[0][0])
    ctx = _ctx(service, rng, listener)
    theirs = wire.post(service.url, "/xds/iti41", ctx.deposit(_rplc(target)))
    nobodys = wire.post(service.url, "/xds/iti41", ctx.deposit(_rplc(f"urn:uuid:{uuid.uuid4()}")))
    _assert_refused(theirs, Failure(META))
    _assert_refused(nobodys, Failure(META))
    assert owner.ins.encode() not in theirs.payload
    ctx.assert_nothing_stored()
    assert owner.find() == [owner.documents[0][0]]


# --- ITI-18 -------------------------------------------------------------------------------------------

def _query(query_id, slots, return_type="LeafClass"):
    return lambda ctx: messages.stored_query(query_id, slots(ctx) if callable(slots) else slots, return_type)


def _find(**extra):
    def slots(ctx):
        base = {"$XDSDocumentEntryPatientId": [f"'{messages.cx(ctx.ins)}'"],
                "$XDSDocumentEntryStatus": [f"('{terms.APPROVED}')"]}
        base.update({k: (v(ctx) if callable(v) else v) for k, v in extra.items()})
        return {k: v for k, v in base.items() if v is not None}
    return _query(terms.FIND_DOCUMENTS, slots)


def _repeated_slot(ctx):
    request = _find()(ctx)
    query = request.find(q("rim", "AdhocQuery"))
    for _ in range(2):
        slot = etree.SubElement(query, q("rim", "Slot"), name="$XDSDocumentEntryTypeCode")
        etree.SubElement(etree.SubElement(slot, q("rim", "ValueList")), q("rim", "Value")).text = \
            "('11502-2^^2.16.840.1.113883.6.1')"
    return request


def _no_adhoc_query(ctx):
    request = _find()(ctx)
    _remove(request.find(q("rim", "AdhocQuery")))
    return request


REGISTRY = "XDSRegistryError"
QUERIES = [
    ("query-too-many-values", _find(**{"$XDSDocumentEntryClassCode": [
        "(" + ",".join(f"'c{i}^^1.2.3'" for i in range(101)) + ")"]}), Failure(REGISTRY)),
    ("query-bad-quoting", _find(**{"$XDSDocumentEntryClassCode": ["('10^^1.2.250.1.213.1.1.4.1)"]}), Failure(REGISTRY)),
    ("query-unknown-parameter", _find(**{"$XDSDocumentEntryColour": ["'blue'"]}), Failure(REGISTRY)),
    ("query-unknown-id", _query("urn:uuid:00000000-0000-0000-0000-000000000000", {}), Failure("XDSUnknownStoredQuery")),
    ("query-patient-missing", _find(**{"$XDSDocumentEntryPatientId": None}), Failure("XDSStoredQueryMissingParam")),
    ("query-status-missing", _find(**{"$XDSDocumentEntryStatus": None}), Failure("XDSStoredQueryMissingParam")),
    ("query-patient-twice", _find(**{"$XDSDocumentEntryPatientId": lambda ctx: [
        f"('{messages.cx(ctx.ins)}','{messages.cx(ctx.ins)}')"]}), Failure("XDSStoredQueryParamNumber")),
    ("query-code-slot-twice", _repeated_slot, Failure("XDSStoredQueryParamNumber")),
    ("query-bad-code", _find(**{"$XDSDocumentEntryTypeCode": ["('11502-2')"]}), Failure(REGISTRY)),
    ("query-bad-date", _find(**{"$XDSDocumentEntryCreationTimeFrom": ["yesterday"]}), Failure(REGISTRY)),
    ("query-bad-ins", _find(**{"$XDSDocumentEntryPatientId": [f"'{messages.cx(BAD_INS)}'"]}), Failure(REGISTRY)),
    ("query-other-patient", _find(**{"$XDSDocumentEntryPatientId": lambda ctx: [f"'{messages.cx(ctx.other)}'"]}),
     Failure("XDSPatientIdDoesNotMatch")),
    ("query-bad-return-type", _query(terms.FIND_DOCUMENTS, {}, "Everything"), Failure(REGISTRY)),
    ("query-no-adhoc-query", _no_adhoc_query, Failure(REGISTRY)),
    ("query-author-not-idnat", _find(**{"$XDSDocumentEntryAuthorPerson": ["'MARTIN%'"]}), Failure(REGISTRY)),
    ("query-uuid-and-unique-id", _query(terms.GET_DOCUMENTS, {
        "$XDSDocumentEntryUniqueId": ["('1.2.3')"], "$XDSDocumentEntryEntryUUID": [f"('urn:uuid:{uuid.uuid4()}')"]}),
     Failure("XDSStoredQueryParamNumber")),
    ("iti18-wrong-body-element", lambda ctx: messages.retrieve("1.2.3"), Failure(REGISTRY)),
]


@pytest.mark.parametrize("name,build,expected", QUERIES, ids=[case[0] for case in QUERIES])
def test_a_bad_stored_query_has_its_xds_error(service, rng, listener, name, build, expected):
    ctx = _ctx(service, rng, listener)
    assert wire.post(service.url, "/xds/iti41", ctx.deposit()).registry_status() == ("Success", [])
    answer = wire.post(service.url, "/xds/iti18", ctx.envelope(build(ctx), terms.ITI18))
    _assert_refused(answer, expected)
    assert answer.body.tag == q("query", "AdhocQueryResponse")
    assert not list(answer.body.iter(q("rim", "ExtrinsicObject"))) and not list(answer.body.iter(q("rim", "ObjectRef")))


# --- ITI-43 -------------------------------------------------------------------------------------------

RETRIEVES = [
    ("retrieve-unknown", lambda ctx: messages.retrieve("1.2.250.1.999.404.404"), Failure("XDSDocumentUniqueIdError")),
    ("retrieve-unknown-repository", lambda ctx: messages.retrieve(ctx.documents[0][0], repository="1.2.3.4"),
     Failure("XDSUnknownRepositoryId")),
    ("retrieve-nothing", lambda ctx: messages.retrieve(), Failure("XDSRepositoryError")),
    ("retrieve-empty-unique-id", lambda ctx: messages.retrieve(""), Failure("XDSDocumentUniqueIdError")),
    ("retrieve-too-many", lambda ctx: messages.retrieve(*[f"1.2.3.{i}" for i in range(1001)]),
     Failure("XDSRepositoryError")),
]


@pytest.mark.parametrize("name,build,expected", RETRIEVES, ids=[case[0] for case in RETRIEVES])
def test_a_bad_retrieve_has_its_xds_error(service, rng, listener, name, build, expected):
    ctx = _ctx(service, rng, listener)
    assert wire.post(service.url, "/xds/iti41", ctx.deposit()).registry_status() == ("Success", [])
    answer = wire.post(service.url, "/xds/iti43", ctx.envelope(build(ctx), terms.ITI43))
    _assert_refused(answer, expected)
    assert answer.documents == {}


def test_iti43_with_another_body_element_is_a_sender_fault(service, rng, listener):
    ctx = _ctx(service, rng, listener)
    answer = wire.post(service.url, "/xds/iti43", ctx.envelope(messages.find_documents(ctx.ins), terms.ITI43))
    _assert_refused(answer, Fault("RetrieveDocumentSetRequest"))


def test_retrieving_another_patients_document_leaks_nothing(service, rng, listener):
    """With a VIHF for patient B, patient A's document is 'not available' exactly as an unknown one is: the
    same code, the same words, no byte, no hint of A."""
    owner = _ctx(service, rng, listener)
    assert wire.post(service.url, "/xds/iti41", owner.deposit()).registry_status() == ("Success", [])
    uid = owner.documents[0][0]
    intruder = _ctx(service, rng, listener)
    theirs = wire.post(service.url, "/xds/iti43", intruder.envelope(messages.retrieve(uid), terms.ITI43))
    unknown_uid = "1.2.250.1.999.404." + uid.rsplit(".", 1)[1]
    unknown = wire.post(service.url, "/xds/iti43", intruder.envelope(messages.retrieve(unknown_uid), terms.ITI43))
    _assert_refused(theirs, Failure("XDSDocumentUniqueIdError"))
    _assert_refused(unknown, Failure("XDSDocumentUniqueIdError"))
    assert theirs.documents == {} and owner.documents[0][1] not in theirs.payload
    assert owner.ins.encode() not in theirs.payload

    def context(answer, asked):
        return next(answer.body.iter(q("rs", "RegistryError"))).get("codeContext").replace(asked, "ID")
    assert context(theirs, uid) == context(unknown, unknown_uid)
    # and the same VIHF may not read it by ITI-18 either
    found = wire.post(service.url, "/xds/iti18", intruder.envelope(messages.stored_query(
        terms.GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": [f"('{uid}')"]}), terms.ITI18))
    assert found.registry_status() == ("Success", []) and not list(found.body.iter(q("rim", "ExtrinsicObject")))


# --- storage faults ----------------------------------------------------------------------------------

def _assert_receiver_fault(answer: wire.Answer) -> None:
    assert answer.status == 503, (answer.status, answer.payload[:400])
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.fault() is not None and answer.fault()[0] == "soap:Receiver", answer.payload[:400]
    assert b"Traceback" not in answer.payload


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_document_file_that_cannot_be_written_is_a_503_receiver_fault(backend, postgres, tmp_path, rng):
    """The directory a document's file goes in is in the way: 503 Retry-After, nothing kept; then it goes through."""
    db = postgres.create_database(f"xds_unwritable_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    service = Service(tmp_path, db).start()
    try:
        ctx = Ctx(service, rng, documents=2)
        in_the_way = service.data_dir / "blobs" / hashlib.sha256(ctx.documents[1][1]).hexdigest()[:2]
        in_the_way.write_bytes(b"not a directory")
        for as_mtom in (False, True):
            body, content_type = wire.mtom(ctx.deposit()) if as_mtom else (ctx.deposit(), wire.SOAP_XML)
            _assert_receiver_fault(wire.post(service.url, "/xds/iti41", body, content_type))
            assert ctx.find() == [], "a refused submission left its metadata"
            assert not service.blob_exists(hashlib.sha256(ctx.documents[0][1]).hexdigest()), \
                "the other document of a refused submission stayed on disk"
        in_the_way.unlink()
        assert wire.post(service.url, "/xds/iti41", ctx.deposit()).registry_status() == ("Success", [])
        assert sorted(ctx.find()) == sorted(uid for uid, _ in ctx.documents)
    finally:
        service.stop()


def test_postgresql_away_is_a_503_receiver_fault_for_every_operation(tmp_path, rng):
    cluster = PostgresCluster()
    cluster.start()
    try:
        service = Service(tmp_path, cluster.create_database("xds_outage"), *SHARED_OPTIONS).start()
        try:
            ctx = Ctx(service, rng)
            assert wire.post(service.url, "/xds/iti41", ctx.deposit()).registry_status() == ("Success", [])
            late = Ctx(service, rng)
            cluster.stop_server()
            try:
                for path, body in (("/xds/iti41", late.deposit()),
                                   ("/xds/iti18", ctx.envelope(messages.find_documents(ctx.ins), terms.ITI18)),
                                   ("/xds/iti43", ctx.envelope(messages.retrieve(ctx.documents[0][0]), terms.ITI43))):
                    _assert_receiver_fault(wire.post(service.url, path, body))
            finally:
                cluster.start_server()
            deadline = time.monotonic() + 20
            while True:
                answer = wire.post(service.url, "/xds/iti41", late.deposit())
                assert answer.status != 500, answer.payload[:400]
                if answer.status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert answer.registry_status() == ("Success", []), answer.payload[:400]
            retrieved = wire.post(service.url, "/xds/iti43", ctx.envelope(messages.retrieve(ctx.documents[0][0]),
                                                                          terms.ITI43))
            assert retrieved.documents == {ctx.documents[0][0]: ctx.documents[0][1]}
        finally:
            service.stop()
    finally:
        cluster.stop()


# --- fuzzing --------------------------------------------------------------------------------------------

_SEED_ACTOR = professional(random.Random(1), "lab")
_SEED_INS = make_ins(random.Random(2))
_HOSTILE = st.sampled_from(["", " ", "²", "١٢٣", "^^^", "&&&", "urn:uuid:", "urn:uuid:" + "0" * 36, "Document00",
                            "SubmissionSet01", terms.HAS_MEMBER, terms.RPLC, terms.DOCUMENT_ENTRY,
                            "99999999999999999999",
                            "2026", "20261345", "a" * 300, messages.cx(BAD_INS), "1.2.250.1.213.1.4.8", "-1", "0"])


def _seed() -> etree._Element:
    return messages.provide_and_register(_SEED_INS, _SEED_ACTOR.rpps, _SEED_ACTOR.finess,
                                         [("1.2.250.1.999.69.1", b"one"), ("1.2.250.1.999.69.2", b"two")])


@st.composite
def _mutated(draw) -> bytes:
    request = _seed()
    for _ in range(draw(st.integers(1, 4))):
        elements = list(request.iter())
        element = draw(st.sampled_from(elements))
        action = draw(st.sampled_from(["attribute", "text", "remove", "duplicate"]))
        if action == "attribute" and element.attrib:
            name = draw(st.sampled_from(sorted(element.attrib)))
            if draw(st.booleans()):
                del element.attrib[name]
            else:
                element.set(name, draw(_HOSTILE | st.text(alphabet=st.characters(codec="utf-8", exclude_categories=(
                    "Cs", "Cc")), max_size=20)))
        elif action == "text" and element is not request:
            element.text = draw(_HOSTILE)
        elif action == "remove" and element.getparent() is not None:
            _remove(element)
        elif element.getparent() is not None:
            element.getparent().append(copy.deepcopy(element))
    return etree.tostring(request)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=_mutated())
def test_a_mutated_submission_is_parsed_or_refused_with_an_xds_error(request):
    """Without a service, thousands of inputs: ITI-41's metadata is understood or refused with an XdsError or
    a Sender SoapFault; never another exception (which the service would answer 500)."""
    message = soap.Message(action=terms.ITI41, message_id=None, body=etree.fromstring(request), assertion=None,
                           mtom=False)
    try:
        metadata.parse_submission(message, 1_000_000, 500)
    except XdsError:
        pass
    except soap.SoapFault as fault:
        assert fault.status == 400


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(request=_mutated())
def test_fuzzed_submissions_never_crash_and_refusals_store_nothing(service, request):
    structure = load_or_create_structure(service.key_file)
    ins = make_ins(random.Random(hashlib.sha256(request).digest()))
    request = request.replace(_SEED_INS.encode(), ins.encode()).replace(
        b"1.2.250.1.999.69.", f"1.2.250.1.999.69.{time.time_ns()}.".encode())
    vihf = issue_assertion(structure, _SEED_ACTOR, ins)
    seen = professional(random.Random(3))
    find = messages.envelope(terms.ITI18, messages.find_documents(ins), issue_assertion(structure, seen, ins))
    before = wire.post(service.url, "/xds/iti18", find)
    answer = wire.post(service.url, "/xds/iti41", messages.envelope(terms.ITI41, etree.fromstring(request), vihf))
    assert answer.status < 500 and b"Traceback" not in answer.payload, answer.payload[:600]
    after = wire.post(service.url, "/xds/iti18", find)
    if answer.status != 200 or answer.registry_status()[0] != "Success":
        assert etree.tostring(after.body) .count(b"ExtrinsicObject") == etree.tostring(before.body).count(
            b"ExtrinsicObject"), answer.payload[:600]

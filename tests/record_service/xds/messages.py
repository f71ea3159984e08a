"""ITI-41 / ITI-18 / ITI-43 request bodies built from the IHE rules, for the tests (as a client would)."""

from __future__ import annotations

import base64
import hashlib
import uuid

from lxml import etree

from record_service.xds import terms
from record_service.xds.terms import NS, q

INS_OID = "1.2.250.1.213.1.4.8"


def cx(ins: str) -> str:
    return f"{ins}^^^&{INS_OID}&ISO"


def _sub(parent, prefix, local, text=None, **attrs):
    element = etree.SubElement(parent, q(prefix, local), {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        element.text = text
    return element


def _slot(parent, name, *values):
    listing = _sub(_sub(parent, "rim", "Slot", name=name), "rim", "ValueList")
    for value in values:
        _sub(listing, "rim", "Value", value)


def _code(parent, scheme, obj, code, coding_scheme):
    classification = _sub(parent, "rim", "Classification", id=f"urn:uuid:{uuid.uuid4()}", classificationScheme=scheme,
                          classifiedObject=obj, nodeRepresentation=code)
    _slot(classification, "codingScheme", coding_scheme)


def _external(parent, scheme, obj, value):
    _sub(parent, "rim", "ExternalIdentifier", id=f"urn:uuid:{uuid.uuid4()}", identificationScheme=scheme,
         registryObject=obj, value=value)


def provide_and_register(ins: str, rpps: str, finess: str, documents: list[tuple[str, bytes]], *,
                         type_code: str = "11502-2", hash_of=None, size_of=None, patient_of=None,
                         replaces: dict[int, str] | None = None, confidentiality: tuple[str, str] = ("N", "2.16.840.1.113883.5.25"),
                         drop_document: int | None = None, extra_document: bool = False,
                         submission_time: str = "20261130101500", source_id: str = "1.2.250.1.999",
                         submission_set_id: str | None = None, content_type: str = "11502-2") -> etree._Element:
    """A ProvideAndRegisterDocumentSetRequest: one submission set, one DocumentEntry per (uniqueId, bytes);
    the submission set's submissionTime, sourceId, uniqueId (random when None) and contentTypeCode (LOINC)."""
    request = etree.Element(q("xdsb", "ProvideAndRegisterDocumentSetRequest"),
                            nsmap={"xdsb": NS["xdsb"], "lcm": NS["lcm"], "rim": NS["rim"]})
    objects = _sub(_sub(request, "lcm", "SubmitObjectsRequest"), "rim", "RegistryObjectList")
    ss = "SubmissionSet01"
    entry_ids = []
    for i, (unique_id, data) in enumerate(documents):
        entry_id = f"Document{i:02d}"
        entry_ids.append(entry_id)
        entry = _sub(objects, "rim", "ExtrinsicObject", id=entry_id, mimeType="application/pdf",
                     objectType=terms.DOCUMENT_ENTRY)
        _slot(entry, "creationTime", "20261130101500")
        _slot(entry, "hash", (hash_of or {}).get(i, hashlib.sha1(data).hexdigest()))
        _slot(entry, "languageCode", "fr-FR")
        _slot(entry, "serviceStartTime", "20261130")
        _slot(entry, "size", str((size_of or {}).get(i, len(data))))
        author = _sub(entry, "rim", "Classification", id=f"urn:uuid:{uuid.uuid4()}", classificationScheme=terms.DE_AUTHOR,
                      classifiedObject=entry_id, nodeRepresentation="")
        _slot(author, "authorPerson", f"8{rpps}^MARTIN^CLAIRE^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^^IDNPS")
        _slot(author, "authorInstitution", f"Labo^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1{finess}")
        _code(entry, terms.DE_CLASS, entry_id, "10", "1.2.250.1.213.1.1.4.1")
        _code(entry, terms.DE_CONFIDENTIALITY, entry_id, *confidentiality)
        _code(entry, terms.DE_FORMAT, entry_id, "urn:ihe:iti:xds:2017:mimeTypeSufficient", "1.3.6.1.4.1.19376.1.2.3")
        _code(entry, terms.DE_FACILITY_TYPE, entry_id, "SA29", "1.2.250.1.71.4.2.4")
        _code(entry, terms.DE_PRACTICE, entry_id, "AMBULATOIRE", "1.2.250.1.213.1.1.4.9")
        _code(entry, terms.DE_TYPE, entry_id, type_code, "2.16.840.1.113883.6.1")
        _external(entry, terms.DE_PATIENT_ID, entry_id, cx((patient_of or {}).get(i, ins)))
        _external(entry, terms.DE_UNIQUE_ID, entry_id, unique_id)
    package = _sub(objects, "rim", "RegistryPackage", id=ss)
    _slot(package, "submissionTime", submission_time)
    _code(package, terms.SS_CONTENT_TYPE, ss, content_type, "2.16.840.1.113883.6.1")
    _external(package, terms.SS_UNIQUE_ID, ss, submission_set_id or f"1.2.250.1.999.{uuid.uuid4().int % 10**12}")
    _external(package, terms.SS_SOURCE_ID, ss, source_id)
    _external(package, terms.SS_PATIENT_ID, ss, cx(ins))
    _sub(objects, "rim", "Classification", id=f"urn:uuid:{uuid.uuid4()}", classifiedObject=ss,
         classificationNode=terms.SUBMISSION_SET)
    for entry_id in entry_ids:
        association = _sub(objects, "rim", "Association", id=f"urn:uuid:{uuid.uuid4()}",
                           associationType=terms.HAS_MEMBER, sourceObject=ss, targetObject=entry_id)
        _slot(association, "SubmissionSetStatus", "Original")
    for i, target in (replaces or {}).items():
        _sub(objects, "rim", "Association", id=f"urn:uuid:{uuid.uuid4()}", associationType=terms.RPLC,
             sourceObject=entry_ids[i], targetObject=target)
    for i, (_, data) in enumerate(documents):
        if i != drop_document:
            _sub(request, "xdsb", "Document", base64.b64encode(data).decode(), id=entry_ids[i])
    if extra_document:
        _sub(request, "xdsb", "Document", base64.b64encode(b"stray").decode(), id="Stray")
    return request


def stored_query(query_id: str, slots: dict[str, list[str]], return_type: str = "LeafClass") -> etree._Element:
    request = etree.Element(q("query", "AdhocQueryRequest"), nsmap={"query": NS["query"], "rim": NS["rim"]})
    _sub(request, "query", "ResponseOption", returnComposedObjects="true", returnType=return_type)
    query = _sub(request, "rim", "AdhocQuery", id=query_id)
    for name, values in slots.items():
        _slot(query, name, *values)
    return request


def find_documents(ins: str, **slots: list[str]) -> etree._Element:
    return stored_query(terms.FIND_DOCUMENTS, {"$XDSDocumentEntryPatientId": [f"'{cx(ins)}'"],
                                               "$XDSDocumentEntryStatus": [f"('{terms.APPROVED}')"], **slots})


def find_submission_sets(ins: str, **slots: list[str]) -> etree._Element:
    """FindSubmissionSets of the patient's Approved submission sets (more slots: times, sourceId, contentType)."""
    return stored_query(terms.FIND_SUBMISSION_SETS, {"$XDSSubmissionSetPatientId": [f"'{cx(ins)}'"],
                                                     "$XDSSubmissionSetStatus": [f"('{terms.APPROVED}')"], **slots})


def _uuid_list(uuids) -> list[str]:
    return ["(" + ",".join(f"'{u}'" for u in uuids) + ")"]


def get_associations(*uuids: str) -> etree._Element:
    return stored_query(terms.GET_ASSOCIATIONS, {"$uuid": _uuid_list(uuids)})


def get_submission_sets(*uuids: str) -> etree._Element:
    return stored_query(terms.GET_SUBMISSION_SETS, {"$uuid": _uuid_list(uuids)})


def get_documents_and_associations(*entry_uuids: str) -> etree._Element:
    return stored_query(terms.GET_DOCUMENTS_AND_ASSOCIATIONS, {"$XDSDocumentEntryEntryUUID": _uuid_list(entry_uuids)})


def retrieve(*unique_ids: str, repository: str = terms.REPOSITORY_UNIQUE_ID) -> etree._Element:
    request = etree.Element(q("xdsb", "RetrieveDocumentSetRequest"), nsmap={"xdsb": NS["xdsb"]})
    for unique_id in unique_ids:
        document = _sub(request, "xdsb", "DocumentRequest")
        _sub(document, "xdsb", "RepositoryUniqueId", repository)
        _sub(document, "xdsb", "DocumentUniqueId", unique_id)
    return request


def envelope(action: str, body: etree._Element, assertion: bytes | None) -> bytes:
    env = etree.Element(q("soap", "Envelope"), nsmap={"soap": NS["soap"], "wsa": NS["wsa"], "wsse": NS["wsse"]})
    header = _sub(env, "soap", "Header")
    _sub(header, "wsa", "Action", action, **{q("soap", "mustUnderstand"): "true"})
    _sub(header, "wsa", "MessageID", f"urn:uuid:{uuid.uuid4()}")
    security = _sub(header, "wsse", "Security")
    if assertion is not None:
        security.append(etree.fromstring(assertion))
    _sub(env, "soap", "Body").append(body)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")

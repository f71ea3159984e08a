"""IHE XDS.b on SOAP 1.2 as a professional's software ("LPS DMP-compatible") sends it, and what it reads back.

Requests: ITI-41 Provide and Register Document Set-b (the document as an MTOM/XOP part), ITI-18
Registry Stored Query (FindDocuments, FindSubmissionSets, GetAssociations,
GetDocumentsAndAssociations), ITI-43 Retrieve Document Set, and the DMP's TD0.2 access check in
the record service's own shape (docs/xds.md), each in a SOAP 1.2 envelope with its WS-Addressing
action and the caller's VIHF in ``wsse:Security``. Answers: the RegistryResponse status and error
codes, the objects a query returns, the documents of an ITI-43 answer (MTOM).

The vocabulary (namespaces, actions, scheme and query ids) is the standard's, written here again on
purpose: the driver speaks the protocol, it does not import the service's code (a test checks both
spell it the same). Sources: IHE ITI TF-2 3.18, 3.41, 3.43, TF-3 4.2 (ebRIM metadata), and the
DMP's usage in the PDSm4DMP guide (docs/xds-sources.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass

from lxml import etree

NS = {
    "soap": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "rim": "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0",
    "rs": "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0",
    "lcm": "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0",
    "query": "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0",
    "xdsb": "urn:ihe:iti:xds-b:2007",
    "xop": "http://www.w3.org/2004/08/xop/include",
    "segur": "urn:segur-loadsim:xds:td02",
}

ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
TD02 = "urn:segur-loadsim:dmp:TD0.2"
PATHS = {ITI41: "/xds/iti41", ITI18: "/xds/iti18", ITI43: "/xds/iti43", TD02: "/xds/td02"}

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"

DOCUMENT_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_FORMAT = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_FACILITY_TYPE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SUBMISSION_SET = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SS_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"

FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
FIND_SUBMISSION_SETS = "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9"
GET_ASSOCIATIONS = "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155"
GET_DOCUMENTS_AND_ASSOCIATIONS = "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a"

REPOSITORY_UNIQUE_ID = "1.2.250.1.213.4.1.1.1.2"  # the DMP's repository (docs/xds-sources.md 5.5)
INS_OID = "1.2.250.1.213.1.4.8"                    # INS-NIR, the CX assigning authority
SOURCE_ID = "1.2.250.1.999.1"                      # the sending software's OID (a test arc)
SOAP_XML = "application/soap+xml"
_XOP_XML = "application/xop+xml"
_LOINC_OID = "2.16.840.1.113883.6.1"
_TRE_A05_OID = "1.2.250.1.213.1.1.4.12"
_DOCUMENT_PART = "document@segur-loadsim"


def q(prefix: str, local: str) -> str:
    return f"{{{NS[prefix]}}}{local}"


def cx(ins: str) -> str:
    """The INS as an XDS patientId (HL7 v2 CX): ``INS^^^&1.2.250.1.213.1.4.8&ISO``."""
    return f"{ins}^^^&{INS_OID}&ISO"


def unique_id(master_id: str) -> str:
    """A document's XDS uniqueId from its FHIR masterIdentifier (``urn:oid:`` + the OID)."""
    return master_id.removeprefix("urn:oid:")


def dtm(moment: dt.datetime) -> str:
    """An HL7 v2 DTM in UTC to the second (``YYYYMMDDhhmmss``), as XDS time slots and parameters take it."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y%m%d%H%M%S")


# --- requests ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One SOAP request: where it goes, its action, its body and Content-Type."""

    path: str
    action: str
    body: bytes
    content_type: str


def _sub(parent, prefix: str, local: str, text: str | None = None, **attributes) -> etree._Element:
    element = etree.SubElement(parent, q(prefix, local), attributes)
    if text is not None:
        element.text = text
    return element


def _slot(parent, name: str, *values: str) -> None:
    listing = _sub(_sub(parent, "rim", "Slot", name=name), "rim", "ValueList")
    for value in values:
        _sub(listing, "rim", "Value", value)


def _classification(parent, scheme: str, obj: str, code: str, coding_scheme: str, name: str) -> None:
    classification = _sub(parent, "rim", "Classification", id=f"urn:uuid:{uuid.uuid4()}", classificationScheme=scheme,
                          classifiedObject=obj, nodeRepresentation=code)
    _slot(classification, "codingScheme", coding_scheme)
    _sub(_sub(classification, "rim", "Name"), "rim", "LocalizedString", value=name)


def _external(parent, scheme: str, obj: str, value: str, name: str) -> None:
    identifier = _sub(parent, "rim", "ExternalIdentifier", id=f"urn:uuid:{uuid.uuid4()}", identificationScheme=scheme,
                      registryObject=obj, value=value)
    _sub(_sub(identifier, "rim", "Name"), "rim", "LocalizedString", value=name)


def _envelope(action: str, body: etree._Element, assertion: bytes) -> etree._Element:
    env = etree.Element(q("soap", "Envelope"), nsmap={"soap": NS["soap"], "wsa": NS["wsa"], "wsse": NS["wsse"]})
    header = _sub(env, "soap", "Header")
    _sub(header, "wsa", "Action", action, **{q("soap", "mustUnderstand"): "true"})
    _sub(header, "wsa", "MessageID", f"urn:uuid:{uuid.uuid4()}")
    _sub(header, "wsa", "To", PATHS[action])
    _sub(header, "wsse", "Security").append(etree.fromstring(assertion))
    _sub(env, "soap", "Body").append(body)
    return env


def _plain(action: str, body: etree._Element, assertion: bytes) -> Request:
    xml = etree.tostring(_envelope(action, body, assertion), xml_declaration=True, encoding="UTF-8")
    return Request(PATHS[action], action, xml, f'{SOAP_XML}; charset=UTF-8; action="{action}"')


def provide_and_register(assertion: bytes, *, ins: str, rpps: str, finess: str | None, master_id: str, data: bytes,
                         type_code: str, when: dt.datetime, facility_type: str = "SA07") -> Request:
    """An ITI-41 with one submission set holding one DocumentEntry, the document as an MTOM/XOP part.

    ``data``: the document's bytes (their SHA-1 and size are declared, as ITI-41 requires); ``type_code``: a
    LOINC code (digits first) or a TRE_A05 one; ``when``: the creation, service start and submission time."""
    request = etree.Element(q("xdsb", "ProvideAndRegisterDocumentSetRequest"),
                            nsmap={"xdsb": NS["xdsb"], "lcm": NS["lcm"], "rim": NS["rim"]})
    objects = _sub(_sub(request, "lcm", "SubmitObjectsRequest"), "rim", "RegistryObjectList")
    moment = dtm(when)
    entry = _sub(objects, "rim", "ExtrinsicObject", id="Document01", mimeType="application/pdf",
                 objectType=DOCUMENT_ENTRY)
    for name, value in (("creationTime", moment), ("hash", hashlib.sha1(data).hexdigest()), ("languageCode", "fr-FR"),
                        ("serviceStartTime", moment), ("size", str(len(data)))):
        _slot(entry, name, value)
    author = _sub(entry, "rim", "Classification", id=f"urn:uuid:{uuid.uuid4()}", classificationScheme=DE_AUTHOR,
                  classifiedObject="Document01", nodeRepresentation="")
    _slot(author, "authorPerson", f"8{rpps}^^^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^^IDNPS")
    if finess:
        _slot(author, "authorInstitution", f"Structure^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1{finess}")
    type_system = _LOINC_OID if type_code[:1].isdigit() else _TRE_A05_OID
    _classification(entry, DE_CLASS, "Document01", "10", "1.2.250.1.213.1.1.4.1", "Compte rendu")
    _classification(entry, DE_CONFIDENTIALITY, "Document01", "N", "2.16.840.1.113883.5.25", "Normal")
    _classification(entry, DE_FORMAT, "Document01", "urn:ihe:iti:xds:2017:mimeTypeSufficient",
                    "1.3.6.1.4.1.19376.1.2.3", "PDF")
    _classification(entry, DE_FACILITY_TYPE, "Document01", facility_type, "1.2.250.1.71.4.2.4", facility_type)
    _classification(entry, DE_PRACTICE, "Document01", "AMBULATOIRE", "1.2.250.1.213.1.1.4.9", "Ambulatoire")
    _classification(entry, DE_TYPE, "Document01", type_code, type_system, type_code)
    _external(entry, DE_PATIENT_ID, "Document01", cx(ins), "XDSDocumentEntry.patientId")
    _external(entry, DE_UNIQUE_ID, "Document01", unique_id(master_id), "XDSDocumentEntry.uniqueId")
    package = _sub(objects, "rim", "RegistryPackage", id="SubmissionSet01")
    _slot(package, "submissionTime", moment)
    _classification(package, SS_CONTENT_TYPE, "SubmissionSet01", type_code, type_system, type_code)
    # its own OID (a UUID under 2.25, ITU-T X.667): never another object's uniqueId, whatever the documents'
    _external(package, SS_UNIQUE_ID, "SubmissionSet01", f"2.25.{uuid.uuid4().int}", "XDSSubmissionSet.uniqueId")
    _external(package, SS_SOURCE_ID, "SubmissionSet01", SOURCE_ID, "XDSSubmissionSet.sourceId")
    _external(package, SS_PATIENT_ID, "SubmissionSet01", cx(ins), "XDSSubmissionSet.patientId")
    _sub(objects, "rim", "Classification", id=f"urn:uuid:{uuid.uuid4()}", classifiedObject="SubmissionSet01",
         classificationNode=SUBMISSION_SET)
    association = _sub(objects, "rim", "Association", id=f"urn:uuid:{uuid.uuid4()}", associationType=HAS_MEMBER,
                       sourceObject="SubmissionSet01", targetObject="Document01")
    _slot(association, "SubmissionSetStatus", "Original")
    document = _sub(request, "xdsb", "Document", id="Document01")
    etree.SubElement(document, q("xop", "Include"), {"href": f"cid:{_DOCUMENT_PART}"}, nsmap={"xop": NS["xop"]})
    xml = etree.tostring(_envelope(ITI41, request, assertion), xml_declaration=True, encoding="UTF-8")
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    body = b"".join((
        f"--{boundary}\r\nContent-Type: {_XOP_XML}; charset=UTF-8; type=\"{SOAP_XML}\"\r\n"
        f"Content-Transfer-Encoding: binary\r\nContent-ID: <root@segur-loadsim>\r\n\r\n".encode(), xml,
        f"\r\n--{boundary}\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: binary\r\n"
        f"Content-ID: <{_DOCUMENT_PART}>\r\n\r\n".encode(), data, f"\r\n--{boundary}--\r\n".encode()))
    content_type = (f'multipart/related; boundary="{boundary}"; type="{_XOP_XML}"; start="<root@segur-loadsim>"; '
                    f'start-info="{SOAP_XML}"; action="{ITI41}"')
    return Request(PATHS[ITI41], ITI41, body, content_type)


def td02(assertion: bytes, ins: str) -> Request:
    """The DMP's TD0.2 (does the patient have an open record, may this professional read it), our SOAP shape."""
    request = etree.Element(q("segur", "TD02Request"), nsmap={"segur": NS["segur"]})
    _sub(request, "segur", "PatientId", ins)
    return _plain(TD02, request, assertion)


def _stored_query(assertion: bytes, query_id: str, slots: dict[str, list[str]], object_ref: bool = False) -> Request:
    request = etree.Element(q("query", "AdhocQueryRequest"), nsmap={"query": NS["query"], "rim": NS["rim"]})
    _sub(request, "query", "ResponseOption", returnComposedObjects="true",
         returnType="ObjectRef" if object_ref else "LeafClass")
    query = _sub(request, "rim", "AdhocQuery", id=query_id)
    for name, values in slots.items():
        _slot(query, name, *values)
    return _plain(ITI18, request, assertion)


def _quoted_list(values: list[str]) -> str:
    return "(" + ",".join(f"'{value}'" for value in values) + ")"


def find_documents(assertion: bytes, ins: str, service_start_from: dt.datetime) -> Request:
    """FindDocuments: the patient's Approved DocumentEntries whose service started at or after the given time
    (the DMP's first opening of a record looks two years back: PDSm4DMP, exemples_usage_dmp)."""
    return _stored_query(assertion, FIND_DOCUMENTS, {
        "$XDSDocumentEntryPatientId": [f"'{cx(ins)}'"], "$XDSDocumentEntryStatus": [_quoted_list([APPROVED])],
        "$XDSDocumentEntryServiceStartTimeFrom": [dtm(service_start_from)]})


def find_submission_sets(assertion: bytes, ins: str, submitted_from: dt.datetime) -> Request:
    """FindSubmissionSets: the patient's submission sets submitted at or after the professional's last visit."""
    return _stored_query(assertion, FIND_SUBMISSION_SETS, {
        "$XDSSubmissionSetPatientId": [f"'{cx(ins)}'"], "$XDSSubmissionSetStatus": [_quoted_list([APPROVED])],
        "$XDSSubmissionSetSubmissionTimeFrom": [dtm(submitted_from)]})


def get_associations(assertion: bytes, uuids: list[str]) -> Request:
    """GetAssociations of the given objects (submission sets: their HasMember associations to documents)."""
    return _stored_query(assertion, GET_ASSOCIATIONS, {"$uuid": [_quoted_list(uuids)]})


def get_documents_and_associations(assertion: bytes, uuids: list[str]) -> Request:
    """GetDocumentsAndAssociations of DocumentEntries by entryUUID (the DMP's batches of 20)."""
    return _stored_query(assertion, GET_DOCUMENTS_AND_ASSOCIATIONS, {"$XDSDocumentEntryEntryUUID": [_quoted_list(uuids)]})


def retrieve(assertion: bytes, unique_ids: list[str]) -> Request:
    """An ITI-43 RetrieveDocumentSet of documents of the DMP's repository, by uniqueId."""
    request = etree.Element(q("xdsb", "RetrieveDocumentSetRequest"), nsmap={"xdsb": NS["xdsb"]})
    for value in unique_ids:
        document = _sub(request, "xdsb", "DocumentRequest")
        _sub(document, "xdsb", "RepositoryUniqueId", REPOSITORY_UNIQUE_ID)
        _sub(document, "xdsb", "DocumentUniqueId", value)
    return _plain(ITI43, request, assertion)


# --- answers -----------------------------------------------------------------------------------------


class BadAnswer(Exception):
    """An answer that is not the SOAP message its request calls for (its text says what is wrong)."""


@dataclass(frozen=True)
class Answer:
    """A SOAP answer: the element in its Body, and the MIME parts of an MTOM answer by Content-ID."""

    body: etree._Element
    parts: dict[str, bytes]

    @property
    def status(self) -> str:
        """The answer's RegistryResponse status (its own, or, in an ITI-43 answer, its rs:RegistryResponse's)."""
        if self.body.get("status"):
            return self.body.get("status", "")
        inner = self.body.find(q("rs", "RegistryResponse"))
        return inner.get("status", "") if inner is not None else ""

    def error_codes(self) -> list[str]:
        return [e.get("errorCode", "") for e in self.body.iter(q("rs", "RegistryError"))]

    def entries(self) -> list[tuple[str, str, str]]:
        """The DocumentEntries returned: (entryUUID, uniqueId, patientId CX)."""
        found = []
        for entry in self.body.iter(q("rim", "ExtrinsicObject")):
            ids = {e.get("identificationScheme"): e.get("value", "") for e in entry.iter(q("rim", "ExternalIdentifier"))}
            found.append((entry.get("id", ""), ids.get(DE_UNIQUE_ID, ""), ids.get(DE_PATIENT_ID, "")))
        return found

    def object_refs(self) -> list[str]:
        return [ref.get("id", "") for ref in self.body.iter(q("rim", "ObjectRef"))]

    def submission_sets(self) -> list[tuple[str, str]]:
        """The submission sets returned: (entryUUID, patientId CX)."""
        found = []
        for package in self.body.iter(q("rim", "RegistryPackage")):
            ids = {e.get("identificationScheme"): e.get("value", "") for e in package.iter(q("rim", "ExternalIdentifier"))}
            found.append((package.get("id", ""), ids.get(SS_PATIENT_ID, "")))
        return found

    def associations(self, kind: str = HAS_MEMBER) -> list[tuple[str, str]]:
        """(sourceObject, targetObject) of the associations of that type."""
        return [(a.get("sourceObject", ""), a.get("targetObject", "")) for a in self.body.iter(q("rim", "Association"))
                if a.get("associationType") == kind]

    def documents(self) -> dict[str, bytes]:
        """An ITI-43 answer's documents, uniqueId -> bytes (an MTOM part, or base64 inline)."""
        import base64

        found = {}
        for response in self.body.iter(q("xdsb", "DocumentResponse")):
            unique = (response.findtext(q("xdsb", "DocumentUniqueId")) or "").strip()
            document = response.find(q("xdsb", "Document"))
            if document is None:
                continue
            include = document.find(q("xop", "Include"))
            if include is not None:
                found[unique] = self.parts.get(include.get("href", "").removeprefix("cid:"), b"")
            else:
                try:
                    found[unique] = base64.b64decode("".join((document.text or "").split()), validate=True)
                except ValueError:  # binascii.Error is one
                    raise BadAnswer(f"document {unique[:60]} is not valid base64") from None
        return found

    def patient_id(self) -> str:
        """A TD0.2 answer's PatientId."""
        return (self.body.findtext(q("segur", "PatientId")) or "").strip()

    def td02(self) -> tuple[str, str]:
        """A TD0.2 answer: (DmpStatus, Autorisation)."""
        return (self.body.findtext(q("segur", "DmpStatus")) or "", self.body.findtext(q("segur", "Autorisation")) or "")


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def read_answer(body: bytes) -> Answer:
    """The SOAP answer in ``body``: plain SOAP 1.2, or MTOM (found by its first line, a MIME boundary: the
    service's multipart answers have no preamble). Raises :class:`BadAnswer` otherwise, or for a SOAP Fault."""
    parts: dict[str, bytes] = {}
    xml = body
    if body.startswith(b"--"):
        boundary = body[:body.index(b"\r\n")] if b"\r\n" in body else b""
        chunks = body.split(b"\r\n" + boundary) if boundary else []
        if not chunks:
            raise BadAnswer("a multipart answer without a boundary line")
        chunks[0] = chunks[0][len(boundary):]
        root = None
        for chunk in chunks:
            if chunk.startswith(b"--"):
                break
            head, _, content = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
            cid = ""
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-id":
                    cid = value.strip().strip(b"<>").decode("latin-1")
            if root is None:
                root = content
            else:
                parts[cid] = content
        if root is None:
            raise BadAnswer("a multipart answer without parts")
        xml = root
    try:
        envelope = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as error:
        raise BadAnswer(f"not XML: {error}") from None
    soap_body = envelope.find(q("soap", "Body"))
    if envelope.tag != q("soap", "Envelope") or soap_body is None or len(soap_body) == 0:
        raise BadAnswer("not a SOAP 1.2 envelope with a body")
    child = soap_body[0]
    if child.tag == q("soap", "Fault"):
        raise BadAnswer("SOAP Fault: " + (child.findtext(f".//{q('soap', 'Text')}") or "")[:160])
    return Answer(child, parts)

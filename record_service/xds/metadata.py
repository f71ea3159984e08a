"""ebRIM 3.0 metadata (ITI TF-3 4.2): an ITI-41 submission in, as the same checked deposit ITI-65 gives;
DocumentEntries out, from the stored DocumentReference, whichever front deposited it.

In, each DocumentEntry becomes the DocumentReference an MHD Document Source would have sent (the
mapping of ITI TF-3 4.5 / the PDSm4DMP XDS-FHIR annex): uniqueId -> ``masterIdentifier``
(``urn:oid:`` + the OID), typeCode -> ``type``, classCode -> ``category``, confidentialityCode ->
``securityLabel``, formatCode -> ``content.format``, healthcareFacilityTypeCode / practiceSettingCode
-> ``context``, author (XCN with the IdNat_PS, XON with the IdNat_Struct) -> ``author``, hash and size
checked against the bytes; an RPLC association -> ``relatesTo`` replaces. The typeCode must be one the
DMP knows (as on the FHIR front); the other codes are stored as given. Every refusal is an
:class:`~record_service.xds.errors.XdsError` with the code IHE gives it, raised before anything is stored.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from lxml import etree

from record_service.bundles import Deposit, NewDocument, NewSubmissionSet, format_instant
from record_service.codes import CONTENT_TYPES, MASKED_FROM_PROFESSIONALS, TYPE_CODES_BY_SYSTEM, VISIBILITY_SYSTEM
from record_service.xds import codes, errors, terms
from record_service.xds.errors import XdsError
from record_service.xds.soap import Message, SoapFault
from record_service.xds.terms import NS, q
from segur.identifiers import (IDNAT_STRUCT_SYSTEM, INS_NIR_SYSTEM, INS_OIDS, RPPS_SYSTEM, is_valid_finess,
                               is_valid_ins, is_valid_rpps)

_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_DTM = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?")
_UUID_URN = re.compile(r"urn:uuid:([0-9a-fA-F-]{36})")
_IDNPS_OID, _IDNST_OID = "1.2.250.1.71.4.2.1", "1.2.250.1.71.4.2.2"
_MAX_UNIQUE_ID = 128  # an OID of the DMP's form, with room
_MAX_SET_ID = 256  # a submission set's uniqueId and sourceId, as on the FHIR front


@dataclass(frozen=True)
class SubmissionSet:
    """What an ITI-41 says of its submission set (kept with the deposit's answer)."""

    entry_uuid: str
    unique_id: str
    source_id: str | None
    patient_ins: str


# --- in: ITI-41 -> Deposit ------------------------------------------------------------------------

def parse_submission(message: Message, max_document_bytes: int, max_documents: int) -> tuple[Deposit, SubmissionSet]:
    """The checked deposit of a ``ProvideAndRegisterDocumentSetRequest``; raises XdsError (or SoapFault for a
    message that is not one)."""
    request = message.body
    if request.tag != q("xdsb", "ProvideAndRegisterDocumentSetRequest"):
        raise SoapFault(f"ITI-41 carries an xdsb:ProvideAndRegisterDocumentSetRequest, not "
                        f"<{etree.QName(request).localname}>")
    objects = request.find(f"{q('lcm', 'SubmitObjectsRequest')}/{q('rim', 'RegistryObjectList')}")
    if objects is None:
        raise XdsError(errors.REGISTRY_METADATA, "no lcm:SubmitObjectsRequest/rim:RegistryObjectList")
    entries = objects.findall(q("rim", "ExtrinsicObject"))
    if len(entries) > max_documents:
        raise XdsError(errors.REGISTRY_METADATA, f"a submission carries at most {max_documents} documents "
                       f"({len(entries)} sent): split it into several submission sets", reason="too-many-documents")
    if not entries:
        raise XdsError(errors.REGISTRY_METADATA, "the submission has no DocumentEntry (rim:ExtrinsicObject)")
    seen: set[str] = set()
    for entry in entries:
        entry_id = entry.get("id") or ""
        if not entry_id or entry_id in seen:
            raise XdsError(errors.REGISTRY_METADATA, f"DocumentEntry id {entry_id[:80]!r} is missing or given to two "
                           "DocumentEntries: each object of a submission has its own")
        seen.add(entry_id)
    submission_set = _submission_set(objects)
    documents = _documents(message, request, {entry.get("id") for entry in entries}, max_document_bytes)
    members, replaced = _associations(objects, submission_set.get("id"), {entry.get("id") for entry in entries})
    ss_patient = _patient(_external_id(submission_set, terms.SS_PATIENT_ID, "XDSSubmissionSet.patientId"),
                          "XDSSubmissionSet.patientId")
    submitted_us = _submission_time(submission_set)
    parsed: list[NewDocument] = []
    unique_ids: set[str] = set()
    for index, entry in enumerate(entries):
        document = _document_entry(entry, documents, replaced, ss_patient, submitted_us, index)
        if document.master_id in unique_ids:
            raise XdsError(errors.DUPLICATE_IN_MESSAGE, f"uniqueId {document.master_id[8:]} appears twice in the "
                           "submission", location=document.master_id[8:])
        unique_ids.add(document.master_id)
        if entry.get("id") not in members:
            raise XdsError(errors.REGISTRY_METADATA, f"DocumentEntry {entry.get('id')} is not a member of the "
                           "submission set (no HasMember association)")
        parsed.append(document)
    info = SubmissionSet(entry_uuid=_entry_uuid(submission_set.get("id")),
                         unique_id=_external_id(submission_set, terms.SS_UNIQUE_ID, "XDSSubmissionSet.uniqueId"),
                         source_id=_external_id(submission_set, terms.SS_SOURCE_ID, "XDSSubmissionSet.sourceId",
                                                required=False),
                         patient_ins=ss_patient)
    content_types = _classifications(submission_set, terms.SS_CONTENT_TYPE)
    content = _coding(content_types[0], "XDSSubmissionSet.contentTypeCode") if content_types else None
    if len(info.unique_id) > _MAX_SET_ID or not info.unique_id.isprintable():
        raise XdsError(errors.REGISTRY_METADATA, f"XDSSubmissionSet.uniqueId {info.unique_id[:80]!r} must be "
                       f"printable and at most {_MAX_SET_ID} characters")
    if info.source_id is not None and (len(info.source_id) > _MAX_SET_ID or not info.source_id.isprintable()):
        raise XdsError(errors.REGISTRY_METADATA, f"XDSSubmissionSet.sourceId {info.source_id[:80]!r} must be "
                       f"printable and at most {_MAX_SET_ID} characters")
    registered = NewSubmissionSet(unique_id=info.unique_id, source_id=info.source_id, submission_us=submitted_us,
                                  content_type=(content["system"], content["code"]) if content else None)
    return Deposit(patient_ins=ss_patient, documents=parsed, entry_count=len(parsed), list_index=-1,
                   submission_set=registered), info


def _submission_set(objects: etree._Element) -> etree._Element:
    packages = objects.findall(q("rim", "RegistryPackage"))
    classified = {c.get("classifiedObject") for c in objects.iter(q("rim", "Classification"))
                  if c.get("classificationNode") == terms.SUBMISSION_SET}
    sets = [p for p in packages if p.get("id") in classified]
    if len(packages) > len(sets):
        raise XdsError(errors.REGISTRY_METADATA, "folders (a RegistryPackage that is not the submission set) are "
                       "not used by the DMP and not accepted here")
    if len(sets) != 1:
        raise XdsError(errors.REGISTRY_METADATA, f"a submission has exactly one submission set (a RegistryPackage "
                       f"classified {terms.SUBMISSION_SET}); found {len(sets)}")
    return sets[0]


def _documents(message: Message, request: etree._Element, entry_ids: set[str | None],
               max_document_bytes: int) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for element in request.findall(q("xdsb", "Document")):
        document_id = element.get("id")
        if document_id not in entry_ids:
            raise XdsError(errors.MISSING_DOCUMENT_METADATA, f"xdsb:Document {str(document_id)[:80]} has no "
                           "DocumentEntry (rim:ExtrinsicObject with that id)", location=document_id)
        if document_id in found:
            raise XdsError(errors.REGISTRY_METADATA, f"xdsb:Document {document_id[:80]} is given twice")
        data = message.binary(element, f"xdsb:Document {document_id[:80]}")
        if len(data) > max_document_bytes:
            raise XdsError(errors.REPOSITORY_OUT_OF_RESOURCES, f"document {document_id[:80]} has {len(data)} bytes: "
                           f"documents are limited to {max_document_bytes} bytes", reason="oversized")
        found[document_id] = data
    return found


def _associations(objects: etree._Element, set_id: str | None, entry_ids: set) -> tuple[set[str], dict[str, str]]:
    """(DocumentEntries the submission set has as members, DocumentEntry -> the document id it replaces)."""
    members: set[str] = set()
    replaced: dict[str, str] = {}
    for association in objects.findall(q("rim", "Association")):
        kind, source, target = (association.get(k) for k in ("associationType", "sourceObject", "targetObject"))
        if kind == terms.HAS_MEMBER and source == set_id and target in entry_ids:
            members.add(target)
        elif kind == terms.RPLC and source in entry_ids:
            match = _UUID_URN.fullmatch(target or "")
            if match is None:
                raise XdsError(errors.REGISTRY_METADATA, f"the RPLC association's targetObject {str(target)[:80]!r} "
                               "must be the entryUUID (urn:uuid:…) of a registered DocumentEntry")
            replaced[source] = uuid.UUID(match.group(1)).hex
        elif kind == terms.HAS_MEMBER:
            raise XdsError(errors.REGISTRY_METADATA, f"a HasMember association from {str(source)[:60]} to "
                           f"{str(target)[:60]}: only the submission set's own DocumentEntries can be members here")
        else:
            raise XdsError(errors.REGISTRY_METADATA, f"association type {str(kind)[:80]} is not accepted (the DMP "
                           "uses HasMember and RPLC)")
    return members, replaced


def _slots(element: etree._Element) -> dict[str, list[str]]:
    return {slot.get("name"): [v.text or "" for v in slot.iter(q("rim", "Value"))]
            for slot in element.findall(q("rim", "Slot"))}


def _slot(slots: dict[str, list[str]], name: str, where: str, required: bool = True) -> str | None:
    values = slots.get(name)
    if not values or not values[0].strip():
        if required:
            raise XdsError(errors.REGISTRY_METADATA, f"{where}: the {name} slot is missing")
        return None
    return values[0].strip()


def _external_id(element: etree._Element, scheme: str, name: str, required: bool = True) -> str | None:
    for identifier in element.findall(q("rim", "ExternalIdentifier")):
        if identifier.get("identificationScheme") == scheme:
            value = (identifier.get("value") or "").strip()
            if value:
                return value
    if required:
        raise XdsError(errors.REGISTRY_METADATA, f"{name} is missing (ExternalIdentifier {scheme})")
    return None


def _patient(cx: str, where: str) -> str:
    """The INS of a CX patient id ``INS^^^&1.2.250.1.213.1.4.8&ISO[^NH]``."""
    parts = cx.split("^")
    authority = parts[3].split("&") if len(parts) > 3 else []
    if len(authority) < 2 or authority[1] not in INS_OIDS:
        raise XdsError(errors.REGISTRY_METADATA, f"{where} {cx[:80]!r} is not an INS in CX form "
                       "(INS^^^&1.2.250.1.213.1.4.8&ISO)", reason="invalid-ins")
    if not is_valid_ins(parts[0]):
        raise XdsError(errors.REGISTRY_METADATA, f"{where}: {parts[0][:40]!r} is not a valid INS (13 characters "
                       "+ 2-digit key)", reason="invalid-ins")
    return parts[0]


def _moment(value: str, where: str) -> tuple[datetime, int]:
    """An HL7 V2 DTM (UTC, ``YYYY[MM[DD[hh[mm[ss]]]]]``): the moment and how many of its parts were given."""
    match = _DTM.fullmatch(value)
    if match is None:
        raise XdsError(errors.REGISTRY_METADATA, f"{where} {value[:40]!r} is not a DTM (YYYYMMDDhhmmss, UTC)")
    parts = [int(p) if p else None for p in match.groups()]
    try:
        moment = datetime(parts[0], parts[1] or 1, parts[2] or 1, parts[3] or 0, parts[4] or 0, parts[5] or 0,
                          tzinfo=timezone.utc)
    except ValueError:
        raise XdsError(errors.REGISTRY_METADATA, f"{where} {value[:40]!r} is not a valid date") from None
    return moment, sum(p is not None for p in parts)


def _dtm(value: str, where: str) -> str:
    """An HL7 V2 DTM as a FHIR dateTime at the same precision (a time of day in UTC)."""
    moment, given = _moment(value, where)
    if given >= 4:
        return moment.isoformat().replace("+00:00", "Z")
    return moment.strftime("%Y-%m-%d")[: {1: 4, 2: 7, 3: 10}[given]]


def _submission_time(submission_set: etree._Element) -> int:
    """The submission set's submissionTime in microseconds since the epoch (now when it gives none)."""
    value = _slot(_slots(submission_set), "submissionTime", "XDSSubmissionSet", required=False)
    moment = _moment(value, "XDSSubmissionSet.submissionTime")[0] if value else datetime.now(timezone.utc)
    return int(moment.timestamp() * 1_000_000)


def _classifications(entry: etree._Element, scheme: str) -> list[etree._Element]:
    return [c for c in entry.findall(q("rim", "Classification")) if c.get("classificationScheme") == scheme]


def _coding(classification: etree._Element, where: str) -> dict:
    code = (classification.get("nodeRepresentation") or "").strip()
    scheme = _slot(_slots(classification), "codingScheme", where)
    if not code:
        raise XdsError(errors.REGISTRY_METADATA, f"{where}: the code (nodeRepresentation) is empty")
    coding = {"system": codes.system_of(scheme), "code": code}
    display = classification.find(f"{q('rim', 'Name')}/{q('rim', 'LocalizedString')}")
    if display is not None and (display.get("value") or "").strip():
        coding["display"] = display.get("value").strip()
    return coding


def _one_code(entry: etree._Element, scheme: str, name: str) -> dict:
    found = _classifications(entry, scheme)
    if len(found) != 1:
        raise XdsError(errors.REGISTRY_METADATA, f"a DocumentEntry has exactly one {name}; {len(found)} given")
    return _coding(found[0], f"XDSDocumentEntry.{name}")


def _authors(entry: etree._Element) -> tuple[tuple[str, ...], list[dict]]:
    """(RPPS and FINESS of the authors, the FHIR ``author`` references) from the author classifications."""
    found: list[str] = []
    references: list[dict] = []
    for classification in _classifications(entry, terms.DE_AUTHOR):
        slots = _slots(classification)
        for person in slots.get("authorPerson", []):
            rpps = _idnat_ps(person)
            if rpps and rpps not in found:
                found.append(rpps)
                references.append({"identifier": {"system": RPPS_SYSTEM, "value": "8" + rpps}})
        for institution in slots.get("authorInstitution", []):
            finess = _finess(institution)
            if finess and finess not in found:
                found.append(finess)
                references.append({"identifier": {"system": IDNAT_STRUCT_SYSTEM, "value": "1" + finess}})
    return tuple(found), references


def _idnat_ps(xcn: str) -> str | None:
    """The RPPS of an authorPerson XCN whose id is an IdNat_PS (``8`` + RPPS, authority 1.2.250.1.71.4.2.1)."""
    parts = xcn.split("^")
    value = parts[0].strip()
    authority = parts[8].split("&") if len(parts) > 8 else []
    if len(authority) > 1 and authority[1] != _IDNPS_OID:
        return None
    rpps = value[1:] if len(value) == 12 and value.startswith("8") else value
    if not is_valid_rpps(rpps):
        if value and len(authority) > 1:
            raise XdsError(errors.REGISTRY_METADATA, f"authorPerson {xcn[:80]!r}: {value[:20]!r} is not an "
                           "IdNat_PS of an RPPS ('8' + 11 digits)")
        return None
    return rpps


def _finess(xon: str) -> str | None:
    """The FINESS of an authorInstitution XON whose id (XON.10) is an IdNat_Struct ``1`` + FINESS (None for
    another kind of IdNat_Struct, SIREN, SIRET…); XdsError for a malformed one, as on the FHIR front."""
    parts = xon.split("^")
    value = parts[9].strip() if len(parts) > 9 else ""
    authority = parts[5].split("&") if len(parts) > 5 else []
    if not value.startswith("1"):
        return None
    if not is_valid_finess(value[1:]):
        if len(authority) > 1 and authority[1] == _IDNST_OID:
            raise XdsError(errors.REGISTRY_METADATA, f"authorInstitution {xon[:80]!r}: {value[:20]!r} is not an "
                           "IdNat_Struct of a FINESS ('1' + 9 digits with their Luhn key)")
        return None
    return value[1:]


def _document_entry(entry: etree._Element, documents: dict[str, bytes], replaced: dict[str, str],
                    ss_patient: str, submitted_us: int, index: int) -> NewDocument:
    entry_id = entry.get("id") or ""
    where = f"DocumentEntry {entry_id[:60]}"
    if entry.get("objectType") != terms.DOCUMENT_ENTRY:
        raise XdsError(errors.REGISTRY_METADATA, f"{where}: objectType must be the stable DocumentEntry "
                       f"({terms.DOCUMENT_ENTRY}); on-demand documents are not accepted")
    unique_id = _external_id(entry, terms.DE_UNIQUE_ID, "XDSDocumentEntry.uniqueId")
    if len(unique_id) > _MAX_UNIQUE_ID or not _OID.fullmatch(unique_id.split("^")[0]):
        raise XdsError(errors.REGISTRY_METADATA, f"{where}: uniqueId {unique_id[:80]!r} is not an OID",
                       location=unique_id[:80])
    unique_id = unique_id.split("^")[0]
    patient = _patient(_external_id(entry, terms.DE_PATIENT_ID, "XDSDocumentEntry.patientId"),
                       "XDSDocumentEntry.patientId")
    if patient != ss_patient:
        raise XdsError(errors.PATIENT_ID_DOES_NOT_MATCH, f"{where} names patient {patient}, its submission set "
                       f"{ss_patient}", reason="other-patient")
    if entry_id not in documents:
        raise XdsError(errors.MISSING_DOCUMENT, f"{where} has no xdsb:Document with its id", location=unique_id)
    data = documents[entry_id]
    mime_type = (entry.get("mimeType") or "").strip()
    if mime_type.split(";")[0].strip().lower() not in CONTENT_TYPES:
        raise XdsError(errors.REGISTRY_METADATA, f"{where}: mimeType {mime_type[:60]!r} is not an accepted document "
                       f"format ({', '.join(sorted(CONTENT_TYPES))})", reason="wrong-content-type")
    slots = _slots(entry)
    _check_hash_and_size(slots, data, where, unique_id)
    type_coding = _one_code(entry, terms.DE_TYPE, "typeCode")
    if type_coding["code"] not in TYPE_CODES_BY_SYSTEM.get(type_coding["system"], ()):
        raise XdsError(errors.REGISTRY_METADATA, f"{where}: typeCode {type_coding['code'][:40]!r} of "
                       f"{codes.scheme_of(type_coding['system'])} is not a document type the DMP knows",
                       reason="unknown-type")
    confidentiality = [_coding(c, "XDSDocumentEntry.confidentialityCode")
                       for c in _classifications(entry, terms.DE_CONFIDENTIALITY)]
    if not confidentiality:
        raise XdsError(errors.REGISTRY_METADATA, f"{where}: confidentialityCode is missing")
    if not any(value.strip() for c in _classifications(entry, terms.DE_AUTHOR) for name, values in _slots(c).items()
               if name in ("authorPerson", "authorInstitution") for value in values):
        raise XdsError(errors.REGISTRY_METADATA, f"{where}: the author is missing (an author classification with "
                       "its authorPerson or authorInstitution), as the DMP and the FHIR front require")
    authors, author_references = _authors(entry)
    attachment = {"contentType": mime_type, "size": len(data),
                  "hash": base64.b64encode(hashlib.sha1(data).digest()).decode()}
    creation = _slot(slots, "creationTime", where)
    attachment["creation"] = _dtm(creation, f"{where}: creationTime")
    language = _slot(slots, "languageCode", where, required=False)
    if language:
        attachment["language"] = language
    title = entry.find(f"{q('rim', 'Name')}/{q('rim', 'LocalizedString')}")
    if title is not None and (title.get("value") or "").strip():
        attachment["title"] = title.get("value").strip()
    context: dict = {"facilityType": {"coding": [_one_code(entry, terms.DE_FACILITY_TYPE, "healthcareFacilityTypeCode")]},
                     "practiceSetting": {"coding": [_one_code(entry, terms.DE_PRACTICE, "practiceSettingCode")]}}
    events = [{"coding": [_coding(c, "XDSDocumentEntry.eventCodeList")]}
              for c in _classifications(entry, terms.DE_EVENT)]
    if events:
        context["event"] = events
    period = {part: _dtm(value, f"{where}: {slot}") for part, slot in (("start", "serviceStartTime"),
                                                                       ("end", "serviceStopTime"))
              if (value := _slot(slots, slot, where, required=False))}
    if period:
        context["period"] = period
    resource: dict = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{unique_id}"},
        "status": "current",
        "type": {"coding": [type_coding]},
        "category": [{"coding": [_one_code(entry, terms.DE_CLASS, "classCode")]}],
        "subject": {"identifier": {"system": INS_NIR_SYSTEM, "value": patient}},
        "date": format_instant(submitted_us),
        "securityLabel": [{"coding": [coding]} for coding in confidentiality],
        "content": [{"attachment": attachment, "format": _one_code(entry, terms.DE_FORMAT, "formatCode")}],
        "context": context,
    }
    if author_references:
        resource["author"] = author_references
    replaces = replaced.get(entry_id)
    if replaces:
        resource["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}]
    masked = any(c["system"] == VISIBILITY_SYSTEM and c["code"] == MASKED_FROM_PROFESSIONALS for c in confidentiality)
    return NewDocument(id=uuid.uuid4().hex, master_id=f"urn:oid:{unique_id}", type_code=type_coding["code"],
                       date_us=submitted_us, authors=authors, content_type=mime_type, data=data,
                       sha256=hashlib.sha256(data).hexdigest(), masked=masked, replaces=replaces, resource=resource,
                       entry_index=index)


def _check_hash_and_size(slots: dict[str, list[str]], data: bytes, where: str, unique_id: str) -> None:
    """The declared hash (SHA-1, hex, any case) and size must be the bytes' (XDSRepositoryMetadataError)."""
    declared_hash = _slot(slots, "hash", where, required=False)
    if declared_hash is not None and declared_hash.lower() != hashlib.sha1(data).hexdigest():
        raise XdsError(errors.REPOSITORY_METADATA, f"{where}: the hash slot ({declared_hash[:48]}) is not the SHA-1 "
                       f"of the document's bytes ({hashlib.sha1(data).hexdigest()})", location=unique_id,
                       reason="hash-mismatch")
    declared_size = _slot(slots, "size", where, required=False)
    if declared_size is not None and (not (declared_size.isascii() and declared_size.isdigit())  # not '²', '١٢'
                                      or int(declared_size) != len(data)):
        raise XdsError(errors.REPOSITORY_METADATA, f"{where}: the size slot says {declared_size[:20]} bytes, the "
                       f"document has {len(data)}", location=unique_id, reason="size-mismatch")


def _entry_uuid(symbolic: str | None) -> str:
    match = _UUID_URN.fullmatch(symbolic or "")
    return f"urn:uuid:{match.group(1).lower()}" if match else f"urn:uuid:{uuid.uuid4()}"


def entry_uuid(document_id: str) -> str:
    """The entryUUID of a stored document (its 32-hex id as a UUID URN)."""
    return f"urn:uuid:{uuid.UUID(document_id)}"


def document_id(entry_uuid_: str) -> str | None:
    """The stored document id an entryUUID names, or None when it is not a UUID URN."""
    match = _UUID_URN.fullmatch(entry_uuid_.strip())
    return uuid.UUID(match.group(1)).hex if match else None


# --- out: stored DocumentReference -> ExtrinsicObject ---------------------------------------------------

def _sub(parent: etree._Element, local: str, namespace: str = "rim", **attributes) -> etree._Element:
    return etree.SubElement(parent, q(namespace, local), {k: v for k, v in attributes.items() if v is not None})


def _add_slot(parent: etree._Element, name: str, *values: str) -> None:
    slot = _sub(parent, "Slot", name=name)
    listing = _sub(slot, "ValueList")
    for value in values:
        _sub(listing, "Value").text = value


def _add_name(parent: etree._Element, text: str | None) -> None:
    if text:
        _sub(_sub(parent, "Name"), "LocalizedString", value=text)


def _add_code(parent: etree._Element, scheme: str, object_id: str, coding: dict) -> None:
    if not isinstance(coding, dict) or not coding.get("code"):
        return
    classification = _sub(parent, "Classification", id=f"urn:uuid:{uuid.uuid4()}", classificationScheme=scheme,
                          classifiedObject=object_id, nodeRepresentation=str(coding["code"]))
    _add_slot(classification, "codingScheme", codes.scheme_of(str(coding.get("system") or "")))
    _add_name(classification, coding.get("display"))


def _first_coding(concept: object) -> dict:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return codings[0] if isinstance(codings, list) and codings and isinstance(codings[0], dict) else {}


def cx(ins: str) -> str:
    return f"{ins}^^^&1.2.250.1.213.1.4.8&ISO"


def _fhir_to_dtm(value: str | None) -> str | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "".join(ch for ch in value if ch.isdigit())[:14] or None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y%m%d%H%M%S") if "T" in value else moment.strftime("%Y%m%d")[: len(
        "".join(ch for ch in value if ch.isdigit()))]


def document_entry(document_id_: str, resource: dict, patient_ins: str, object_ref: bool = False) -> etree._Element:
    """A stored document as a LeafClass ``rim:ExtrinsicObject`` (or a ``rim:ObjectRef``)."""
    entry_id = entry_uuid(document_id_)
    if object_ref:
        return etree.Element(q("rim", "ObjectRef"), {"id": entry_id}, nsmap={"rim": NS["rim"]})
    content = (resource.get("content") or [{}])[0]
    attachment = content.get("attachment") or {}
    status = terms.APPROVED if resource.get("status") == "current" else terms.DEPRECATED
    entry = etree.Element(q("rim", "ExtrinsicObject"), {
        "id": entry_id, "lid": entry_id, "objectType": terms.DOCUMENT_ENTRY, "status": status,
        "mimeType": str(attachment.get("contentType") or "application/octet-stream")}, nsmap={"rim": NS["rim"]})
    if attachment.get("creation"):
        _add_slot(entry, "creationTime", _fhir_to_dtm(attachment["creation"]))
    if attachment.get("hash"):
        _add_slot(entry, "hash", base64.b64decode(attachment["hash"]).hex())
    if attachment.get("language"):
        _add_slot(entry, "languageCode", attachment["language"])
    _add_slot(entry, "repositoryUniqueId", terms.REPOSITORY_UNIQUE_ID)
    period = (resource.get("context") or {}).get("period") or {}
    for part, slot in (("start", "serviceStartTime"), ("end", "serviceStopTime")):
        if period.get(part):
            _add_slot(entry, slot, _fhir_to_dtm(period[part]))
    if attachment.get("size") is not None:
        _add_slot(entry, "size", str(attachment["size"]))
    _add_slot(entry, "sourcePatientId", cx(patient_ins))
    _add_name(entry, attachment.get("title") or resource.get("description"))
    _add_authors(entry, entry_id, resource.get("author") or [])
    context = resource.get("context") or {}
    for scheme, concept in ((terms.DE_CLASS, (resource.get("category") or [None])[0]),
                            (terms.DE_FORMAT, {"coding": [content["format"]]} if content.get("format") else None),
                            (terms.DE_FACILITY_TYPE, context.get("facilityType")),
                            (terms.DE_PRACTICE, context.get("practiceSetting")),
                            (terms.DE_TYPE, resource.get("type"))):
        _add_code(entry, scheme, entry_id, _first_coding(concept))
    for label in resource.get("securityLabel") or []:
        _add_code(entry, terms.DE_CONFIDENTIALITY, entry_id, _first_coding(label))
    for event in context.get("event") or []:
        _add_code(entry, terms.DE_EVENT, entry_id, _first_coding(event))
    master = str((resource.get("masterIdentifier") or {}).get("value") or "")
    for scheme, value, name in ((terms.DE_PATIENT_ID, cx(patient_ins), "XDSDocumentEntry.patientId"),
                                (terms.DE_UNIQUE_ID, master.removeprefix("urn:oid:"), "XDSDocumentEntry.uniqueId")):
        identifier = _sub(entry, "ExternalIdentifier", id=f"urn:uuid:{uuid.uuid4()}", identificationScheme=scheme,
                          registryObject=entry_id, value=value)
        _add_name(identifier, name)
    return entry


def _add_authors(entry: etree._Element, entry_id: str, authors: list) -> None:
    persons, institutions = [], []
    for author in authors:
        identifier = author.get("identifier") if isinstance(author, dict) else None
        if not isinstance(identifier, dict):
            continue
        value = str(identifier.get("value") or "")
        if identifier.get("system") == RPPS_SYSTEM and value:
            persons.append(f"{value}^^^^^^^^&{_IDNPS_OID}&ISO^D^^^^IDNPS")
        elif identifier.get("system") == IDNAT_STRUCT_SYSTEM and value:
            institutions.append(f"^^^^^&{_IDNST_OID}&ISO^IDNST^^^{value}")
    if not persons and not institutions:
        return
    classification = _sub(entry, "Classification", id=f"urn:uuid:{uuid.uuid4()}", classificationScheme=terms.DE_AUTHOR,
                          classifiedObject=entry_id, nodeRepresentation="")
    if persons:
        _add_slot(classification, "authorPerson", *persons[:1])
    if institutions:
        _add_slot(classification, "authorInstitution", *institutions)


def _in_query(error: XdsError) -> XdsError:
    """A query parameter's error: XDSRegistryError (XDSRegistryMetadataError is for submitted metadata)."""
    return XdsError(errors.REGISTRY_ERROR, error.context, error.location, error.reason)


def patient_in(cx_: str, where: str) -> str:
    """The INS of a CX patient id in a query (quotes already removed); XdsError when it is not one."""
    try:
        return _patient(cx_, where)
    except XdsError as error:
        raise _in_query(error) from None


def dtm_us(dtm: str, where: str) -> int:
    """A query's DTM (UTC, ``YYYY[MM[DD[hh[mm[ss]]]]]``) as µs since the epoch of the first instant it covers."""
    try:
        return int(_moment(dtm, where)[0].timestamp() * 1_000_000)
    except XdsError as error:
        raise _in_query(error) from None


def fhir_datetime(dtm: str, where: str) -> str:
    """A query's DTM as the FHIR dateTime an ITI-67 date parameter takes."""
    try:
        return _dtm(dtm, where)
    except XdsError as error:
        raise _in_query(error) from None


def rpps_in_pattern(pattern: str) -> str | None:
    """The RPPS of an ``$XDSDocumentEntryAuthorPerson`` LIKE pattern whose first component is an IdNat_PS."""
    head = pattern.split("^")[0].rstrip("%_")
    rpps = head[1:] if len(head) == 12 and head.startswith("8") else head
    return rpps if is_valid_rpps(rpps) else None

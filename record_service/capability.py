"""The CapabilityStatement served at ``/metadata``: what this server implements, and nothing more."""

from __future__ import annotations

import orjson

from record_service.document_search import SEARCH_PARAMETERS
from record_service.patient_search import AUTHORISATION_EXTENSION

_HL7 = "http://hl7.org/fhir/SearchParameter/"
_DEFINITIONS = {  # the standard definitions of the ITI-67 parameters (FHIR R4 DocumentReference, IHE MHD)
    "patient.identifier": _HL7 + "DocumentReference-patient", "status": _HL7 + "DocumentReference-status",
    "type": _HL7 + "clinical-type", "category": _HL7 + "DocumentReference-category",
    "date": _HL7 + "DocumentReference-date", "period": _HL7 + "DocumentReference-period",
    "creation": "https://profiles.ihe.net/ITI/MHD/SearchParameter/DocumentReference-Creation",
    "author.identifier": _HL7 + "DocumentReference-author", "facility": _HL7 + "DocumentReference-facility",
    "setting": _HL7 + "DocumentReference-setting", "security-label": _HL7 + "DocumentReference-security-label",
    "format": _HL7 + "DocumentReference-format", "event": _HL7 + "DocumentReference-event",
    "identifier": _HL7 + "clinical-identifier", "relatesto": _HL7 + "DocumentReference-relatesto",
    "_id": _HL7 + "Resource-id",
}
_MODIFIERS = {"token": ":not, :missing", "date": ":missing; prefixes eq ne gt lt ge le sa eb ap, any precision",
              "reference": ":identifier, :missing"}
_OWN_DOCUMENTATION = {
    "patient.identifier": "SYSTEM|INS (an INS system) or INS; no modifier", "_id": "no modifier",
    "author.identifier": "an author's RPPS (8 + RPPS) or an authoring facility's FINESS; no modifier",
}
_SEARCH_DOCUMENTATION = (
    "ITI-67 by GET or by POST [base]/DocumentReference/_search (application/x-www-form-urlencoded). A repeated"
    " parameter is AND, a comma list OR. patient.identifier (one patient) is required. Result parameters:"
    " _count (clamped to 0-100; 0 returns only Bundle.total), _total=none|estimate|accurate, _summary=count|false."
    " Any other parameter is ignored and left out of the self link, or refused (400) with Prefer: handling=strict.")


_DEPOSIT_DOCUMENTATION = (
    "ITI-65 Provide Document Bundle: one SubmissionSet List, DocumentReferences (at most --max-documents) and"
    " their Binary entries (or attachment.data inline), all POST. The patient by subject.identifier (INS), a"
    " conditional reference Patient?identifier=SYSTEM|INS or a contained Patient; authors by identifier (RPPS,"
    " FINESS), a conditional reference Practitioner?identifier=SYSTEM|VALUE, or contained Practitioner /"
    " PractitionerRole / Organization. Replacement: relatesTo.code=replaces"
    " with target.reference or target.identifier (masterIdentifier), optionally with the UpdateDocumentRefs"
    " PATCH entry (FHIRPath Patch setting DocumentReference.status to superseded); transforms, signs, appends"
    " and any other PATCH are refused (422).")

_TD02_DOCUMENTATION = (
    "TD0.2 (PDSm4DMP transaction_td02), GET [base]/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|INS: a searchset"
    " with total 0 and no entry when the patient closed their record, else one Patient (identifier, active=true)"
    " carrying, for a professional, the extension " + AUTHORISATION_EXTENSION + " (valueCode VALIDE, or INTERDIT"
    " when the patient blocked them). A patient may ask only about themself. Any other parameter is ignored, or"
    " refused (400) with Prefer: handling=strict.")


def _search_parameters() -> list[dict]:
    found = [{"name": name, "definition": _DEFINITIONS[name], "type": kind,
              "documentation": _documentation(name, kind)} for name, kind in SEARCH_PARAMETERS.items()]
    return found + [{"name": "_count", "type": "number", "documentation": "a page's size, clamped to 0-100"}]


def _documentation(name: str, kind: str) -> str:
    return _OWN_DOCUMENTATION.get(name) or _MODIFIERS[kind]


def capability_statement() -> bytes:
    """The CapabilityStatement (JSON bytes): every interaction, search parameter and operation served."""
    search = _search_parameters()
    return orjson.dumps({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": "segur-loadsim record service"},
        "implementation": {"description": "DMP-style document registry and repository (IHE MHD)"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "instantiates": ["https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentRecipient",
                         "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder"],
        "rest": [{
            "mode": "server",
            "security": {"description": "Bearer JWT: a professional (RPPS, sector, FINESS) or a patient (INS)"},
            "interaction": [{"code": "transaction", "documentation": _DEPOSIT_DOCUMENTATION}],
            "resource": [
                {"type": "DocumentReference", "interaction": [{"code": "read"}, {"code": "search-type"},
                                                              {"code": "delete"}],
                 "documentation": _SEARCH_DOCUMENTATION,
                 "searchParam": search,
                 "operation": [{"name": "mask", "definition": "urn:segur:OperationDefinition/mask"},
                               {"name": "unmask", "definition": "urn:segur:OperationDefinition/unmask"}]},
                {"type": "Binary", "interaction": [{"code": "read"}]},
                {"type": "Patient", "interaction": [{"code": "search-type"}],
                 "documentation": _TD02_DOCUMENTATION,
                 "searchParam": [{"name": "identifier", "definition": _HL7 + "Patient-identifier", "type": "token",
                                  "documentation": "SYSTEM|INS (an INS system) or INS; no modifier; required"}],
                 "operation": [
                    {"name": "block", "definition": "urn:segur:OperationDefinition/block"},
                    {"name": "unblock", "definition": "urn:segur:OperationDefinition/unblock"},
                    {"name": "opt-out", "definition": "urn:segur:OperationDefinition/opt-out"}]},
                {"type": "AuditEvent", "interaction": [{"code": "search-type"}],
                 "searchParam": [{"name": "patient.identifier", "type": "token"}]},
            ],
        }],
    })

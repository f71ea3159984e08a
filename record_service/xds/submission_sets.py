"""Submission sets in ITI-18: FindSubmissionSets' parameters, the RegistryPackage of a stored submission set,
and the HasMember association between a submission set and each of its DocumentEntries (ITI TF-2 3.18,
TF-3 4.2.3.3).

Every deposit, ITI-41 or ITI-65, registers one submission set (see :class:`~record_service.bundles.NewSubmissionSet`);
its members are the documents that deposit registered. The rules are the documents': the registry shows a
submission set, or a HasMember association, only to a caller who may see one of its documents (see
:func:`~record_service.registry.find_submission_sets`, :func:`~record_service.registry.submission_set_members`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from lxml import etree

from record_service.registry import SubmissionSetQuery
from record_service.xds import codes, errors, metadata, queries, terms
from record_service.xds.errors import XdsError
from record_service.xds.terms import NS, q

# FindSubmissionSets' parameters (ITI TF-2 3.18.4.1.2.3.7.2)
PATIENT_ID = "$XDSSubmissionSetPatientId"
_STATUS = "$XDSSubmissionSetStatus"
_SOURCE_ID = "$XDSSubmissionSetSourceId"
_FROM = "$XDSSubmissionSetSubmissionTimeFrom"
_TO = "$XDSSubmissionSetSubmissionTimeTo"
_AUTHOR = "$XDSSubmissionSetAuthorPerson"
_CONTENT_TYPE = "$XDSSubmissionSetContentType"
_PARAMETERS = {PATIENT_ID, _STATUS, _SOURCE_ID, _FROM, _TO, _AUTHOR, _CONTENT_TYPE}


def find_parameters(query: queries.StoredQuery, patient_ins: str) -> SubmissionSetQuery | None:
    """The registry query a FindSubmissionSets means, for ``patient_ins`` (the VIHF's, which the query named);
    None when it can match nothing (only Deprecated asked: a submission set is always Approved).

    Times are DTMs, ``…From`` inclusive and ``…To`` exclusive; ``$XDSSubmissionSetSourceId`` a list of
    OIDs and ``$XDSSubmissionSetContentType`` a list of ``code^^scheme``, each ORed. XdsError
    (``XDSStoredQueryMissingParam``, ``XDSStoredQueryParamNumber``, ``XDSRegistryError`` for an unknown
    parameter or ``$XDSSubmissionSetAuthorPerson``, which this registry does not answer).
    """
    for name in query.parameters:
        if name not in _PARAMETERS:
            raise XdsError(errors.REGISTRY_ERROR, f"{name[:60]} is not a parameter of FindSubmissionSets")
    if queries.single(query, PATIENT_ID) is None:
        raise XdsError(errors.MISSING_PARAM, f"{PATIENT_ID} is required by FindSubmissionSets")
    if queries.single(query, _AUTHOR, required=False) is not None:
        raise XdsError(errors.REGISTRY_ERROR, f"{_AUTHOR}: this registry does not find submission sets by author "
                       "(find them by patient, submission time, sourceId or contentType)")
    statuses = queries.listed(query, _STATUS)
    if not statuses:
        raise XdsError(errors.MISSING_PARAM, f"{_STATUS} is required by FindSubmissionSets")
    known = [s for s in statuses if s in (terms.APPROVED, terms.DEPRECATED)]  # others ignored (3.18.4.1.2.3.6)
    if not known:
        raise XdsError(errors.MISSING_PARAM, f"{_STATUS} names no known status ({terms.APPROVED}, {terms.DEPRECATED})")
    times = {name: metadata.dtm_us(value, name) for name in (_FROM, _TO)
             if (value := queries.single(query, name, required=False)) is not None}
    contents = []
    for value in queries.listed(query, _CONTENT_TYPE):
        code, _, scheme = value.partition("^^")
        if not code or not scheme:
            raise XdsError(errors.REGISTRY_ERROR, f"{_CONTENT_TYPE}: {value[:60]!r} is not code^^codingScheme")
        contents.append((codes.system_of(scheme), code))
    if terms.APPROVED not in known:
        return None
    return SubmissionSetQuery(patient_ins, submitted_from=times.get(_FROM), submitted_to=times.get(_TO),
                              source_ids=tuple(v.removeprefix("urn:oid:") for v in queries.listed(query, _SOURCE_ID)),
                              content_types=tuple(contents), count=queries.MAX_RESULTS)


def _dtm(microseconds: int) -> str:
    return datetime.fromtimestamp(microseconds // 1_000_000, timezone.utc).strftime("%Y%m%d%H%M%S")


def _sub(parent: etree._Element, local: str, **attributes) -> etree._Element:
    return etree.SubElement(parent, q("rim", local), {k: v for k, v in attributes.items() if v is not None})


def _slot(parent: etree._Element, name: str, value: str) -> None:
    _sub(_sub(_sub(parent, "Slot", name=name), "ValueList"), "Value").text = value


def _derived_id(*parts: str) -> str:
    """A stable urn:uuid for an object the registry derives (a classification, an identifier, an association)."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'segur-loadsim:' + ':'.join(parts))}"


def registry_package(row: tuple, object_ref: bool = False) -> etree._Element:
    """A stored submission set (a :data:`~record_service.registry.SUBMISSION_SET_COLUMNS` row) as a LeafClass
    ``rim:RegistryPackage`` classified as a submission set (or a ``rim:ObjectRef``): submissionTime,
    contentTypeCode when known, uniqueId, sourceId when known, patientId."""
    set_id, unique_id, source_id, submission_us, content_system, content_code, patient_ins = row
    entry_uuid = metadata.entry_uuid(set_id)
    if object_ref:
        return etree.Element(q("rim", "ObjectRef"), {"id": entry_uuid}, nsmap={"rim": NS["rim"]})
    package = etree.Element(q("rim", "RegistryPackage"), {
        "id": entry_uuid, "lid": entry_uuid, "objectType": terms.REGISTRY_PACKAGE, "status": terms.APPROVED},
        nsmap={"rim": NS["rim"]})
    _slot(package, "submissionTime", _dtm(submission_us))
    if content_code:
        content = _sub(package, "Classification", id=_derived_id("content", set_id),
                       classificationScheme=terms.SS_CONTENT_TYPE, classifiedObject=entry_uuid,
                       nodeRepresentation=content_code)
        _slot(content, "codingScheme", codes.scheme_of(content_system or ""))
    _sub(package, "Classification", id=_derived_id("submission-set", set_id), classifiedObject=entry_uuid,
         classificationNode=terms.SUBMISSION_SET)
    for scheme, value, name in ((terms.SS_UNIQUE_ID, unique_id, "XDSSubmissionSet.uniqueId"),
                                (terms.SS_SOURCE_ID, source_id, "XDSSubmissionSet.sourceId"),
                                (terms.SS_PATIENT_ID, metadata.cx(patient_ins), "XDSSubmissionSet.patientId")):
        if value:
            identifier = _sub(package, "ExternalIdentifier", id=_derived_id(name, set_id), registryObject=entry_uuid,
                              identificationScheme=scheme, value=value)
            _sub(_sub(identifier, "Name"), "LocalizedString", value=name)
    return package


def has_member(set_id: str, document_id: str) -> etree._Element:
    """The HasMember association from a submission set to one of its DocumentEntries (SubmissionSetStatus
    Original: the set registered it); its id derived from both, so it is stable."""
    association = etree.Element(q("rim", "Association"), {
        "id": _derived_id("has-member", set_id, document_id), "associationType": terms.HAS_MEMBER,
        "sourceObject": metadata.entry_uuid(set_id), "targetObject": metadata.entry_uuid(document_id)},
        nsmap={"rim": NS["rim"]})
    _slot(association, "SubmissionSetStatus", "Original")
    return association

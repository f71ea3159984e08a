"""ITI-18 Registry Stored Query: the queries the DMP's clients use, answered from the same registry as ITI-67.

A query's parameters (``rim:Slot name="$…"``, values coded as ITI TF-2 3.18.4.1.2.3.5 says: strings
in single quotes, lists in parentheses, codes as ``code^^scheme``) are read into the ITI-67 search
that means the same thing (the mapping IHE MHD gives between ITI-67 and FindDocuments), so both
fronts find exactly the same documents under the same rules (a patient's mask, a blocked
professional, a closed record). Several values in one slot are ORed, a slot repeated is ANDed (only
for the multi-valued codes: eventCodeList, confidentialityCode).

Answered here: FindDocuments, GetDocuments, GetDocumentsAndAssociations, GetAssociations (RPLC
relations between documents, HasMember between a submission set and its documents), FindSubmissionSets
and GetSubmissionSets (:mod:`.submission_sets`). Another query id is ``XDSUnknownStoredQuery``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from lxml import etree

from record_service.searches import Parameters
from record_service.xds import codes, errors, metadata, terms
from record_service.xds.errors import XdsError
from record_service.xds.terms import q

MAX_RESULTS = 1_000  # documents one query may return (XDSTooManyResults above: ask for ObjectRefs, then pages)
_MAX_VALUES = 100    # values in one query, as on the FHIR front
_STATUSES = {terms.APPROVED: "current", terms.DEPRECATED: "superseded"}

# FindDocuments' code parameters -> the ITI-67 token parameter; multi: the slot may repeat (AND)
_CODES = {
    "$XDSDocumentEntryClassCode": ("category", False), "$XDSDocumentEntryTypeCode": ("type", False),
    "$XDSDocumentEntryPracticeSettingCode": ("setting", False),
    "$XDSDocumentEntryHealthcareFacilityTypeCode": ("facility", False),
    "$XDSDocumentEntryFormatCode": ("format", False), "$XDSDocumentEntryEventCodeList": ("event", True),
    "$XDSDocumentEntryConfidentialityCode": ("security-label", True),
}
# FindDocuments' time parameters -> (ITI-67 date parameter, prefix): From is inclusive, To exclusive
_TIMES = {
    "$XDSDocumentEntryCreationTimeFrom": ("creation", "ge"), "$XDSDocumentEntryCreationTimeTo": ("creation", "lt"),
    "$XDSDocumentEntryServiceStartTimeFrom": ("period", "ge"), "$XDSDocumentEntryServiceStartTimeTo": ("period", "lt"),
    "$XDSDocumentEntryServiceStopTimeFrom": ("period", "ge"), "$XDSDocumentEntryServiceStopTimeTo": ("period", "lt"),
}
_FIND_DOCUMENTS_OTHERS = {"$XDSDocumentEntryPatientId", "$XDSDocumentEntryStatus", "$XDSDocumentEntryAuthorPerson",
                          "$XDSDocumentEntryType"}


@dataclass(frozen=True)
class StoredQuery:
    """A parsed ``AdhocQueryRequest``: the query id, its parameters (name -> one list of values per slot),
    and whether only ObjectRefs are asked."""

    query_id: str
    parameters: dict[str, list[list[str]]]
    object_ref: bool


def parse(request: etree._Element) -> StoredQuery:
    """The stored query of an ``query:AdhocQueryRequest``; XdsError for a malformed one."""
    if request.tag != q("query", "AdhocQueryRequest"):
        raise XdsError(errors.REGISTRY_ERROR, f"ITI-18 carries a query:AdhocQueryRequest, not "
                       f"<{etree.QName(request).localname}>")
    option = request.find(q("query", "ResponseOption"))
    return_type = option.get("returnType", "LeafClass") if option is not None else "LeafClass"
    if return_type not in ("LeafClass", "ObjectRef"):
        raise XdsError(errors.REGISTRY_ERROR, f"returnType {return_type[:40]!r}: LeafClass or ObjectRef")
    query = request.find(q("rim", "AdhocQuery"))
    if query is None or not query.get("id"):
        raise XdsError(errors.REGISTRY_ERROR, "the rim:AdhocQuery (with the stored query's id) is missing")
    parameters: dict[str, list[list[str]]] = {}
    count = 0
    for slot in query.findall(q("rim", "Slot")):
        values = [item for value in slot.iter(q("rim", "Value")) for item in _items(value.text or "", slot.get("name"))]
        count += len(values)
        if count > _MAX_VALUES:
            raise XdsError(errors.REGISTRY_ERROR, f"more than {_MAX_VALUES} values in one query")
        parameters.setdefault(slot.get("name") or "", []).append(values)
    return StoredQuery(query.get("id"), parameters, return_type == "ObjectRef")


def _items(text: str, name: str | None) -> list[str]:
    """The values of one ``rim:Value``: a quoted string, a bare number, or a list ``('a','b')``."""
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    items, current, quoted, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "'" and text[i + 1:i + 2] == "'":
                current.append("'")
                i += 1
            elif ch == "'":
                quoted = False
            else:
                current.append(ch)
        elif ch == "'":
            quoted = True
        elif ch == ",":
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    if quoted:
        raise XdsError(errors.REGISTRY_ERROR, f"{name}: an unterminated quoted value in {text[:60]!r}")
    items.append("".join(current).strip())
    return [item for item in items if item]


def single(query: StoredQuery, name: str, required: bool = True) -> str | None:
    """The one value of a single-valued parameter; None when absent and not ``required``. XdsError:
    ``XDSStoredQueryMissingParam`` (absent, required), ``XDSStoredQueryParamNumber`` (several values)."""
    slots = query.parameters.get(name)
    if not slots:
        if required:
            raise XdsError(errors.MISSING_PARAM, f"{name} is required by this stored query")
        return None
    if len(slots) > 1 or len(slots[0]) != 1:
        raise XdsError(errors.PARAM_NUMBER, f"{name} takes exactly one value")
    return slots[0][0]


def listed(query: StoredQuery, name: str) -> list[str]:
    """The values of a list parameter (one slot), empty when absent; ``XDSStoredQueryParamNumber`` for several
    slots."""
    slots = query.parameters.get(name) or []
    if len(slots) > 1:
        raise XdsError(errors.PARAM_NUMBER, f"{name} is given in {len(slots)} slots: one slot, with a list")
    return slots[0] if slots else []


def _token(value: str, name: str) -> str:
    """``code^^scheme`` as the FHIR token ``system|code``."""
    code, _, scheme = value.partition("^^")
    if not code or not scheme:
        raise XdsError(errors.REGISTRY_ERROR, f"{name}: {value[:60]!r} is not code^^codingScheme")
    return f"{codes.system_of(scheme)}|{code}"


def _statuses(query: StoredQuery, name: str) -> str:
    values = listed(query, name)
    if not values:
        raise XdsError(errors.MISSING_PARAM, f"{name} is required by this stored query")
    known = [_STATUSES[v] for v in values if v in _STATUSES]  # an unknown status is ignored (ITI TF-2 3.18.4.1.2.3.6)
    if not known:
        raise XdsError(errors.MISSING_PARAM, f"{name} names no known status ({', '.join(_STATUSES)})")
    return ",".join(known)


def patient_of(query: StoredQuery) -> str | None:
    """The INS a query names ($XDSDocumentEntryPatientId, $XDSSubmissionSetPatientId), if it names one."""
    for name in ("$XDSDocumentEntryPatientId", "$XDSSubmissionSetPatientId"):
        value = single(query, name, required=False)
        if value:
            return metadata.patient_in(value, name)
    return None


def find_documents(query: StoredQuery, patient_ins: str) -> Parameters:
    """The ITI-67 search that means what a FindDocuments query means."""
    pairs = [("patient.identifier", f"urn:oid:1.2.250.1.213.1.4.8|{patient_ins}"),
             ("status", _statuses(query, "$XDSDocumentEntryStatus"))]
    for name in query.parameters:
        if name not in _CODES and name not in _TIMES and name not in _FIND_DOCUMENTS_OTHERS:
            raise XdsError(errors.REGISTRY_ERROR, f"{name[:60]} is not a parameter of FindDocuments")
    for name, (parameter, repeats) in _CODES.items():
        slots = query.parameters.get(name) or []
        if len(slots) > 1 and not repeats:
            raise XdsError(errors.PARAM_NUMBER, f"{name} is given in {len(slots)} slots: one slot, with a list")
        pairs += [(parameter, ",".join(_token(v, name) for v in values)) for values in slots if values]
    for name, (parameter, prefix) in _TIMES.items():
        value = single(query, name, required=False)
        if value is not None:
            pairs.append((parameter, prefix + metadata.fhir_datetime(value, name)))
    author = single(query, "$XDSDocumentEntryAuthorPerson", required=False)
    if author is not None:
        rpps = metadata.rpps_in_pattern(author)
        if rpps is None:
            raise XdsError(errors.REGISTRY_ERROR, "$XDSDocumentEntryAuthorPerson: this registry finds authors by "
                           "their IdNat_PS ('8' + RPPS as the XCN's first component, e.g. '81234567890%')")
        pairs.append(("author.identifier", f"urn:oid:1.2.250.1.71.4.2.1|8{rpps}"))
    pairs.append(("_count", str(MAX_RESULTS)))
    return Parameters(urlencode(pairs).encode())


def get_documents(query: StoredQuery, patient_ins: str) -> Parameters:
    """The ITI-67 search for GetDocuments(AndAssociations): by entryUUID or by uniqueId, any status."""
    uuids = listed(query, "$XDSDocumentEntryEntryUUID")
    unique_ids = listed(query, "$XDSDocumentEntryUniqueId")
    if bool(uuids) == bool(unique_ids):
        raise (XdsError(errors.PARAM_NUMBER, "give $XDSDocumentEntryEntryUUID or $XDSDocumentEntryUniqueId, not both")
               if uuids else XdsError(errors.MISSING_PARAM, "$XDSDocumentEntryEntryUUID or "
                                      "$XDSDocumentEntryUniqueId is required"))
    pairs = [("patient.identifier", f"urn:oid:1.2.250.1.213.1.4.8|{patient_ins}"), ("status", "current,superseded")]
    if uuids:
        ids = [metadata.document_id(u) for u in uuids]
        pairs.append(("_id", ",".join(i for i in ids if i) or "0" * 32))
    else:
        pairs.append(("identifier", ",".join(v for u in unique_ids for v in (f"urn:oid:{u}", u))))
    pairs.append(("_count", str(MAX_RESULTS)))
    return Parameters(urlencode(pairs).encode())


def association_targets(query: StoredQuery) -> list[str]:
    """The ids (32 hex digits) the entryUUIDs of ``$uuid`` name (GetAssociations, GetSubmissionSets), documents
    and submission sets alike; values that are not UUID URNs are left out."""
    uuids = listed(query, "$uuid")
    if not uuids:
        name = terms.STORED_QUERY_NAMES.get(query.query_id, "this stored query")
        raise XdsError(errors.MISSING_PARAM, f"$uuid is required by {name}")
    return list(dict.fromkeys(i for i in (metadata.document_id(u) for u in uuids) if i))

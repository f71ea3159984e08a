"""ITI-65 deposits in, FHIR Bundles out.

:func:`parse_deposit` checks a transaction Bundle (SubmissionSet List + DocumentReferences + Binaries)
down to each field the DMP needs and turns it into a :class:`Deposit`, or raises a 4xx
:class:`~record_service.outcomes.ServiceError` naming the first field at fault. It stores nothing.
``transaction_response`` and ``searchset`` assemble responses, splicing stored JSON bytes rather than
re-encoding.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qsl

import orjson

from record_service import fhir_types
from record_service.codes import (CONTENT_TYPES, MASKED_FROM_PROFESSIONALS, SUBMISSION_SET_SYSTEM,
                                  TYPE_CODES_BY_SYSTEM, VISIBILITY_SYSTEM)
from record_service.outcomes import ServiceError, invalid, required
from segur.identifiers import (FINESS_SYSTEMS, IDNAT_STRUCT_SYSTEM, INS_SYSTEMS, RPPS_SYSTEM, is_valid_finess,
                               is_valid_ins, is_valid_rpps)

_ALLOWED_RESOURCES = ("List", "DocumentReference", "Binary")
_MAX_MASTER_ID = 256
_AUTHOR_KINDS = ("Practitioner", "PractitionerRole", "Organization")
_OTHER_IDNAT_PS = re.compile(r"0[0-9]{9}|3[0-9]{9}/[0-9A-Za-z-]{1,30}")  # "0" + ADELI, "3" + FINESS + "/" + number
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")  # FHIR R4 string: nothing below U+0020 but tab, LF, CR
# a literal reference to a DocumentReference, relative or absolute, version-specific or not (FHIR R4 references)
_DOCUMENT_REFERENCE = re.compile(r"(?:.*/)?DocumentReference/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?")
_RELATIONS = ("replaces", "transforms", "signs", "appends")  # FHIR R4 document-relationship-type


@dataclass(slots=True)
class NewDocument:
    """One document of a deposit, checked; ``resource`` is the DocumentReference JSON to store."""

    id: str
    master_id: str
    type_code: str
    date_us: int
    authors: tuple[str, ...]  # RPPS of the authoring professionals, FINESS of the authoring organisations
    content_type: str
    data: bytes
    sha256: str
    masked: bool
    replaces: str | None  # the replaced document's id, as relatesTo.target.reference gives it
    resource: dict
    entry_index: int
    replaces_master_id: str | None = None  # or its masterIdentifier, as relatesTo.target.identifier gives it


@dataclass(slots=True)
class NewSubmissionSet:
    """The submission set a deposit registers (the ITI-65 SubmissionSet List, the ITI-41 RegistryPackage).

    ``id``: its entryUUID as 32 hex digits, always the registry's own (as a DocumentEntry's is);
    ``unique_id``: its uniqueId (an OID, without ``urn:oid:``), None for one the registry makes
    (``2.25.`` + the entryUUID as an integer); ``source_id``: its sourceId, if given;
    ``submission_us``: its submissionTime (µs since the epoch), None for the time the registry receives it;
    ``content_type``: its contentTypeCode as (FHIR system, code), if given.
    """

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    unique_id: str | None = None
    source_id: str | None = None
    submission_us: int | None = None
    content_type: tuple[str, str] | None = None


@dataclass(slots=True)
class Deposit:
    patient_ins: str
    documents: list[NewDocument]
    entry_count: int
    list_index: int
    binary_index: dict[int, int] = field(default_factory=dict)  # Binary entry -> document position
    patches: dict[int, str] = field(default_factory=dict)  # UpdateDocumentRefs PATCH entry -> the document it supersedes
    submission_set: NewSubmissionSet = field(default_factory=NewSubmissionSet)  # registered with the new documents


def parse_instant(value: object, where: str) -> int:
    """A FHIR ``instant`` (e.g. ``DocumentReference.date``) as microseconds since the epoch; 400 otherwise."""
    return fhir_types.instant(value, where)


def format_instant(microseconds: int) -> str:
    return datetime.fromtimestamp(microseconds / 1_000_000, timezone.utc).isoformat(timespec="milliseconds")


def _object(value: object, where: str) -> dict:
    if value is None:
        raise required(where)
    if not isinstance(value, dict):
        raise invalid(f"{where} must be an object", where)
    return value


def _list(value: object, where: str) -> list:
    if value is None or value == []:
        raise required(where)
    if not isinstance(value, list):
        raise invalid(f"{where} must be an array", where)
    return value


def _text(value: object, where: str) -> str:
    if value is None or value == "":
        raise required(where)
    if not isinstance(value, str):
        raise invalid(f"{where} must be a string", where)
    if _CONTROL.search(value):
        raise invalid(f"{where}: a FHIR string has no control character but tab, CR and LF", where)
    return value


def _ins(system: object, value: object, where: str) -> str:
    """The INS of an identifier (system, value), with the INS checks; 400 naming ``where`` otherwise."""
    system = _text(system, f"{where}.system")
    if system not in INS_SYSTEMS:
        raise invalid(f"{where}.system must be an INS system ({', '.join(sorted(INS_SYSTEMS))}),"
                      f" not {system[:80]!r}", f"{where}.system", reason="invalid-ins")
    value = _text(value, f"{where}.value")
    if not is_valid_ins(value):
        raise invalid(f"{where}.value is not a valid INS (13 characters + 2-digit key): {value[:40]!r}",
                      f"{where}.value", reason="invalid-ins")
    return value


def _conditional_identifier(reference: str, where: str, kinds: tuple[str, ...], reason: str) -> tuple[str, str]:
    """(system, value) of a conditional reference ``[base/]Kind?identifier=SYSTEM|VALUE`` (URL-encoded or not)
    to one of ``kinds``: 422 for other criteria (this service finds people by identifier only), 400 without a
    system."""
    path, _, query = reference.partition("?")
    criteria = parse_qsl(query, keep_blank_values=True)
    if not path.rstrip("/").endswith(kinds) or [name for name, _ in criteria] != ["identifier"]:
        raise ServiceError(422, "not-supported", f"{where} {reference[:100]!r}: this service finds them by identifier"
                           f" only: {'|'.join(kinds)}?identifier=SYSTEM|VALUE", where, reason=reason)
    system, bar, value = criteria[0][1].partition("|")
    if not bar or not system:
        raise invalid(f"{where}: the identifier of a conditional reference needs its system (SYSTEM|VALUE)", where,
                      reason=reason)
    return system, value


def _conditional_ins(reference: str, where: str) -> str:
    """The INS of a conditional reference ``[base/]Patient?identifier=SYSTEM|INS``."""
    system, value = _conditional_identifier(reference, where, ("Patient",), "invalid-ins")
    return _ins(system, value, f"{where}(identifier)")


def patient_identifier(subject: object, where: str, contained: dict[str, dict] | None = None) -> str:
    """The INS a ``subject`` names, in every form IHE MHD allows: ``identifier`` (INS-NIR or its test system),
    a conditional reference ``Patient?identifier=SYSTEM|INS``, a contained Patient (``#id``), or several of
    them at once, which must agree. A literal reference (``Patient/123``) names a resource this service does
    not hold: 422."""
    subject = _object(subject, where)
    found: list[str] = []
    if subject.get("identifier") is not None:
        identifier = _object(subject["identifier"], f"{where}.identifier")
        found.append(_ins(identifier.get("system"), identifier.get("value"), f"{where}.identifier"))
    reference = subject.get("reference")
    if reference is not None:
        reference = _text(reference, f"{where}.reference")
        if reference.startswith("#"):
            found.append(_contained_patient(contained or {}, reference, f"{where}.reference"))
        elif "?" in reference:
            found.append(_conditional_ins(reference, f"{where}.reference"))
        else:
            raise ServiceError(422, "not-supported", f"{where}.reference {reference[:80]!r} names a Patient resource "
                               "this service does not hold: give the INS (identifier, or Patient?identifier=SYSTEM|INS)",
                               f"{where}.reference", reason="invalid-ins")
    if not found:
        raise required(f"{where}.identifier")
    if len(set(found)) > 1:
        raise invalid(f"{where}: its identifier and its reference name different patients", where,
                      reason="invalid-ins")
    return found[0]


def _contained_patient(contained: dict[str, dict], reference: str, where: str) -> str:
    patient = contained.get(reference[1:])
    if patient is None or patient.get("resourceType") != "Patient":
        raise invalid(f"{where} {reference[:60]!r} names no contained Patient", where)
    for i, identifier in enumerate(_optional_list(patient.get("identifier"), f"{where}(contained).identifier")):
        identifier = _object(identifier, f"{where}(contained).identifier[{i}]")
        _optional_text(identifier.get("system"), f"{where}(contained).identifier[{i}].system")
        if identifier.get("system") in INS_SYSTEMS:
            return _ins(identifier.get("system"), identifier.get("value"), f"{where}(contained).identifier[{i}]")
    raise invalid(f"{where}: the contained Patient has no INS identifier", where, reason="invalid-ins")


def _contained(resource: dict, where: str) -> dict[str, dict]:
    """The contained resources of ``resource`` by their local id (``#id`` references name them)."""
    contained = resource.get("contained")
    if contained is None:
        return {}
    found: dict[str, dict] = {}
    for i, item in enumerate(_list(contained, f"{where}.contained")):
        item = _object(item, f"{where}.contained[{i}]")
        local_id = _text(item.get("id"), f"{where}.contained[{i}].id")
        if local_id in found:
            raise invalid(f"{where}.contained[{i}].id {local_id[:40]!r} is used twice", f"{where}.contained[{i}].id")
        found[local_id] = item
    return found


def professional_rpps(identifier: dict, where: str) -> str | None:
    """The RPPS inside an IdNat_PS identifier (``8`` + RPPS, or the bare 11-digit RPPS); None for another system
    or another kind of IdNat_PS (``0`` + ADELI, ``3`` + FINESS/number: no token names such a professional);
    400 if malformed."""
    if identifier.get("system") != RPPS_SYSTEM:
        return None
    value = _text(identifier.get("value"), f"{where}.value")
    if _OTHER_IDNAT_PS.fullmatch(value):
        return None
    rpps = value[1:] if len(value) == 12 and value.startswith("8") else value
    if not is_valid_rpps(rpps):
        raise invalid(f"{where}.value is not a valid national professional id ('8' + RPPS, '0' + ADELI, "
                      f"'3' + FINESS/number): {value[:40]!r}", f"{where}.value")
    return rpps


def _type_code(document: dict, where: str) -> str:
    codings = _list(_object(document.get("type"), f"{where}.type").get("coding"), f"{where}.type.coding")
    for i, coding in enumerate(codings):
        coding = _object(coding, f"{where}.type.coding[{i}]")
        system = coding.get("system")
        known = TYPE_CODES_BY_SYSTEM.get(system) if isinstance(system, str) else None  # a list or object names none
        if known is None:
            continue
        code = _text(coding.get("code"), f"{where}.type.coding[{i}].code")
        if code not in known:
            raise ServiceError(400, "code-invalid", f"{where}.type.coding[{i}].code {code[:40]!r} is not a "
                               f"known document type of {coding['system']}", f"{where}.type.coding[{i}].code",
                               reason="unknown-type")
        return code
    raise ServiceError(400, "code-invalid", f"{where}.type has no coding in a known system "
                       f"({', '.join(TYPE_CODES_BY_SYSTEM)})", f"{where}.type", reason="unknown-type")


def _organisation_finess(identifier: dict, where: str) -> str | None:
    """The FINESS of an organisation identifier (FINESS system, or IdNat_Struct ``1`` + FINESS), else None."""
    system = identifier.get("system")
    _optional_text(system, f"{where}.system")
    if system not in FINESS_SYSTEMS and system != IDNAT_STRUCT_SYSTEM:
        return None
    value = _text(identifier.get("value"), f"{where}.value")
    if system == IDNAT_STRUCT_SYSTEM:
        if not value.startswith("1"):
            return None  # an IdNat_Struct of another kind (SIRET, ADELI cabinet...): not a FINESS
        value = value[1:]
    if not is_valid_finess(value):
        raise invalid(f"{where}.value is not a valid FINESS (9 digits, Luhn key): {value[:40]!r}", f"{where}.value")
    return value


def _identified(identifier: object, where: str) -> list[str]:
    """The RPPS or FINESS an identifier carries (none for another system)."""
    identifier = _object(identifier, where)
    found = professional_rpps(identifier, where) or _organisation_finess(identifier, where)
    return [found] if found else []


def _reference_identities(reference: object, where: str, contained: dict[str, dict], depth: int = 0) -> list[str]:
    """RPPS / FINESS named by a Reference: its ``identifier``, or the contained resource ``#id`` it points to.

    A literal reference to a resource held elsewhere (``Practitioner/123``) is kept as given but names
    nobody here; a ``#id`` that resolves to nothing is refused (FHIR: a contained reference must resolve).
    """
    reference = _object(reference, where)
    found: list[str] = []
    if reference.get("identifier") is not None:
        found += _identified(reference["identifier"], f"{where}.identifier")
    local = reference.get("reference")
    if isinstance(local, str) and local.startswith("#") and depth < 2:
        target = contained.get(local[1:])
        if target is None or target.get("resourceType") not in _AUTHOR_KINDS:
            raise invalid(f"{where}.reference {local[:60]!r} names no contained {', '.join(_AUTHOR_KINDS)}",
                          f"{where}.reference")
        found += _resource_identities(target, f"{where}.reference(contained)", contained, depth + 1)
    elif isinstance(local, str) and "?" in local:  # a conditional reference: Practitioner?identifier=SYSTEM|VALUE
        found += _conditional_identities(local, f"{where}.reference")
    elif local is not None:
        _text(local, f"{where}.reference")
    return found


def _conditional_identities(reference: str, where: str) -> list[str]:
    """RPPS / FINESS of a conditional reference ``(Practitioner|PractitionerRole|Organization)?identifier=...``."""
    system, value = _conditional_identifier(reference, where, _AUTHOR_KINDS, "not-supported")
    return _identified({"system": system, "value": value}, f"{where}(identifier)")


def _resource_identities(resource: dict, where: str, contained: dict[str, dict], depth: int) -> list[str]:
    """RPPS / FINESS of a Practitioner, an Organization, or a PractitionerRole (its own identifiers, its
    practitioner's and its organization's)."""
    found: list[str] = []
    for i, identifier in enumerate(_optional_list(resource.get("identifier"), f"{where}.identifier")):
        found += _identified(identifier, f"{where}.identifier[{i}]")
    if resource.get("resourceType") == "PractitionerRole":
        for part in ("practitioner", "organization"):
            if resource.get(part) is not None:
                found += _reference_identities(resource[part], f"{where}.{part}", contained, depth)
    return found


def _authors(document: dict, where: str, contained: dict[str, dict]) -> tuple[str, ...]:
    """RPPS of the authoring professionals and FINESS of the authoring organisations, from identifiers and
    from contained Practitioner / PractitionerRole / Organization resources alike."""
    authors = _list(document.get("author"), f"{where}.author")
    found: list[str] = []
    for i, author in enumerate(authors):
        author = _object(author, f"{where}.author[{i}]")
        if author.get("identifier") is None and "reference" not in author and "display" not in author:
            raise required(f"{where}.author[{i}].identifier")
        for identity in _reference_identities(author, f"{where}.author[{i}]", contained):
            if identity not in found:
                found.append(identity)
    return tuple(found)


def _masked(document: dict, where: str) -> bool:
    """Whether the document is deposited masked from professionals (MASQUE_PS); its securityLabel is checked by
    :func:`_check_shapes` first."""
    return any(coding.get("system") == VISIBILITY_SYSTEM and coding.get("code") == MASKED_FROM_PROFESSIONALS
               for label in document.get("securityLabel") or [] for coding in label.get("coding") or [])


def _optional_text(value: object, where: str) -> None:
    if value is not None:
        _text(value, where)


def _coding(value: object, where: str) -> None:
    """A FHIR Coding: an object whose system, version, code and display are strings when present."""
    coding = _object(value, where)
    for key in ("system", "version", "code", "display"):
        _optional_text(coding.get(key), f"{where}.{key}")


def _concept(value: object, where: str) -> None:
    """A FHIR CodeableConcept: an object with an array of Codings and a text."""
    concept = _object(value, where)
    for i, coding in enumerate(_optional_list(concept.get("coding"), f"{where}.coding")):
        _coding(coding, f"{where}.coding[{i}]")
    _optional_text(concept.get("text"), f"{where}.text")


def _identifier(value: object, where: str) -> None:
    """A FHIR Identifier: an object whose system and value are strings when present."""
    identifier = _object(value, where)
    for key in ("system", "value", "use"):
        _optional_text(identifier.get(key), f"{where}.{key}")


def _optional_list(value: object, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise invalid(f"{where} must be a non-empty array", where)
    return value


# the elements of a DocumentReference that the rules and the search read, with their FHIR datatype
_SHAPES: tuple[tuple[tuple[str, ...], bool, object], ...] = (
    (("securityLabel",), True, _concept), (("category",), True, _concept), (("identifier",), True, _identifier),
    (("context", "facilityType"), False, _concept), (("context", "practiceSetting"), False, _concept),
    (("context", "event"), True, _concept),
)


# FHIR R4 elements of the resources a deposit carries (resourcelist: List, DocumentReference, Binary); a
# primitive's extensions come as "_name" (json.html#primitive)
_ELEMENTS = {
    "List": frozenset({"resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
                       "modifierExtension", "identifier", "status", "mode", "title", "code", "subject", "encounter",
                       "date", "source", "orderedBy", "note", "entry", "emptyReason"}),
    "DocumentReference": frozenset({"resourceType", "id", "meta", "implicitRules", "language", "text", "contained",
                                    "extension", "modifierExtension", "masterIdentifier", "identifier", "status",
                                    "docStatus", "type", "category", "subject", "date", "author", "authenticator",
                                    "custodian", "relatesTo", "description", "securityLabel", "content", "context"}),
    "Binary": frozenset({"resourceType", "id", "meta", "implicitRules", "language", "contentType", "securityContext",
                         "data"}),
}
_PRIMITIVES = {"id": str, "implicitRules": str, "language": str, "description": str, "docStatus": str,
               "title": str, "mode": str}


def check_resource_json(resource: dict, where: str) -> None:
    """FHIR JSON rules a resource of a deposit must keep (json.html): no element this service does not know of
    its type, no null, no empty object, array or string anywhere, simple elements of their JSON type; and no
    ``modifierExtension`` (FHIR: one that is not understood forbids processing the resource: 422)."""
    known = _ELEMENTS[resource["resourceType"]]
    for key, value in resource.items():
        at = f"{where}.{key}"
        if key not in known and not (key.startswith("_") and key[1:] in known):
            raise invalid(f"{at}: {resource['resourceType']} has no element {key[:40]!r} (FHIR R4)", at)
        if key == "modifierExtension":
            raise ServiceError(422, "not-supported", f"{at}: a modifier extension this service does not understand"
                               " forbids processing the resource (FHIR R4 extensibility)", at, reason="not-supported")
        if key in _PRIMITIVES and not isinstance(value, _PRIMITIVES[key]):
            raise invalid(f"{at} must be a string", at)
        if key != "data":
            _check_json_values(value, at)


def _check_json_values(value: object, where: str) -> None:
    if value is None or value == "" or value == [] or value == {}:
        raise invalid(f"{where}: FHIR JSON has no null, empty string, empty array or empty object", where)
    if isinstance(value, dict):
        for key, item in value.items():
            _check_json_values(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_values(item, f"{where}[{i}]")


def _check_shapes(document: dict, where: str) -> None:
    """Each element the rules or the search read has its FHIR datatype (400 naming it otherwise), so that
    nothing downstream meets a string where an object belongs."""
    for path, repeated, check in _SHAPES:
        value, at = document, where
        for i, key in enumerate(path):
            at = f"{at}.{key}"
            value = value.get(key)
            if value is None:
                break
            if i < len(path) - 1:
                value = _object(value, at)
        if value is None:
            continue
        for j, item in enumerate(_optional_list(value, at) if repeated else [value]):
            check(item, f"{at}[{j}]" if repeated else at)
    content = document.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict) and content[0].get("format") is not None:
        _coding(content[0]["format"], f"{where}.content[0].format")


def _replaces(document: dict, where: str) -> tuple[str | None, str | None]:
    """(id, masterIdentifier) of the document this one replaces (one of the two given), or (None, None).

    The target is ``relatesTo.target.reference`` (``DocumentReference/<id>``, relative or absolute) or, as
    MHD 4.2 and the DMP guide allow, ``relatesTo.target.identifier`` (the replaced document's
    masterIdentifier). Only ``replaces`` is supported: ``transforms``, ``signs`` and ``appends`` are 422.
    """
    relations = document.get("relatesTo")
    if relations is None:
        return None, None
    relations = _list(relations, f"{where}.relatesTo")
    found: tuple[str | None, str | None] | None = None
    for i, relation in enumerate(relations):
        at = f"{where}.relatesTo[{i}]"
        relation = _object(relation, at)
        code = _text(relation.get("code"), f"{at}.code")
        if code not in _RELATIONS:
            raise invalid(f"{at}.code {code[:20]!r} is not a document relationship ({', '.join(_RELATIONS)})",
                          f"{at}.code")
        if code != "replaces":
            raise ServiceError(422, "not-supported", f"{at}.code {code[:20]!r} is not supported: this service "
                               "implements 'replaces' only (not transforms, signs, appends)", f"{at}.code",
                               reason="not-supported")
        target = _object(relation.get("target"), f"{at}.target")
        if found is not None:
            raise invalid("a document replaces at most one other", f"{where}.relatesTo")
        if target.get("reference") is not None:
            reference = _text(target["reference"], f"{at}.target.reference")
            match = _DOCUMENT_REFERENCE.fullmatch(reference)
            if match is None:
                raise invalid(f"{at}.target.reference must be [base/]DocumentReference/<id>[/_history/<version>]",
                              f"{at}.target.reference")
            found = (match["id"], None)
        elif target.get("identifier") is not None:
            identifier = _object(target["identifier"], f"{at}.target.identifier")
            found = (None, _text(identifier.get("value"), f"{at}.target.identifier.value"))
        else:
            raise required(f"{at}.target.reference")
    return found or (None, None)


def _patch_target(entry: dict, where: str) -> str:
    """The document an ``UpdateDocumentRefs`` PATCH entry (MHD 4.2) marks superseded; 422 for any other PATCH.

    The one change supported is the one a replacement makes: FHIRPath Patch (a ``Parameters`` resource)
    replacing ``DocumentReference.status`` by ``superseded``. A patient's or an author's other changes go
    through the service's own operations ($mask, $unmask, DELETE).
    """
    url = _text(entry["request"].get("url"), f"{where}.request.url")
    kind, _, local_id = url.partition("?")[0].rstrip("/").rpartition("/")
    if not kind.endswith("DocumentReference") or not local_id:
        raise ServiceError(422, "not-supported", f"{where}.request.url {url[:80]!r}: a PATCH in a deposit may only "
                           "update a DocumentReference/<id>", f"{where}.request.url", reason="not-supported")
    resource = entry.get("resource")
    if not isinstance(resource, dict) or resource.get("resourceType") != "Parameters":
        raise ServiceError(422, "not-supported", f"{where}.resource: a PATCH entry must carry a FHIRPath Patch "
                           "(a Parameters resource); JSON Patch is not supported", f"{where}.resource",
                           reason="not-supported")
    operations = _list(resource.get("parameter"), f"{where}.resource.parameter")
    for i, operation in enumerate(operations):
        at = f"{where}.resource.parameter[{i}]"
        operation = _object(operation, at)
        parts: dict[str, dict] = {}
        for j, part in enumerate(_optional_list(operation.get("part"), f"{at}.part")):
            part = _object(part, f"{at}.part[{j}]")
            name = part.get("name")
            if isinstance(name, str):
                parts[name] = part
        change = (operation.get("name"), parts.get("type", {}).get("valueCode"),
                  parts.get("path", {}).get("valueString"),
                  parts.get("value", {}).get("valueCode") or parts.get("value", {}).get("valueString"))
        if change not in (("operation", "replace", "DocumentReference.status", "superseded"),
                          ("operation", "replace", "status", "superseded")):
            raise ServiceError(422, "not-supported", f"{at}: the only PATCH a deposit may carry replaces "
                               "DocumentReference.status by 'superseded' (MHD UpdateDocumentRefs)", at,
                               reason="not-supported")
    return local_id


def _attachment_data(attachment: dict, at: str, entries: list, binaries: list[int], by_full_url: dict[str, int],
                     used_binaries: dict[int, int], max_bytes: int) -> tuple[bytes, int | None, str]:
    """(bytes, Binary entry or None, the Binary's contentType or "") of a document's attachment: the Binary
    its ``url`` names in the Bundle (by fullUrl, or ``Binary/<id>`` relative to the Bundle's base), or its
    inline ``data``."""
    if attachment.get("data") is not None and attachment.get("url") is None:
        return fhir_types.base64_binary(attachment["data"], f"{at}.data", max_bytes), None, ""
    url = _text(attachment.get("url"), f"{at}.url")
    binary_index = _resolve(url, by_full_url)
    if binary_index is None or binary_index not in binaries:
        raise invalid(f"{at}.url {url[:80]!r} does not name a Binary entry of the Bundle", f"{at}.url")
    if binary_index in used_binaries:
        raise invalid(f"{at}.url: the Binary is already used by another document", f"{at}.url")
    binary = entries[binary_index]["resource"]
    binary_where = f"Bundle.entry[{binary_index}].resource"
    binary_type = _text(binary.get("contentType"), f"{binary_where}.contentType")
    fhir_types.media_type(binary_type, f"{binary_where}.contentType")
    data = fhir_types.base64_binary(binary.get("data"), f"{binary_where}.data", max_bytes)
    if attachment.get("data") is not None and \
            fhir_types.base64_binary(attachment["data"], f"{at}.data", max_bytes) != data:
        raise invalid(f"{at}.data differs from the Binary its url names", f"{at}.data")
    return data, binary_index, binary_type


def _resolve(url: str, by_full_url: dict[str, int]) -> int | None:
    """The entry a reference names inside a Bundle (FHIR R4 bundle.html#references): its exact fullUrl, or a
    relative ``Type/id`` that an entry's absolute fullUrl ends with."""
    found = by_full_url.get(url)
    if found is None and "/" in url and ":" not in url:
        matches = [i for full, i in by_full_url.items() if full.endswith("/" + url)]
        found = matches[0] if len(matches) == 1 else None
    return found


def parse_deposit(bundle: object, max_document_bytes: int, max_documents: int) -> Deposit:
    """Check an ITI-65 Bundle and return what to store; raises a 4xx ServiceError naming the fault.

    At most ``max_documents`` DocumentReferences (413 above, counted before any of them is checked), each
    at most ``max_document_bytes`` (413).
    """
    if not isinstance(bundle, dict):
        raise invalid("the body must be a FHIR resource (a JSON object)", "Bundle", reason="wrong-resource")
    if bundle.get("resourceType") != "Bundle":
        raise invalid(f"expected a Bundle, got resourceType {str(bundle.get('resourceType'))[:40]!r}",
                      "resourceType", reason="wrong-resource")
    if bundle.get("type") != "transaction":
        raise invalid(f"Bundle.type must be 'transaction', not {str(bundle.get('type'))[:40]!r}", "Bundle.type",
                      reason="wrong-resource")
    entries = _list(bundle.get("entry"), "Bundle.entry")
    if len(entries) > 2 * max_documents + 1 + max_documents:  # List + (DocumentReference, Binary, PATCH) each
        raise _too_many(max_documents, f"{len(entries)} entries")

    by_full_url: dict[str, int] = {}
    lists: list[int] = []
    documents: list[int] = []
    binaries: list[int] = []
    patches: dict[int, str] = {}
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        entry = _object(entry, where)
        request = entry.get("request")
        if isinstance(request, dict) and request.get("method") == "PATCH":
            patches[i] = _patch_target(entry, where)
            continue
        resource = _object(entry.get("resource"), f"{where}.resource")
        kind = resource.get("resourceType")
        if kind not in _ALLOWED_RESOURCES:
            raise invalid(f"{where}.resource.resourceType {str(kind)[:40]!r} is not allowed in a deposit "
                          f"(only {', '.join(_ALLOWED_RESOURCES)}, and Parameters in an UpdateDocumentRefs PATCH)",
                          f"{where}.resource.resourceType", reason="wrong-resource")
        if request is not None and (not isinstance(request, dict) or request.get("method") != "POST"):
            raise invalid(f"{where}.request.method must be POST (or PATCH for UpdateDocumentRefs)",
                          f"{where}.request.method")
        check_resource_json(resource, f"{where}.resource")
        full_url = entry.get("fullUrl")
        if full_url is not None:
            if not isinstance(full_url, str) or full_url in by_full_url:
                raise invalid(f"{where}.fullUrl must be a unique string", f"{where}.fullUrl")
            by_full_url[full_url] = i
        {"List": lists, "DocumentReference": documents, "Binary": binaries}[kind].append(i)

    if len(documents) > max_documents:
        raise _too_many(max_documents, f"{len(documents)} DocumentReferences")
    if len(lists) != 1:
        raise invalid(f"a deposit has exactly one SubmissionSet List, found {len(lists)}", "Bundle.entry",
                      reason="wrong-resource")
    if not documents:
        raise required("Bundle.entry (DocumentReference)")
    submission = entries[lists[0]]["resource"]
    list_where = f"Bundle.entry[{lists[0]}].resource"
    codings = _list(_object(submission.get("code"), f"{list_where}.code").get("coding"), f"{list_where}.code.coding")
    if not any(isinstance(c, dict) and c.get("system") == SUBMISSION_SET_SYSTEM and c.get("code") == "submissionset"
               for c in codings):
        raise invalid(f"{list_where}.code must be {SUBMISSION_SET_SYSTEM}#submissionset", f"{list_where}.code")
    patient = patient_identifier(submission.get("subject"), f"{list_where}.subject",
                                 _contained(submission, list_where))
    submission_set = _submission_set(submission, list_where)

    parsed: list[NewDocument] = []
    used_binaries: dict[int, int] = {}
    master_ids: set[str] = set()
    for i in documents:
        where = f"Bundle.entry[{i}].resource"
        resource = entries[i]["resource"]
        contained = _contained(resource, where)
        master = _object(resource.get("masterIdentifier"), f"{where}.masterIdentifier")
        master_id = _text(master.get("value"), f"{where}.masterIdentifier.value")
        if len(master_id) > _MAX_MASTER_ID or not master_id.isprintable():
            raise invalid(f"{where}.masterIdentifier.value must be printable and at most {_MAX_MASTER_ID} characters",
                          f"{where}.masterIdentifier.value")
        if master_id in master_ids:
            raise invalid(f"masterIdentifier {master_id[:60]!r} appears twice in the Bundle",
                          f"{where}.masterIdentifier.value")
        master_ids.add(master_id)
        status = _text(resource.get("status"), f"{where}.status")
        if status != "current":
            raise invalid(f"{where}.status of a deposited document must be 'current', not {status[:20]!r}",
                          f"{where}.status")
        _check_shapes(resource, where)
        type_code = _type_code(resource, where)
        subject = patient_identifier(resource.get("subject"), f"{where}.subject", contained)
        if subject != patient:
            raise invalid("the DocumentReference and the SubmissionSet name different patients",
                          f"{where}.subject.identifier.value")
        date_us = parse_instant(resource.get("date"), f"{where}.date")
        authors = _authors(resource, where, contained)
        _check_context(resource, where)
        contents = _list(resource.get("content"), f"{where}.content")
        if len(contents) != 1:
            raise invalid("a DocumentReference has exactly one content", f"{where}.content")
        attachment = _object(_object(contents[0], f"{where}.content[0]").get("attachment"),
                             f"{where}.content[0].attachment")
        at = f"{where}.content[0].attachment"
        content_type = _text(attachment.get("contentType"), f"{at}.contentType")
        base_type = fhir_types.media_type(content_type, f"{at}.contentType")
        if base_type not in CONTENT_TYPES:
            raise ServiceError(415, "not-supported", f"{at}.contentType {content_type[:60]!r} is not an accepted "
                               f"document format ({', '.join(sorted(CONTENT_TYPES))})", f"{at}.contentType",
                               reason="wrong-content-type")
        data, binary_index, binary_type = _attachment_data(attachment, at, entries, binaries, by_full_url,
                                                           used_binaries, max_document_bytes)
        if binary_type and fhir_types.media_type(binary_type, "Binary.contentType") != base_type:
            raise ServiceError(415, "not-supported", f"Bundle.entry[{binary_index}].resource.contentType "
                               f"{binary_type[:60]!r} differs from the document's declared {content_type!r}",
                               f"Bundle.entry[{binary_index}].resource.contentType", reason="wrong-content-type")
        _check_size_and_hash(attachment, at, data)
        if attachment.get("creation") is not None:
            fhir_types.date_time(attachment["creation"], f"{at}.creation")
        replaces, replaces_master = _replaces(resource, where)
        if binary_index is not None:
            used_binaries[binary_index] = len(parsed)
        parsed.append(NewDocument(
            id=uuid.uuid4().hex, master_id=master_id, type_code=type_code, date_us=date_us, authors=authors,
            content_type=content_type, data=data, sha256=hashlib.sha256(data).hexdigest(),
            masked=_masked(resource, where), replaces=replaces, resource=resource, entry_index=i,
            replaces_master_id=replaces_master))

    unused = [i for i in binaries if i not in used_binaries]
    if unused:
        raise invalid(f"Bundle.entry[{unused[0]}] is a Binary no DocumentReference points to",
                      f"Bundle.entry[{unused[0]}]")
    _check_patches(patches, parsed)
    return Deposit(patient_ins=patient, documents=parsed, entry_count=len(entries), list_index=lists[0],
                   binary_index=used_binaries, patches=patches, submission_set=submission_set)


# the IHE MHD SubmissionSet List's extensions for XDS's sourceId and contentTypeCode
SOURCE_ID_EXTENSION = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"
DESIGNATION_TYPE_EXTENSION = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType"


def _submission_set(submission: dict, where: str) -> NewSubmissionSet:
    """The submission set a SubmissionSet List describes, as IHE MHD maps it to XDS: uniqueId the
    ``identifier`` whose ``use`` is ``usual`` (else the first ``urn:oid:`` one; a ``urn:uuid:`` one is an
    entryUUID, not kept), sourceId the ``ihe-sourceId`` extension, contentTypeCode the ``ihe-designationType``
    one, submissionTime ``date``. 400 naming the element for a malformed one."""
    found = NewSubmissionSet()
    identifiers = []
    for i, identifier in enumerate(_optional_list(submission.get("identifier"), f"{where}.identifier")):
        _identifier(identifier, f"{where}.identifier[{i}]")
        value = identifier.get("value")
        if value is not None and not value.startswith("urn:uuid:"):
            identifiers.append((identifier.get("use") != "usual", not value.startswith("urn:oid:"), i, value))
    if identifiers:
        *_, i, value = min(identifiers)
        found.unique_id = _submission_set_id(value, f"{where}.identifier[{i}].value")
    for i, extension in enumerate(_optional_list(submission.get("extension"), f"{where}.extension")):
        at = f"{where}.extension[{i}]"
        extension = _object(extension, at)
        if extension.get("url") == SOURCE_ID_EXTENSION:
            identifier = _object(extension.get("valueIdentifier"), f"{at}.valueIdentifier")
            _identifier(identifier, f"{at}.valueIdentifier")
            found.source_id = _submission_set_id(_text(identifier.get("value"), f"{at}.valueIdentifier.value"),
                                                 f"{at}.valueIdentifier.value")
        elif extension.get("url") == DESIGNATION_TYPE_EXTENSION:
            concept = _object(extension.get("valueCodeableConcept"), f"{at}.valueCodeableConcept")
            _concept(concept, f"{at}.valueCodeableConcept")
            codings = [c for c in concept.get("coding") or [] if c.get("system") and c.get("code")]
            if codings:
                found.content_type = (codings[0]["system"], codings[0]["code"])
    if submission.get("date") is not None:
        found.submission_us = fhir_types.date_time(submission["date"], f"{where}.date")
    return found


def _submission_set_id(value: str, where: str) -> str:
    """A submission set's uniqueId or sourceId (an OID, ``urn:oid:`` removed): printable, at most 256 characters."""
    value = value.removeprefix("urn:oid:")
    if not value or len(value) > _MAX_MASTER_ID or not value.isprintable():
        raise invalid(f"{where} must be printable and at most {_MAX_MASTER_ID} characters", where)
    return value


def _too_many(max_documents: int, found: str) -> ServiceError:
    return ServiceError(413, "too-costly", f"a deposit carries at most {max_documents} documents ({found} sent): "
                        "split it into several submission sets", "Bundle.entry", reason="too-many-documents")


def _check_size_and_hash(attachment: dict, at: str, data: bytes) -> None:
    """``size`` (unsignedInt) and ``hash`` (base64 SHA-1) must match the bytes when given (422 if they don't)."""
    if attachment.get("size") is not None:
        declared = fhir_types.unsigned_int(attachment["size"], f"{at}.size")
        if declared != len(data):
            raise ServiceError(422, "invalid", f"{at}.size says {declared} bytes, the document has {len(data)}",
                               f"{at}.size", reason="size-mismatch")
    if attachment.get("hash") is not None:
        declared_hash = fhir_types.base64_binary(attachment["hash"], f"{at}.hash")
        if declared_hash != hashlib.sha1(data).digest():
            raise ServiceError(422, "invalid", f"{at}.hash (base64 SHA-1) does not match the document's bytes",
                               f"{at}.hash", reason="hash-mismatch")


def _check_context(resource: dict, where: str) -> None:
    """``context.period``: dateTimes, start not after end."""
    context = resource.get("context")
    if context is None:
        return
    period = _object(context, f"{where}.context").get("period")
    if period is None:
        return
    period = _object(period, f"{where}.context.period")
    bounds = [fhir_types.date_time(period[part], f"{where}.context.period.{part}")
              for part in ("start", "end") if period.get(part) is not None]
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        raise invalid(f"{where}.context.period.start is after its end", f"{where}.context.period")


def _check_patches(patches: dict[int, str], documents: list[NewDocument]) -> None:
    """Each UpdateDocumentRefs PATCH must supersede a document that this Bundle's own documents replace
    (checked here for replacements by id; the registry checks again once identifiers are resolved)."""
    by_identifier = any(doc.replaces_master_id for doc in documents)
    replaced = {doc.replaces for doc in documents if doc.replaces}
    for entry, target in patches.items():
        if target not in replaced and not by_identifier:
            raise unmatched_patch(entry)


def unmatched_patch(entry: int) -> ServiceError:
    return ServiceError(422, "not-supported", f"Bundle.entry[{entry}]: a PATCH may only mark superseded a document "
                        "that a DocumentReference of the same Bundle replaces (relatesTo)",
                        f"Bundle.entry[{entry}].request.url", reason="not-supported")


def stored_resource(document: NewDocument, now_us: int) -> bytes:
    """The DocumentReference as it will be served: server id, version 1, attachment pointing at our Binary."""
    resource = dict(document.resource)
    resource["id"] = document.id
    resource["meta"] = {"versionId": "1", "lastUpdated": format_instant(now_us)}
    content = dict(resource["content"][0])
    attachment = dict(content["attachment"])
    attachment["url"] = f"Binary/{document.id}"
    attachment["size"] = len(document.data)
    if attachment.get("hash") is None:  # as an XDS repository adds hash and size (ITI TF-2 3.41.4.1.3.2)
        attachment["hash"] = base64.b64encode(hashlib.sha1(document.data).digest()).decode()
    attachment.pop("data", None)  # inline bytes are served by the Binary, not inside every search answer
    content["attachment"] = attachment
    resource["content"] = [content]
    return orjson.dumps(resource)


def transaction_response(deposit: Deposit, outcomes: list[tuple[str, bool]]) -> bytes:
    """The ITI-65 answer: one response entry per request entry, in order, with locations.

    ``outcomes`` gives, per document, its id and whether it was created (False: it already existed).
    """
    entries: list[dict] = [{"response": {"status": "201 Created"}} for _ in range(deposit.entry_count)]
    for position, document in enumerate(deposit.documents):
        doc_id, created = outcomes[position]
        status = "201 Created" if created else "200 OK"
        entries[document.entry_index] = {"response": {"status": status,
                                                      "location": f"DocumentReference/{doc_id}/_history/1"}}
    for binary_entry, position in deposit.binary_index.items():
        doc_id, created = outcomes[position]
        entries[binary_entry] = {"response": {"status": "201 Created" if created else "200 OK",
                                              "location": f"Binary/{doc_id}"}}
    for patch_entry, target in deposit.patches.items():
        entries[patch_entry] = {"response": {"status": "200 OK", "location": f"DocumentReference/{target}"}}
    return orjson.dumps({"resourceType": "Bundle", "id": uuid.uuid4().hex, "type": "transaction-response",
                         "entry": entries})


def searchset(resources: list[bytes], kind: str, self_link: str, next_link: str | None,
              total: int | None = None) -> bytes:
    """A searchset Bundle around already-encoded resources (each given with its id inside); ``total`` is
    ``Bundle.total`` when the client asked for it (``_total``, ``_summary=count``). No ``entry`` when
    nothing matched (FHIR JSON has no empty arrays)."""
    links = [b'{"relation":"self","url":' + orjson.dumps(self_link) + b"}"]
    if next_link:
        links.append(b'{"relation":"next","url":' + orjson.dumps(next_link) + b"}")
    # one join copies each resource once: wrapping each in its entry first copied it twice more
    parts = [b'{"resourceType":"Bundle","type":"searchset",', b'"total":%d,' % total if total is not None else b"",
             b'"id":"', os.urandom(16).hex().encode(), b'","link":[', b",".join(links), b"]"]
    if resources:
        parts += [b',"entry":[', _ENTRY_START, _BETWEEN_ENTRIES.join(resources), _ENTRY_END, b"]"]
    parts.append(b"}")
    return b"".join(parts)


_ENTRY_START = b'{"resource":'
_ENTRY_END = b',"search":{"mode":"match"}}'
_BETWEEN_ENTRIES = _ENTRY_END + b"," + _ENTRY_START

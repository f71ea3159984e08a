"""ITI-65 deposits in, FHIR Bundles out.

:func:`parse_deposit` checks a transaction Bundle (SubmissionSet List + DocumentReferences + Binaries)
down to each field the DMP needs and turns it into a :class:`Deposit`, or raises a 4xx
:class:`~record_service.outcomes.ServiceError` naming the first field at fault. It stores nothing.
The ``*_bundle`` functions assemble responses, splicing stored JSON bytes rather than re-encoding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

from record_service.codes import (CONTENT_TYPES, MASKED_FROM_PROFESSIONALS, SUBMISSION_SET_SYSTEM,
                                  TYPE_CODES_BY_SYSTEM, VISIBILITY_SYSTEM)
from record_service.outcomes import ServiceError, invalid, required
from segur.identifiers import INS_SYSTEMS, RPPS_SYSTEM, is_valid_ins, is_valid_rpps

_ALLOWED_RESOURCES = ("List", "DocumentReference", "Binary")
_MAX_MASTER_ID = 256


@dataclass(slots=True)
class NewDocument:
    """One document of a deposit, checked; ``resource`` is the DocumentReference JSON to store."""

    id: str
    master_id: str
    type_code: str
    date_us: int
    authors: tuple[str, ...]  # RPPS numbers of the professional authors
    content_type: str
    data: bytes
    sha256: str
    masked: bool
    replaces: str | None
    resource: dict
    entry_index: int


@dataclass(slots=True)
class Deposit:
    patient_ins: str
    documents: list[NewDocument]
    entry_count: int
    list_index: int
    binary_index: dict[int, int] = field(default_factory=dict)  # Binary entry -> document position


def parse_instant(value: object, where: str) -> int:
    """An ISO 8601 date or date-time as microseconds since the epoch (UTC; a bare date is midnight UTC)."""
    if not isinstance(value, str) or not value:
        raise required(where) if not value else invalid(f"{where} must be a date-time string", where)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"{where} is not an ISO 8601 date-time: {value[:40]!r}", where) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return int(moment.timestamp() * 1_000_000)
    except (OverflowError, ValueError):
        raise invalid(f"{where} is out of range: {value[:40]!r}", where) from None


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
    return value


def patient_identifier(subject: object, where: str) -> str:
    """The INS of a ``subject`` reference given by identifier (INS-NIR or its test system)."""
    identifier = _object(_object(subject, where).get("identifier"), f"{where}.identifier")
    system = _text(identifier.get("system"), f"{where}.identifier.system")
    if system not in INS_SYSTEMS:
        raise invalid(f"{where}.identifier.system must be an INS system ({', '.join(sorted(INS_SYSTEMS))}),"
                      f" not {system[:80]!r}", f"{where}.identifier.system", reason="invalid-ins")
    value = _text(identifier.get("value"), f"{where}.identifier.value")
    if not is_valid_ins(value):
        raise invalid(f"{where}.identifier.value is not a valid INS (13 characters + 2-digit key): {value[:40]!r}",
                      f"{where}.identifier.value", reason="invalid-ins")
    return value


def professional_rpps(identifier: dict, where: str) -> str | None:
    """The RPPS inside an IdNat_PS identifier (``8`` + RPPS), None for another system; 400 if malformed."""
    if identifier.get("system") != RPPS_SYSTEM:
        return None
    value = _text(identifier.get("value"), f"{where}.value")
    rpps = value[1:] if len(value) == 12 and value.startswith("8") else value
    if not is_valid_rpps(rpps):
        raise invalid(f"{where}.value is not a valid national professional id ('8' + RPPS): {value[:40]!r}",
                      f"{where}.value")
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


def _authors(document: dict, where: str) -> tuple[str, ...]:
    authors = _list(document.get("author"), f"{where}.author")
    found: list[str] = []
    for i, author in enumerate(authors):
        author = _object(author, f"{where}.author[{i}]")
        identifier = author.get("identifier")
        if identifier is None:
            if "reference" in author or "display" in author:
                continue
            raise required(f"{where}.author[{i}].identifier")
        rpps = professional_rpps(_object(identifier, f"{where}.author[{i}].identifier"),
                                 f"{where}.author[{i}].identifier")
        if rpps:
            found.append(rpps)
    return tuple(found)


def _masked(document: dict, where: str) -> bool:
    labels = document.get("securityLabel")
    if labels is None:
        return False
    for i, label in enumerate(_list(labels, f"{where}.securityLabel")):
        codings = _object(label, f"{where}.securityLabel[{i}]").get("coding") or []
        if not isinstance(codings, list):
            raise invalid(f"{where}.securityLabel[{i}].coding must be an array", f"{where}.securityLabel[{i}].coding")
        for coding in codings:
            if isinstance(coding, dict) and coding.get("system") == VISIBILITY_SYSTEM \
                    and coding.get("code") == MASKED_FROM_PROFESSIONALS:
                return True
    return False


def _replaces(document: dict, where: str) -> str | None:
    relations = document.get("relatesTo")
    if relations is None:
        return None
    relations = _list(relations, f"{where}.relatesTo")
    target_id = None
    for i, relation in enumerate(relations):
        relation = _object(relation, f"{where}.relatesTo[{i}]")
        code = _text(relation.get("code"), f"{where}.relatesTo[{i}].code")
        if code != "replaces":
            raise invalid(f"{where}.relatesTo[{i}].code {code[:20]!r} is not supported (only 'replaces')",
                          f"{where}.relatesTo[{i}].code")
        reference = _text(_object(relation.get("target"), f"{where}.relatesTo[{i}].target").get("reference"),
                          f"{where}.relatesTo[{i}].target.reference")
        kind, _, local_id = reference.rstrip("/").rpartition("/")
        if not kind.endswith("DocumentReference") or not local_id:
            raise invalid(f"{where}.relatesTo[{i}].target.reference must be DocumentReference/<id>",
                          f"{where}.relatesTo[{i}].target.reference")
        if target_id is not None:
            raise invalid("a document replaces at most one other", f"{where}.relatesTo")
        target_id = local_id
    return target_id


def _decode(binary: dict, where: str, max_bytes: int) -> bytes:
    data = _text(binary.get("data"), f"{where}.data")
    if len(data) * 3 // 4 > max_bytes + 3:
        raise ServiceError(413, "too-costly", f"the document (Binary) is larger than the limit of {max_bytes} bytes",
                           f"{where}.data", reason="oversized")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{where}.data is not valid base64", f"{where}.data") from None
    if len(decoded) > max_bytes:
        raise ServiceError(413, "too-costly", f"the document (Binary) is {len(decoded)} bytes, over the limit of "
                           f"{max_bytes}", f"{where}.data", reason="oversized")
    return decoded


def parse_deposit(bundle: object, max_document_bytes: int) -> Deposit:
    """Check an ITI-65 Bundle and return what to store; raises a 4xx ServiceError naming the fault."""
    if not isinstance(bundle, dict):
        raise invalid("the body must be a FHIR resource (a JSON object)", "Bundle", reason="wrong-resource")
    if bundle.get("resourceType") != "Bundle":
        raise invalid(f"expected a Bundle, got resourceType {str(bundle.get('resourceType'))[:40]!r}",
                      "resourceType", reason="wrong-resource")
    if bundle.get("type") != "transaction":
        raise invalid(f"Bundle.type must be 'transaction', not {str(bundle.get('type'))[:40]!r}", "Bundle.type",
                      reason="wrong-resource")
    entries = _list(bundle.get("entry"), "Bundle.entry")

    by_full_url: dict[str, int] = {}
    lists: list[int] = []
    documents: list[int] = []
    binaries: list[int] = []
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        entry = _object(entry, where)
        resource = _object(entry.get("resource"), f"{where}.resource")
        kind = resource.get("resourceType")
        if kind not in _ALLOWED_RESOURCES:
            raise invalid(f"{where}.resource.resourceType {str(kind)[:40]!r} is not allowed in a deposit "
                          f"(only {', '.join(_ALLOWED_RESOURCES)})", f"{where}.resource.resourceType",
                          reason="wrong-resource")
        request = entry.get("request")
        if request is not None and (not isinstance(request, dict) or request.get("method") != "POST"):
            raise invalid(f"{where}.request.method must be POST", f"{where}.request.method")
        full_url = entry.get("fullUrl")
        if full_url is not None:
            if not isinstance(full_url, str) or full_url in by_full_url:
                raise invalid(f"{where}.fullUrl must be a unique string", f"{where}.fullUrl")
            by_full_url[full_url] = i
        {"List": lists, "DocumentReference": documents, "Binary": binaries}[kind].append(i)

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
    patient = patient_identifier(submission.get("subject"), f"{list_where}.subject")

    parsed: list[NewDocument] = []
    used_binaries: dict[int, int] = {}
    master_ids: set[str] = set()
    for i in documents:
        where = f"Bundle.entry[{i}].resource"
        resource = entries[i]["resource"]
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
        type_code = _type_code(resource, where)
        subject = patient_identifier(resource.get("subject"), f"{where}.subject")
        if subject != patient:
            raise invalid("the DocumentReference and the SubmissionSet name different patients",
                          f"{where}.subject.identifier.value")
        date_us = parse_instant(resource.get("date"), f"{where}.date")
        authors = _authors(resource, where)
        contents = _list(resource.get("content"), f"{where}.content")
        if len(contents) != 1:
            raise invalid("a DocumentReference has exactly one content", f"{where}.content")
        attachment = _object(_object(contents[0], f"{where}.content[0]").get("attachment"),
                             f"{where}.content[0].attachment")
        at = f"{where}.content[0].attachment"
        content_type = _text(attachment.get("contentType"), f"{at}.contentType")
        if content_type not in CONTENT_TYPES:
            raise ServiceError(415, "not-supported", f"{at}.contentType {content_type[:60]!r} is not an accepted "
                               f"document format ({', '.join(sorted(CONTENT_TYPES))})", f"{at}.contentType",
                               reason="wrong-content-type")
        url = _text(attachment.get("url"), f"{at}.url")
        binary_index = by_full_url.get(url)
        if binary_index is None or binary_index not in binaries:
            raise invalid(f"{at}.url {url[:80]!r} does not name a Binary entry of the Bundle", f"{at}.url")
        if binary_index in used_binaries:
            raise invalid(f"{at}.url: the Binary is already used by another document", f"{at}.url")
        binary = entries[binary_index]["resource"]
        binary_where = f"Bundle.entry[{binary_index}].resource"
        binary_type = _text(binary.get("contentType"), f"{binary_where}.contentType")
        if binary_type != content_type:
            raise ServiceError(415, "not-supported", f"{binary_where}.contentType {binary_type[:60]!r} differs from "
                               f"the document's declared {content_type!r}", f"{binary_where}.contentType",
                               reason="wrong-content-type")
        data = _decode(binary, binary_where, max_document_bytes)
        declared_size = attachment.get("size")
        if declared_size is not None and (isinstance(declared_size, bool) or declared_size != len(data)):
            raise ServiceError(422, "invalid", f"{at}.size says {declared_size!r} bytes, the Binary has {len(data)}",
                               f"{at}.size", reason="size-mismatch")
        declared_hash = attachment.get("hash")
        if declared_hash is not None:
            actual = base64.b64encode(hashlib.sha1(data).digest()).decode()
            if declared_hash != actual:
                raise ServiceError(422, "invalid", f"{at}.hash (base64 SHA-1) does not match the Binary's bytes",
                                   f"{at}.hash", reason="hash-mismatch")
        replaces = _replaces(resource, where)
        used_binaries[binary_index] = len(parsed)
        parsed.append(NewDocument(
            id=uuid.uuid4().hex, master_id=master_id, type_code=type_code, date_us=date_us, authors=authors,
            content_type=content_type, data=data, sha256=hashlib.sha256(data).hexdigest(),
            masked=_masked(resource, where), replaces=replaces, resource=resource, entry_index=i))

    unused = [i for i in binaries if i not in used_binaries]
    if unused:
        raise invalid(f"Bundle.entry[{unused[0]}] is a Binary no DocumentReference points to",
                      f"Bundle.entry[{unused[0]}]")
    return Deposit(patient_ins=patient, documents=parsed, entry_count=len(entries), list_index=lists[0],
                   binary_index=used_binaries)


def stored_resource(document: NewDocument, now_us: int) -> bytes:
    """The DocumentReference as it will be served: server id, version 1, attachment pointing at our Binary."""
    resource = dict(document.resource)
    resource["id"] = document.id
    resource["meta"] = {"versionId": "1", "lastUpdated": format_instant(now_us)}
    content = dict(resource["content"][0])
    attachment = dict(content["attachment"])
    attachment["url"] = f"Binary/{document.id}"
    attachment["size"] = len(document.data)
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
    return orjson.dumps({"resourceType": "Bundle", "id": uuid.uuid4().hex, "type": "transaction-response",
                         "entry": entries})


def searchset(resources: list[bytes], kind: str, self_link: str, next_link: str | None) -> bytes:
    """A searchset Bundle around already-encoded resources (each given with its id inside)."""
    links = [b'{"relation":"self","url":' + orjson.dumps(self_link) + b"}"]
    if next_link:
        links.append(b'{"relation":"next","url":' + orjson.dumps(next_link) + b"}")
    # one join copies each resource once: wrapping each in its entry first copied it twice more
    parts = [b'{"resourceType":"Bundle","type":"searchset","id":"', os.urandom(16).hex().encode(), b'","link":[',
             b",".join(links), b'],"entry":[']
    if resources:
        parts += [_ENTRY_START, _BETWEEN_ENTRIES.join(resources), _ENTRY_END]
    parts.append(b"]}")
    return b"".join(parts)


_ENTRY_START = b'{"resource":'
_ENTRY_END = b',"search":{"mode":"match"}}'
_BETWEEN_ENTRIES = _ENTRY_END + b"," + _ENTRY_START

"""What the load driver sends for each schedule row: the record service's real API, realistic bodies.

Document bytes are cut from one block of random bytes made once (generating megabytes per
request would make the driver, not the service, the bottleneck), each prefixed with its own
masterIdentifier so that no two documents have the same content or hash.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np
import orjson

from segur.identifiers import INS_NIR_SYSTEM, RPPS_SYSTEM

LOINC = "http://loinc.org"
TRE_A05 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypDocComplementaire/FHIR/TRE-A05-TypDocComplementaire"
SUBMISSION_SET = {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                              "code": "submissionset"}]}
FHIR_JSON = "application/fhir+json"

# the HTTP method of each operation's request (load.client sends them): Locust's "Type" beside the operation's name
METHODS = {"deposit": "POST", "search": "GET", "retrieve": "GET", "mask": "POST", "delete": "DELETE",
           "history": "GET", "block": "POST"}


class DocumentBytes:
    """Deterministic, distinct document contents of any size, cheap to make."""

    def __init__(self, block_bytes: int = 24 * 1024 * 1024, seed: int = 7):
        self._block = np.random.default_rng(seed).bytes(block_bytes)

    def content(self, document_id: str, size: int) -> bytes:
        header = f"%PDF-1.7\n% {document_id}\n".encode()
        body = max(size - len(header), 0)
        if body > len(self._block):
            repeats = body // len(self._block) + 1
            return header + (self._block * repeats)[:body]
        start = zlib.crc32(header) % (len(self._block) - body + 1)
        return header + self._block[start:start + body]


def type_coding(type_code: str) -> dict:
    system = LOINC if type_code[:1].isdigit() else TRE_A05
    return {"coding": [{"system": system, "code": type_code}]}


def _author(row: dict) -> list[dict]:
    if row["actor_kind"] == "patient":
        return [{"identifier": {"system": INS_NIR_SYSTEM, "value": row["actor_id"]}}]
    return [{"identifier": {"system": RPPS_SYSTEM, "value": "8" + row["actor_id"]}}]


@dataclass(frozen=True)
class Deposit:
    """An ITI-65 request: its body, the document's sha256 (hex) and size (bytes), the Bundle's entries."""

    body: bytes
    sha256: str
    size: int
    entries: int = 3


def deposit(row: dict, data: bytes, when: str) -> Deposit:
    """An ITI-65 transaction Bundle: SubmissionSet List + DocumentReference + Binary."""
    subject = {"identifier": {"system": INS_NIR_SYSTEM, "value": row["patient_ins"]}}
    document = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": row["document_id"]},
        "status": "current",
        "type": type_coding(row["type_code"]),
        "subject": subject,
        "date": when,
        "author": _author(row),
        "context": {"period": {"start": when}},   # XDS serviceStartTime: what FindDocuments' time parameters read
        "content": [{"attachment": {
            "contentType": "application/pdf", "url": "urn:uuid:binary", "size": len(data), "creation": when,
            "hash": base64.b64encode(hashlib.sha1(data).digest()).decode()}}],
    }
    if row.get("facility_id"):
        document["custodian"] = {"identifier": {"system": "https://finess.esante.gouv.fr", "value": row["facility_id"]}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:submissionset", "request": {"method": "POST", "url": "List"}, "resource": {
            "resourceType": "List", "status": "current", "mode": "working", "date": when, "code": SUBMISSION_SET,
            "subject": subject, "entry": [{"item": {"reference": "urn:uuid:document"}}]}},
        {"fullUrl": "urn:uuid:document", "request": {"method": "POST", "url": "DocumentReference"},
         "resource": document},
        {"fullUrl": "urn:uuid:binary", "request": {"method": "POST", "url": "Binary"},
         "resource": {"resourceType": "Binary", "contentType": "application/pdf",
                      "data": base64.b64encode(data).decode()}},
    ]}
    return Deposit(orjson.dumps(bundle), hashlib.sha256(data).hexdigest(), len(data), len(bundle["entry"]))


_SEARCH_PREFIX = f"/DocumentReference?patient.identifier={quote(INS_NIR_SYSTEM, safe=':')}%7C"
_HISTORY_PREFIX = f"/AuditEvent?patient.identifier={quote(INS_NIR_SYSTEM, safe=':')}%7C"


def patient_path(patient_ins: str) -> str:
    """TD0.2 in FHIR (PDSm4DMP): does the patient have an open record, may the caller read it."""
    return f"/Patient?identifier={quote(INS_NIR_SYSTEM, safe=':')}%7C{patient_ins}"


def search_path(patient_ins: str, count: int = 50) -> str:
    return f"{_SEARCH_PREFIX}{patient_ins}&status=current&_count={count}"


def history_path(patient_ins: str, count: int = 50) -> str:
    """The patient's access history, newest first (FHIR AuditEvent search)."""
    return f"{_HISTORY_PREFIX}{patient_ins}&_count={count}"


def block_body(rpps: str) -> bytes:
    return orjson.dumps({"resourceType": "Parameters", "parameter": [
        {"name": "professional", "valueIdentifier": {"system": RPPS_SYSTEM, "value": "8" + rpps}}]})

"""Builders for the tests: identifiers, actors and ITI-65 Bundles (valid, or broken on purpose)."""

from __future__ import annotations

import base64
import copy
import hashlib
import random
import uuid
from datetime import datetime, timedelta, timezone

from record_service.auth import Actor
from segur.identifiers import INS_NIR_SYSTEM, RPPS_SYSTEM, ins_key, luhn_complete

LOINC = "http://loinc.org"
SUBMISSION_SET = {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                              "code": "submissionset"}]}


def make_ins(rng: random.Random, corsica: bool = False) -> str:
    department = rng.choice(["2A", "2B"]) if corsica else f"{rng.randint(1, 95):02d}"
    body = (rng.choice("12") + f"{rng.randint(0, 99):02d}" + f"{rng.randint(1, 12):02d}" + department
            + f"{rng.randint(1, 999):03d}" + f"{rng.randint(1, 999):03d}")
    return body + f"{ins_key(body):02d}"


def make_rpps(rng: random.Random) -> str:
    return luhn_complete("1" + "".join(str(rng.randint(0, 9)) for _ in range(9)))


def make_finess(rng: random.Random) -> str:
    return luhn_complete(f"{rng.randint(1, 95):02d}" + "".join(str(rng.randint(0, 9)) for _ in range(6)))


def professional(rng: random.Random, sector: str = "hospital", facility: bool = True) -> Actor:
    return Actor(rpps=make_rpps(rng), sector=sector, finess=make_finess(rng) if facility else None)


def patient(ins: str) -> Actor:
    return Actor(ins=ins)


def instant(days_ago: float = 0) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days_ago)).isoformat(timespec="seconds")


def document_reference(ins: str, author_rpps: str, data: bytes, master_id: str | None = None,
                       type_code: str = "11502-2", date: str | None = None, replaces: str | None = None,
                       binary_url: str = "urn:uuid:binary-1", content_type: str = "application/pdf") -> dict:
    doc = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": master_id or f"urn:uuid:{uuid.uuid4()}"},
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": type_code}]},
        "subject": {"identifier": {"system": INS_NIR_SYSTEM, "value": ins}},
        "date": date or instant(),
        "author": [{"identifier": {"system": RPPS_SYSTEM, "value": "8" + author_rpps}}],
        "content": [{"attachment": {"contentType": content_type, "url": binary_url, "size": len(data),
                                    "hash": base64.b64encode(hashlib.sha1(data).digest()).decode()}}],
    }
    if replaces:
        doc["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}]
    return doc


def deposit_bundle(ins: str, author_rpps: str, data: bytes, **document_fields) -> dict:
    """A valid ITI-65 transaction Bundle with one document."""
    content_type = document_fields.get("content_type", "application/pdf")
    doc = document_reference(ins, author_rpps, data, **document_fields)
    return {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:submission-set", "request": {"method": "POST", "url": "List"},
             "resource": {"resourceType": "List", "status": "current", "mode": "working",
                          "code": copy.deepcopy(SUBMISSION_SET),
                          "subject": {"identifier": {"system": INS_NIR_SYSTEM, "value": ins}},
                          "entry": [{"item": {"reference": "urn:uuid:document-1"}}]}},
            {"fullUrl": "urn:uuid:document-1", "request": {"method": "POST", "url": "DocumentReference"},
             "resource": doc},
            {"fullUrl": "urn:uuid:binary-1", "request": {"method": "POST", "url": "Binary"},
             "resource": {"resourceType": "Binary", "contentType": content_type,
                          "data": base64.b64encode(data).decode()}},
        ],
    }


def multi_document_bundle(ins: str, author_rpps: str, payloads: list[bytes]) -> dict:
    bundle = deposit_bundle(ins, author_rpps, payloads[0])
    for i, data in enumerate(payloads[1:], start=2):
        bundle["entry"].append({"fullUrl": f"urn:uuid:document-{i}", "request": {"method": "POST"},
                                "resource": document_reference(ins, author_rpps, data,
                                                               binary_url=f"urn:uuid:binary-{i}")})
        bundle["entry"].append({"fullUrl": f"urn:uuid:binary-{i}", "request": {"method": "POST"},
                                "resource": {"resourceType": "Binary", "contentType": "application/pdf",
                                             "data": base64.b64encode(data).decode()}})
    return bundle


def the_document(bundle: dict) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference")


def the_binary(bundle: dict) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Binary")


def altered(bundle: dict, change) -> dict:
    """A deep copy of ``bundle`` with ``change(copy)`` applied."""
    copy_ = copy.deepcopy(bundle)
    change(copy_)
    return copy_


def locations(reply_json: dict, kind: str) -> list[str]:
    return [e["response"]["location"].split(f"{kind}/")[1].split("/")[0]
            for e in reply_json.get("entry", []) if f"{kind}/" in e.get("response", {}).get("location", "")]


def search_path(ins: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/DocumentReference?patient.identifier={INS_NIR_SYSTEM}|{ins}" + (f"&{query}" if query else "")


def json_paths(node, prefix=()):
    """Every path (a tuple of keys and indexes) to a value inside a JSON document, the document's own first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from json_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from json_paths(value, prefix + (index,))

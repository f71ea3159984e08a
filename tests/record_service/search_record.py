"""One patient's record with four documents whose metadata differ on every ITI-67 parameter, built once per
back end and only read by the search tests (which therefore share it).

| name | status | type | category | security label | context | format | identifier | period | creation | date |
|---|---|---|---|---|---|---|---|---|---|---|
| d1 | current | 11488-4 | A03 10 | v3 N | facility F1, setting S1, event E1 | fmt-a | 3986 urn:oid:1.1.1 | 2025-01-10..20 | 2025-01-21T10:00:00+01:00 | 2025-01-22T10:00:00Z |
| d2 | superseded (by d3) | 11502-2 | A03 11 | — | F2, S2, events E2 and E3 | fmt-b | (no system) local-7 | 2025-06-01.. | 2025-06-02 | 2025-06-03T08:30:00Z |
| d3 | current, replaces d2 | 18748-4 | — | — | — | — | — | — | — | 2026-02-01T00:00:00Z |
| d4 | current, masked at deposit | 11490-0 | — | MASQUE_PS | — | — | — | — | — | 2024-12-31T23:59:59Z |
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import quote

from record_documents import deposit_bundle, locations, make_ins, patient, professional, the_document
from record_service.auth import Actor
from record_service.codes import MASKED_FROM_PROFESSIONALS, VISIBILITY_SYSTEM
from segur.identifiers import INS_NIR_SYSTEM

A03 = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
SNOMED = "http://snomed.info/sct"
FORMAT = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
LOINC = "http://loinc.org"
RFC3986 = "urn:ietf:rfc:3986"
VISIBILITY = VISIBILITY_SYSTEM
MASKED = MASKED_FROM_PROFESSIONALS


def _concept(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


_DOCUMENTS = {
    "d1": dict(type_code="11488-4", date="2025-01-22T10:00:00Z", extra={
        "category": [_concept(A03, "10")], "securityLabel": [_concept(CONFIDENTIALITY, "N")],
        "context": {"facilityType": _concept(SNOMED, "F1"), "practiceSetting": _concept(SNOMED, "S1"),
                    "event": [_concept(SNOMED, "E1")], "period": {"start": "2025-01-10", "end": "2025-01-20"}},
        "identifier": [{"system": RFC3986, "value": "urn:oid:1.1.1"}],
        "format": {"system": FORMAT, "code": "fmt-a"}, "creation": "2025-01-21T10:00:00+01:00"}),
    "d2": dict(type_code="11502-2", date="2025-06-03T08:30:00Z", extra={
        "category": [_concept(A03, "11")],
        "context": {"facilityType": _concept(SNOMED, "F2"), "practiceSetting": _concept(SNOMED, "S2"),
                    "event": [_concept(SNOMED, "E2"), _concept(SNOMED, "E3")],
                    "period": {"start": "2025-06-01"}},
        "identifier": [{"value": "local-7"}], "format": {"system": FORMAT, "code": "fmt-b"}, "creation": "2025-06-02"}),
    "d3": dict(type_code="18748-4", date="2026-02-01T00:00:00Z", extra={}),
    "d4": dict(type_code="11490-0", date="2024-12-31T23:59:59Z", extra={
        "securityLabel": [_concept(VISIBILITY, MASKED)]}),
}


@dataclass
class Record:
    ins: str
    author: Actor
    ids: dict[str, str]  # name -> DocumentReference id
    masters: dict[str, str]  # name -> masterIdentifier value

    def names(self, reply_json: dict) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id.get(e["resource"]["id"], "?") for e in reply_json.get("entry", [])}

    def path(self, query: str = "") -> str:
        return f"/DocumentReference?patient.identifier={INS_NIR_SYSTEM}|{self.ins}" + (f"&{query}" if query else "")


def build_record(service, rng: random.Random) -> Record:
    ins, author = make_ins(rng), professional(rng)
    token = service.token(author)
    ids: dict[str, str] = {}
    masters: dict[str, str] = {}
    for name, spec in _DOCUMENTS.items():
        bundle = deposit_bundle(ins, author.rpps, f"{name}-{rng.random()}".encode(), type_code=spec["type_code"],
                                date=spec["date"], replaces=ids.get("d2") if name == "d3" else None)
        document = the_document(bundle)
        extra = dict(spec["extra"])
        fmt, creation = extra.pop("format", None), extra.pop("creation", None)
        document.update(extra)
        if fmt:
            document["content"][0]["format"] = fmt
        if creation:
            document["content"][0]["attachment"]["creation"] = creation
        reply = service.call("POST", "/", token, bundle)
        assert reply.status == 201, reply
        ids[name] = locations(reply.json(), "DocumentReference")[0]
        masters[name] = document["masterIdentifier"]["value"]
    return Record(ins, author, ids, masters)


_BUILT: dict[str, Record] = {}


def shared_record(service) -> Record:
    """The record on ``service`` (built at first use, then reused)."""
    if service.url not in _BUILT:
        _BUILT[service.url] = build_record(service, random.Random())
    return _BUILT[service.url]


def found(service, record: Record, query: str, token: str | None = None) -> set[str]:
    """The names of the documents a 200 search finds (as the patient, who sees every document)."""
    reply = service.call("GET", record.path(query), token or service.token(patient(record.ins)))
    assert reply.status == 200, (query, reply)
    return record.names(reply.json())


def q(value: str) -> str:
    """A value escaped for a query string ('+' of time zones, '|' and ':' kept readable)."""
    return quote(value, safe=":|,/")

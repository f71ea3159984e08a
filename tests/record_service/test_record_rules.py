"""The access rules as a matrix: actor × document state × operation → expected answer, on both back ends.

Each case builds its own record (a fresh patient with one document deposited by a hospital professional),
puts the document in the state named, then lets the actor try the operation.
"""

from __future__ import annotations

import os

import pytest

from record_documents import deposit_bundle, locations, make_ins, patient, professional, search_path
from record_service.auth import Actor
from segur.identifiers import INS_NIR_SYSTEM

ACTORS = ("patient", "other_patient", "author", "colleague", "other_professional", "blocked_professional")
STATES = ("current", "masked", "superseded", "deleted", "opted_out")

# What each actor gets, per state. "sees" / "empty": a 200 search that finds the document or nothing.
_P, _OP, _AU, _CO, _OT, _BL = ACTORS
FIND = {
    "current":    {_P: "sees", _OP: 403, _AU: "sees", _CO: "sees", _OT: "sees", _BL: "empty"},
    "masked":     {_P: "sees", _OP: 403, _AU: "sees", _CO: "sees", _OT: "empty", _BL: "empty"},
    "superseded": {_P: "sees", _OP: 403, _AU: "sees", _CO: "sees", _OT: "sees", _BL: "empty"},
    "deleted":    {_P: "empty", _OP: 403, _AU: "empty", _CO: "empty", _OT: "empty", _BL: "empty"},
    "opted_out":  {_P: "empty", _OP: 403, _AU: "empty", _CO: "empty", _OT: "empty", _BL: "empty"},
}
# A document the caller may not know exists answers 404 whatever the operation: another patient's, a
# masked one for a professional who is not its author (blocked or not), a deleted one.
RETRIEVE = {
    "current":    {_P: 200, _OP: 404, _AU: 200, _CO: 200, _OT: 200, _BL: 403},
    "masked":     {_P: 200, _OP: 404, _AU: 200, _CO: 200, _OT: 404, _BL: 404},
    "superseded": {_P: 200, _OP: 404, _AU: 200, _CO: 200, _OT: 200, _BL: 403},
    "deleted":    {_P: 404, _OP: 404, _AU: 404, _CO: 404, _OT: 404, _BL: 404},
    "opted_out":  {_P: 404, _OP: 404, _AU: 404, _CO: 404, _OT: 404, _BL: 404},
}
MASK = {state: {_P: 200, _OP: 404, _AU: 403, _CO: 403, _OT: 403, _BL: 403} for state in STATES}
MASK["deleted"] = {actor: 404 if actor in (_P, _OP) else 403 for actor in ACTORS}  # professionals: 403 whatever
DELETE = {state: {_P: 204, _OP: 404, _AU: 204, _CO: 204, _OT: 403, _BL: 403} for state in STATES}
DELETE["masked"] = {**DELETE["masked"], _OT: 404, _BL: 404}
DELETE["deleted"] = {actor: 404 for actor in ACTORS}
DEPOSIT = {state: {_P: 201, _OP: 403, _AU: 201, _CO: 201, _OT: 201, _BL: 201} for state in STATES}
DEPOSIT["opted_out"] = {actor: 403 for actor in ACTORS}
AUDIT = {state: {_P: 200, _OP: 403, _AU: 403, _CO: 403, _OT: 403, _BL: 403} for state in STATES}
BLOCK = {state: {_P: 200, _OP: 200, _AU: 403, _CO: 403, _OT: 403, _BL: 403} for state in STATES}

MATRIX = {"find": FIND, "retrieve": RETRIEVE, "mask": MASK, "delete": DELETE, "deposit": DEPOSIT,
          "audit": AUDIT, "block": BLOCK}
CASES = [(op, state, actor, MATRIX[op][state][actor]) for op in MATRIX for state in STATES for actor in ACTORS]


class Record:
    """A patient's record with one document by ``author``, put in a given state."""

    def __init__(self, service, rng, state: str):
        self.service = service
        self.ins = make_ins(rng)
        self.author = professional(rng, "hospital")
        self.actors = {
            "patient": patient(self.ins),
            "other_patient": patient(make_ins(rng)),
            "author": self.author,
            "colleague": Actor(rpps=professional(rng).rpps, sector="hospital", finess=self.author.finess),
            "other_professional": professional(rng, "town_doctor"),
            "blocked_professional": professional(rng, "pharmacy"),
        }
        self.data = os.urandom(2000)
        reply = service.call("POST", "/", self.token("author"), deposit_bundle(self.ins, self.author.rpps, self.data))
        assert reply.status == 201, reply
        [self.doc_id] = locations(reply.json(), "DocumentReference")
        me = self.token("patient")
        blocked = {"resourceType": "Parameters", "parameter": [
            {"name": "professional", "valueIdentifier": {"value": self.actors["blocked_professional"].rpps}}]}
        assert service.call("POST", "/Patient/$block", me, blocked).status == 200
        if state == "masked":
            assert service.call("POST", f"/DocumentReference/{self.doc_id}/$mask", me, b"{}").status == 200
        elif state == "superseded":
            newer = deposit_bundle(self.ins, self.author.rpps, b"newer", replaces=self.doc_id)
            assert service.call("POST", "/", self.token("author"), newer).status == 201
        elif state == "deleted":
            assert service.call("DELETE", f"/DocumentReference/{self.doc_id}", self.token("author")).status == 204
        elif state == "opted_out":
            assert service.call("POST", "/Patient/$opt-out", me, b"{}").status == 200

    def token(self, actor: str) -> str:
        return self.service.token(self.actors[actor])

    def ids_found_by(self, actor: str):
        reply = self.service.call("GET", search_path(self.ins, status="current,superseded"), self.token(actor))
        if reply.status != 200:
            return reply.status
        return [e["resource"]["id"] for e in reply.json().get("entry", [])]


def _attempt(record: Record, operation: str, actor: str, rng):
    service, token = record.service, record.token(actor)
    if operation == "find":
        found = record.ids_found_by(actor)
        if isinstance(found, int):
            return found
        return "sees" if record.doc_id in found else "empty"
    if operation == "retrieve":
        reply = service.call("GET", f"/Binary/{record.doc_id}", token)
        if reply.status == 200:
            assert reply.body == record.data
        return reply.status
    if operation == "mask":
        return service.call("POST", f"/DocumentReference/{record.doc_id}/$mask", token, b"{}").status
    if operation == "delete":
        return service.call("DELETE", f"/DocumentReference/{record.doc_id}", token).status
    if operation == "deposit":
        author = record.actors[actor].rpps or record.author.rpps
        return service.call("POST", "/", token, deposit_bundle(record.ins, author, os.urandom(100))).status
    if operation == "audit":
        return service.call("GET", f"/AuditEvent?patient.identifier={INS_NIR_SYSTEM}|{record.ins}", token).status
    if operation == "block":
        body = {"resourceType": "Parameters", "parameter": [
            {"name": "professional", "valueIdentifier": {"value": professional(rng).rpps}}]}
        return service.call("POST", "/Patient/$block", token, body).status
    raise AssertionError(operation)


@pytest.mark.parametrize("operation,state,actor,expected", CASES,
                         ids=[f"{op}-{state}-{actor}" for op, state, actor, _ in CASES])
def test_rule_matrix(service, rng, operation, state, actor, expected):
    record = Record(service, rng, state)
    assert _attempt(record, operation, actor, rng) == expected


def test_a_masked_document_stays_hidden_after_unmask_is_refused_to_professionals(service, rng):
    record = Record(service, rng, "masked")
    assert service.call("POST", f"/DocumentReference/{record.doc_id}/$unmask", record.token("author"),
                        b"{}").status == 403
    assert record.ids_found_by("other_professional") == []
    assert service.call("POST", f"/DocumentReference/{record.doc_id}/$unmask", record.token("patient"),
                        b"{}").status == 200
    assert record.ids_found_by("other_professional") == [record.doc_id]


def test_unblocking_restores_access(service, rng):
    record = Record(service, rng, "current")
    me = record.token("patient")
    assert record.ids_found_by("blocked_professional") == []
    unblock = {"resourceType": "Parameters", "parameter": [
        {"name": "professional", "valueIdentifier": {"system": "urn:oid:1.2.250.1.71.4.2.1",
                                                     "value": "8" + record.actors["blocked_professional"].rpps}}]}
    assert service.call("POST", "/Patient/$unblock", me, unblock).status == 200
    assert record.ids_found_by("blocked_professional") == [record.doc_id]


def test_every_professional_read_is_in_the_access_history(service, rng):
    from fhir_validation import validate

    record = Record(service, rng, "current")
    record.ids_found_by("other_professional")
    service.call("GET", f"/Binary/{record.doc_id}", record.token("author"))
    service.call("GET", f"/Binary/{record.doc_id}", record.token("blocked_professional"))  # refused: still traced
    record.ids_found_by("patient")  # the patient's own reads are not "access by others"
    history = service.call("GET", f"/AuditEvent?patient.identifier={INS_NIR_SYSTEM}|{record.ins}",
                           record.token("patient"))
    assert history.status == 200
    validate(history.json())
    events = [e["resource"] for e in history.json()["entry"]]
    who = [(e["agent"][0]["who"]["identifier"]["value"][1:], e["subtype"][0]["code"], e["outcome"]) for e in events]
    assert who == [(record.actors["blocked_professional"].rpps, "read", "4"),
                   (record.author.rpps, "read", "0"),
                   (record.actors["other_professional"].rpps, "search-type", "0")]
    assert all(e["entity"][0]["what"]["identifier"]["value"] == record.ins for e in events)

"""Submission sets in the registry (SQLite and PostgreSQL): every deposit, ITI-41 or ITI-65, is one; the DMP's
later-visit pattern finds them (FindSubmissionSets by submission time), follows their HasMember associations
(GetAssociations) to the documents (GetDocumentsAndAssociations), under the documents' rules — a patient's
mask, a blocked professional, a closed record — and in the access history; older databases get theirs."""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import datetime, timezone

import psycopg
import pytest
from lxml import etree

from record_service.xds import terms
from record_service.xds.terms import q
from tests.record_service.conftest import BACKENDS, Service
from tests.record_service.record_documents import (deposit_bundle, locations, make_ins, multi_document_bundle,
                                                   patient, professional)
from tests.record_service.xds import messages
from tests.record_service.xds.test_front import Caller, _status, _uid, _valid

INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
LOINC_OID = "2.16.840.1.113883.6.1"


def _query(caller: Caller, body: etree._Element) -> etree._Element:
    status, answer = caller.send(terms.ITI18, "/xds/iti18", body)
    assert status == 200, etree.tostring(answer)[:400]
    return answer


def _ok(caller: Caller, body: etree._Element) -> etree._Element:
    answer = _query(caller, body)
    assert _status(answer) == ("Success", []), etree.tostring(answer)[:600]
    return answer


def _sets(answer: etree._Element) -> list[dict]:
    """The submission sets of an answer, in order: entryUUID, identifiers, submissionTime, contentType, status."""
    found = []
    for package in answer.iter(q("rim", "RegistryPackage")):
        ids = {e.get("identificationScheme"): e.get("value") for e in package.findall(q("rim", "ExternalIdentifier"))}
        classifications = package.findall(q("rim", "Classification"))
        found.append({
            "id": package.get("id"), "status": package.get("status"),
            "uniqueId": ids.get(terms.SS_UNIQUE_ID), "sourceId": ids.get(terms.SS_SOURCE_ID),
            "patientId": ids.get(terms.SS_PATIENT_ID),
            "submissionTime": package.findtext(f"{q('rim', 'Slot')}[@name='submissionTime']//{q('rim', 'Value')}"),
            "isSubmissionSet": any(c.get("classificationNode") == terms.SUBMISSION_SET
                                   and c.get("classifiedObject") == package.get("id") for c in classifications),
            "contentType": next((c.get("nodeRepresentation") for c in classifications
                                 if c.get("classificationScheme") == terms.SS_CONTENT_TYPE), None)})
    return found


def _has_members(answer: etree._Element) -> set[tuple[str, str]]:
    return {(a.get("sourceObject"), a.get("targetObject")) for a in answer.iter(q("rim", "Association"))
            if a.get("associationType") == terms.HAS_MEMBER}


def _entry_uuids(caller: Caller, *unique_ids: str) -> dict[str, str]:
    """uniqueId -> entryUUID of the caller's patient's documents (GetDocuments)."""
    answer = _ok(caller, messages.stored_query(terms.GET_DOCUMENTS, {
        "$XDSDocumentEntryUniqueId": ["(" + ",".join(f"'{u}'" for u in unique_ids) + ")"]}))
    found = {}
    for entry in answer.iter(q("rim", "ExtrinsicObject")):
        ids = {e.get("identificationScheme"): e.get("value") for e in entry.findall(q("rim", "ExternalIdentifier"))}
        found[ids[terms.DE_UNIQUE_ID]] = entry.get("id")
    return found


def _find(caller: Caller, **slots) -> list[dict]:
    return _sets(_ok(caller, messages.find_submission_sets(caller.ins, **slots)))


def _mask(service, ins: str, entry_uuid: str) -> None:
    document_id = uuid.UUID(entry_uuid.removeprefix("urn:uuid:")).hex
    assert service.call("POST", f"/DocumentReference/{document_id}/$mask", service.token(patient(ins))).status == 200


def _history(service, ins: str) -> list[tuple[str, str, str]]:
    """The patient's access history, oldest first: (subtype, outcome, outcomeDesc)."""
    found = service.call("GET", f"/AuditEvent?patient.identifier={INS_SYSTEM}|{ins}&_count=100",
                         service.token(patient(ins))).json()
    said = [(e["resource"]["subtype"][0]["code"], e["resource"]["outcome"], e["resource"].get("outcomeDesc", ""))
            for e in found.get("entry", [])]
    return said[::-1]


def test_iti41_submission_sets_are_found_by_submission_time_from_inclusive_to_exclusive(service, rng):
    caller = Caller(service, professional(rng, "lab"), make_ins(rng))
    a, b1, b2, c = (_uid(rng) for _ in range(4))
    set_a, set_b, set_c = (f"1.2.250.1.999.77.{rng.randint(1, 10**9)}.{i}" for i in range(3))
    for documents, when, set_id, source in (([(a, b"a")], "20250101100000", set_a, "1.2.250.1.999"),
                                            ([(b1, b"b1"), (b2, b"b2")], "20250101110000", set_b, "1.2.250.1.998"),
                                            ([(c, b"c")], "20250101120000", set_c, "1.2.250.1.999")):
        assert _status(caller.deposit(*documents, submission_time=when, submission_set_id=set_id,
                                      source_id=source)[1]) == ("Success", [])
    everything = _find(caller)
    assert [s["uniqueId"] for s in everything] == [set_c, set_b, set_a]  # newest submission first
    newest = everything[0]
    assert newest["status"] == terms.APPROVED and newest["isSubmissionSet"]
    assert newest["submissionTime"] == "20250101120000" and newest["sourceId"] == "1.2.250.1.999"
    assert newest["patientId"] == messages.cx(caller.ins) and newest["contentType"] == "11502-2"
    assert newest["id"].startswith("urn:uuid:") and len({s["id"] for s in everything}) == 3

    def unique_ids(**slots):
        return [s["uniqueId"] for s in _find(caller, **slots)]

    since_b = {"$XDSSubmissionSetSubmissionTimeFrom": ["20250101110000"]}
    assert unique_ids(**since_b) == [set_c, set_b]                                      # From is inclusive
    assert unique_ids(**{"$XDSSubmissionSetSubmissionTimeFrom": ["2025010111"]}) == [set_c, set_b]  # any precision
    assert unique_ids(**since_b, **{"$XDSSubmissionSetSubmissionTimeTo": ["20250101120000"]}) == [set_b]  # To excl.
    assert unique_ids(**{"$XDSSubmissionSetSubmissionTimeTo": ["20250101110000"]}) == [set_a]
    assert unique_ids(**{"$XDSSubmissionSetSubmissionTimeFrom": ["20250101120001"]}) == []
    assert unique_ids(**{"$XDSSubmissionSetSourceId": ["('1.2.250.1.998')"]}) == [set_b]
    assert unique_ids(**{"$XDSSubmissionSetSourceId": ["('1.2.250.1.998','1.2.250.1.999')"]}) == [set_c, set_b, set_a]
    assert unique_ids(**{"$XDSSubmissionSetContentType": [f"('11502-2^^{LOINC_OID}')"]}) == [set_c, set_b, set_a]
    assert unique_ids(**{"$XDSSubmissionSetContentType": [f"('11490-0^^{LOINC_OID}')"]}) == []
    assert unique_ids(**{"$XDSSubmissionSetStatus": [f"('{terms.DEPRECATED}')"]}) == []  # a set is always Approved
    assert unique_ids(**{"$XDSSubmissionSetStatus": [f"('{terms.APPROVED}','urn:x:unknown')"]}) == [set_c, set_b, set_a]
    # another patient's record shows none of them
    other = Caller(service, caller.actor, make_ins(rng))
    assert _find(other) == []


def test_the_later_visit_pattern_finds_the_new_documents_through_has_member(service, rng):
    """FindSubmissionSets since the last visit -> GetAssociations (HasMember) -> GetDocumentsAndAssociations."""
    author = Caller(service, professional(rng, "lab"), make_ins(rng))
    old, new1, new2, other = (_uid(rng) for _ in range(4))
    author.deposit((old, b"before the visit"), submission_time="20250301080000")
    author.deposit((new1, b"new 1"), (new2, b"new 2"), submission_time="20250302080000")
    author.deposit((other, b"new 3"), submission_time="20250303080000")
    entries = _entry_uuids(author, old, new1, new2, other)
    reader = Caller(service, professional(rng), author.ins)
    found = _find(reader, **{"$XDSSubmissionSetSubmissionTimeFrom": ["20250302000000"]})
    assert len(found) == 2
    later, earlier = found[0]["id"], found[1]["id"]
    answer = _ok(reader, messages.get_associations(earlier))
    assert _has_members(answer) == {(earlier, entries[new1]), (earlier, entries[new2])}
    assert all(a.find(f"{q('rim', 'Slot')}[@name='SubmissionSetStatus']") is not None
               for a in answer.iter(q("rim", "Association")))
    answer = _ok(reader, messages.get_associations(earlier, later))
    assert _has_members(answer) == {(earlier, entries[new1]), (earlier, entries[new2]), (later, entries[other])}
    # the documents, in one batch, with the HasMember associations linking them to their submission sets
    answer = _ok(reader, messages.get_documents_and_associations(entries[new1], entries[new2], entries[other]))
    assert {e.get("id") for e in answer.iter(q("rim", "ExtrinsicObject"))} == {entries[new1], entries[new2],
                                                                                entries[other]}
    assert _has_members(answer) == {(earlier, entries[new1]), (earlier, entries[new2]), (later, entries[other])}
    # a document's own GetAssociations names its submission set too
    assert _has_members(_ok(reader, messages.get_associations(entries[other]))) == {(later, entries[other])}
    # GetSubmissionSets: the submission sets of documents, with the HasMember associations to them
    answer = _ok(reader, messages.get_submission_sets(entries[new2], entries[other]))
    assert {s["id"] for s in _sets(answer)} == {earlier, later}
    assert _has_members(answer) == {(earlier, entries[new2]), (later, entries[other])}
    # a replacement is a submission set of its own, and the RPLC association stays beside HasMember
    newer = _uid(rng)
    assert _status(author.deposit((newer, b"new 1, v2"), replaces={0: entries[new1]},
                                  submission_time="20250304080000")[1]) == ("Success", [])
    newest = _find(reader, **{"$XDSSubmissionSetSubmissionTimeFrom": ["20250304000000"]})
    assert len(newest) == 1
    newer_uuid = _entry_uuids(author, newer)[newer]
    answer = _ok(reader, messages.get_documents_and_associations(entries[new1], newer_uuid))
    kinds = {(a.get("associationType"), a.get("sourceObject"), a.get("targetObject"))
             for a in answer.iter(q("rim", "Association"))}
    assert kinds == {(terms.HAS_MEMBER, earlier, entries[new1]), (terms.HAS_MEMBER, newest[0]["id"], newer_uuid),
                     (terms.RPLC, newer_uuid, entries[new1])}
    # every one of these reads is in the patient's access history
    searches = [d for kind, outcome, d in _history(service, author.ins) if kind == "search-type" and outcome == "0"]
    assert any("submission sets (ITI-18 FindSubmissionSets)" in d for d in searches)
    assert any("associations (ITI-18 GetAssociations)" in d for d in searches)
    assert any("submission sets (ITI-18 GetSubmissionSets)" in d for d in searches)


def _with_submission_set(bundle: dict, **fields) -> dict:
    listing = bundle["entry"][0]["resource"]
    listing.update(fields)
    return bundle


def test_an_iti65_deposit_is_a_submission_set_and_a_repeat_makes_no_second(service, rng):
    actor, ins = professional(rng), make_ins(rng)
    token = service.token(actor)
    set_id = f"1.2.250.1.999.65.{rng.randint(1, 10**9)}"
    bundle = _with_submission_set(
        deposit_bundle(ins, actor.rpps, rng.randbytes(300), master_id=f"urn:oid:{_uid(rng)}"),
        date="2025-03-04T05:06:07+01:00",
        identifier=[{"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
                    {"use": "usual", "system": "urn:ietf:rfc:3986", "value": f"urn:oid:{set_id}"}],
        extension=[{"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId",
                    "valueIdentifier": {"value": "urn:oid:1.2.250.1.999.5"}}])
    assert service.call("POST", "/", token, bundle).status == 201
    assert service.call("POST", "/", token, bundle).status == 200  # the same deposit again: nothing new
    caller = Caller(service, professional(rng), ins)
    [found] = _find(caller)
    assert (found["uniqueId"], found["sourceId"], found["submissionTime"]) == (set_id, "1.2.250.1.999.5",
                                                                              "20250304040607")
    assert found["isSubmissionSet"] and found["patientId"] == messages.cx(ins)
    # a List without identifier nor date: the registry's uniqueId (2.25.…) and the time it received it
    before = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    reply = service.call("POST", "/", token, multi_document_bundle(ins, actor.rpps, [b"one", b"two"]))
    assert reply.status == 201
    [made] = _find(caller, **{"$XDSSubmissionSetSubmissionTimeFrom": [before]})
    assert made["uniqueId"].startswith("2.25.") and made["sourceId"] is None and made["contentType"] is None
    members = _has_members(_ok(caller, messages.get_associations(made["id"])))
    documents = {f"urn:uuid:{uuid.UUID(d)}" for d in locations(reply.json(), "DocumentReference")}
    assert members == {(made["id"], d) for d in documents}
    # a submission set's uniqueId names one submission set: reused for new documents, the deposit is refused
    reused = _with_submission_set(deposit_bundle(ins, actor.rpps, b"three"),
                                  identifier=[{"use": "usual", "value": f"urn:oid:{set_id}"}])
    assert service.call("POST", "/", token, reused).status == 409
    assert len(_find(caller)) == 2


def test_an_iti41_repeat_makes_no_second_submission_set_and_a_reused_unique_id_is_refused(service, rng):
    caller = Caller(service, professional(rng), make_ins(rng))
    uid, set_id = _uid(rng), f"1.2.250.1.999.41.{rng.randint(1, 10**9)}"
    for _ in range(2):
        assert _status(caller.deposit((uid, b"once"), submission_set_id=set_id)[1]) == ("Success", [])
    assert [s["uniqueId"] for s in _find(caller)] == [set_id]
    status, answer = caller.deposit((_uid(rng), b"another"), submission_set_id=set_id)
    assert status == 200 and _status(answer) == ("Failure", ["XDSDuplicateUniqueIdInRegistry"])
    assert [s["uniqueId"] for s in _find(caller)] == [set_id]
    assert len(caller.find()) == 1  # the refused deposit stored nothing


def test_a_masked_document_hides_its_submission_set_and_its_has_member(service, rng):
    author = Caller(service, professional(rng), make_ins(rng))
    alone, kept, hidden = _uid(rng), _uid(rng), _uid(rng)
    author.deposit((alone, b"alone"), submission_time="20250401080000")
    author.deposit((kept, b"kept"), (hidden, b"hidden"), submission_time="20250402080000")
    entries = _entry_uuids(author, alone, kept, hidden)
    by_author = _find(author)
    [set_alone] = [s["id"] for s in by_author if s["submissionTime"] == "20250401080000"]
    [set_both] = [s["id"] for s in by_author if s["submissionTime"] == "20250402080000"]
    _mask(service, author.ins, entries[alone])
    _mask(service, author.ins, entries[hidden])
    reader = Caller(service, professional(rng), author.ins)
    assert [s["id"] for s in _find(reader)] == [set_both]          # every document of set_alone is hidden
    assert _has_members(_ok(reader, messages.get_associations(set_alone, set_both))) == {(set_both, entries[kept])}
    assert _has_members(_ok(reader, messages.get_associations(entries[hidden], entries[alone]))) == set()
    answer = _ok(reader, messages.get_submission_sets(entries[alone], entries[hidden]))
    assert _sets(answer) == [] and _has_members(answer) == set()
    answer = _ok(reader, messages.get_documents_and_associations(entries[kept], entries[hidden]))
    assert [e.get("id") for e in answer.iter(q("rim", "ExtrinsicObject"))] == [entries[kept]]
    assert _has_members(answer) == {(set_both, entries[kept])}
    answer = _ok(reader, messages.stored_query(terms.FIND_SUBMISSION_SETS, {
        "$XDSSubmissionSetPatientId": [f"'{messages.cx(author.ins)}'"],
        "$XDSSubmissionSetStatus": [f"('{terms.APPROVED}')"]}, "ObjectRef"))
    assert [r.get("id") for r in answer.iter(q("rim", "ObjectRef"))] == [set_both]
    # the author (who may see what the patient masked) still sees both, with all their members
    assert {s["id"] for s in _find(author)} == {set_alone, set_both}
    assert _has_members(_ok(author, messages.get_associations(set_alone, set_both))) == {
        (set_alone, entries[alone]), (set_both, entries[kept]), (set_both, entries[hidden])}


def test_a_blocked_professional_and_a_closed_record_find_nothing_and_the_refusal_is_in_the_history(service, rng):
    author = Caller(service, professional(rng), make_ins(rng))
    uid = _uid(rng)
    author.deposit((uid, b"report"))
    entry = _entry_uuids(author, uid)[uid]
    reader = Caller(service, professional(rng), author.ins)
    [found] = _find(reader)
    me = service.token(patient(author.ins))
    assert service.call("POST", "/Patient/$block", me, {"resourceType": "Parameters", "parameter": [
        {"name": "professional", "valueIdentifier": {"value": reader.actor.rpps}}]}).status == 200
    assert _find(reader) == [] and reader.find() == []                      # exactly where FindDocuments is
    assert _has_members(_ok(reader, messages.get_associations(found["id"], entry))) == set()
    assert _sets(_ok(reader, messages.get_submission_sets(entry))) == []
    refused = [d for kind, outcome, d in _history(service, author.ins) if kind == "search-type" and outcome == "4"]
    assert len(refused) == 4 and all("blocked by the patient" in d for d in refused)
    assert [s["id"] for s in _find(author)] == [found["id"]]              # others are not blocked
    assert service.call("POST", "/Patient/$opt-out", me).status == 200
    assert _find(author) == [] and author.find() == []
    assert _has_members(_ok(author, messages.get_associations(found["id"]))) == set()


def test_malformed_queries_have_their_xds_error_codes_never_a_500(service, rng):
    caller = Caller(service, professional(rng), make_ins(rng))
    patient_slot = {"$XDSSubmissionSetPatientId": [f"'{messages.cx(caller.ins)}'"]}
    status_slot = {"$XDSSubmissionSetStatus": [f"('{terms.APPROVED}')"]}
    cases = [
        (messages.stored_query(terms.FIND_SUBMISSION_SETS, status_slot), "XDSStoredQueryMissingParam"),
        (messages.stored_query(terms.FIND_SUBMISSION_SETS, patient_slot), "XDSStoredQueryMissingParam"),
        (messages.stored_query(terms.FIND_SUBMISSION_SETS, {**patient_slot, "$XDSSubmissionSetStatus": [
            "('urn:x:unknown')"]}), "XDSStoredQueryMissingParam"),
        (messages.find_submission_sets(caller.ins, **{"$XDSDocumentEntryTypeCode": ["('x^^y')"]}), "XDSRegistryError"),
        (messages.find_submission_sets(caller.ins, **{"$XDSSubmissionSetSubmissionTimeFrom": ["2025-01-01"]}),
         "XDSRegistryError"),
        (messages.find_submission_sets(caller.ins, **{"$XDSSubmissionSetSubmissionTimeTo": ["20251301"]}),
         "XDSRegistryError"),
        (messages.stored_query(terms.FIND_SUBMISSION_SETS, {**status_slot, "$XDSSubmissionSetPatientId": [
            "'not-a-cx'"]}), "XDSRegistryError"),
        (messages.find_submission_sets(caller.ins, **{"$XDSSubmissionSetSubmissionTimeFrom": ["20250101",
                                                                                              "20250102"]}),
         "XDSStoredQueryParamNumber"),
        (messages.find_submission_sets(caller.ins, **{"$XDSSubmissionSetContentType": ["('nocode')"]}),
         "XDSRegistryError"),
        (messages.find_submission_sets(caller.ins, **{"$XDSSubmissionSetAuthorPerson": ["'8%'"]}), "XDSRegistryError"),
        (messages.find_submission_sets(make_ins(rng)), "XDSPatientIdDoesNotMatch"),
        (messages.stored_query(terms.GET_ASSOCIATIONS, {}), "XDSStoredQueryMissingParam"),
        (messages.stored_query(terms.GET_SUBMISSION_SETS, {}), "XDSStoredQueryMissingParam"),
    ]
    for body, code in cases:
        answer = _query(caller, body)
        assert _status(answer) == ("Failure", [code]), (code, etree.tostring(answer)[:500])
    # entryUUIDs that name nothing, or are not UUIDs: an empty Success
    assert _has_members(_ok(caller, messages.get_associations(f"urn:uuid:{uuid.uuid4()}", "not-a-uuid"))) == set()


@pytest.fixture(scope="module")
def xds_schema():
    from tests import schemas
    return schemas.load(schemas.XDS)


def test_the_answers_follow_the_official_schemas_leaf_class_and_object_ref(service, rng, xds_schema):
    caller = Caller(service, professional(rng), make_ins(rng))
    first, second = _uid(rng), _uid(rng)
    caller.deposit((first, b"one"), (second, b"two"))
    entries = _entry_uuids(caller, first, second)
    [found] = _find(caller)
    queries = [messages.find_submission_sets(caller.ins), messages.get_associations(found["id"]),
               messages.get_submission_sets(entries[first]),
               messages.get_documents_and_associations(entries[first], entries[second]),
               messages.find_submission_sets(caller.ins, **{"$XDSSubmissionSetAuthorPerson": ["'8%'"]})]
    for query in queries:
        for return_type in ("LeafClass", "ObjectRef"):
            query.find(q("query", "ResponseOption")).set("returnType", return_type)
            answer = _query(caller, query)
            _valid(xds_schema, answer)
            if return_type == "ObjectRef":
                assert answer.find(f".//{q('rim', 'RegistryPackage')}") is None
                assert answer.find(f".//{q('rim', 'Association')}") is None


def _as_an_older_version_left_it(service: Service) -> None:
    """The database before submission sets: no table, no column."""
    if service.db_url is None:
        with sqlite3.connect(service.data_dir / "records.sqlite3") as connection:
            for sql in ("DROP INDEX documents_without_submission_set",
                        "ALTER TABLE documents DROP COLUMN submission_set_id",
                        "DROP TABLE submission_sets"):
                connection.execute(sql)
    else:
        with psycopg.connect(service.db_url) as connection:
            connection.execute("ALTER TABLE documents DROP COLUMN submission_set_id")
            connection.execute("DROP TABLE submission_sets")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_older_database_gets_a_submission_set_per_deposit_at_start(backend, postgres, tmp_path, rng):
    database = postgres.create_database(f"sets_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    service = Service(tmp_path, database).start()
    try:
        actor, ins = professional(rng), make_ins(rng)
        before = int(time.time()) - 1
        reply = service.call("POST", "/", service.token(actor), multi_document_bundle(ins, actor.rpps, [b"1", b"2"]))
        pair = {f"urn:uuid:{uuid.UUID(d)}" for d in locations(reply.json(), "DocumentReference")}
        caller = Caller(service, actor, ins)
        uid = _uid(rng)
        caller.deposit((uid, b"3"), submission_time="20200101000000")
        single = _entry_uuids(caller, uid)[uid]
        after = int(time.time()) + 1
        service.stop()
        _as_an_older_version_left_it(service)
        service.start()
        assert "brought 3 documents written by an older version up to date" in service.log_tail()
        reader = Caller(service, professional(rng), ins)
        found = _find(reader)
        assert len(found) == 2 and all(s["uniqueId"].startswith("2.25.") and s["isSubmissionSet"] for s in found)
        for s in found:  # the time the registry received the deposit
            moment = datetime.strptime(s["submissionTime"], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc).timestamp()
            assert before <= moment <= after
        members = _has_members(_ok(reader, messages.get_associations(*(s["id"] for s in found))))
        by_set: dict[str, set[str]] = {}
        for source, target in members:
            by_set.setdefault(source, set()).add(target)
        assert sorted(by_set.values(), key=len) == [{single}, pair]
        # new deposits go on as before, and the next start has nothing left to do
        assert _status(caller.deposit((_uid(rng), b"4"))[1]) == ("Success", [])
        assert len(_find(reader)) == 3
        service.stop()
        service.start()
        assert service.log_tail().count("written by an older version") == 1
        assert {s["id"] for s in found} <= {s["id"] for s in _find(reader)}
    finally:
        service.stop()

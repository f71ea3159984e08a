"""The driver's answer checks: what a search, a retrieve and a deposit must answer to count as served."""

import hashlib

import orjson
import pytest

from load.checks import (CreatedDocuments, Deposited, Outcome, WrongAnswer, check_deposit, check_history,
                         check_retrieve, check_search)
from load.requests import DocumentBytes
from segur.identifiers import INS_NIR_SYSTEM

ME, OTHER = "295109912611193", "292051305508777"


def _document(doc_id: str, subject: dict | None, status: str = "current") -> dict:
    # the check compares masterIdentifiers (what both fronts name a document by); the tests use one value for both
    document = {"resourceType": "DocumentReference", "id": doc_id, "masterIdentifier": {"value": doc_id},
                "status": status}
    if subject is not None:
        document["subject"] = subject
    return document


def _searchset(*documents: dict, next_link: bool = False) -> bytes:
    links = [{"relation": "self", "url": "x"}] + ([{"relation": "next", "url": "y"}] if next_link else [])
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "link": links,
                         "entry": [{"resource": d, "search": {"mode": "match"}} for d in documents]})


def _by_identifier(ins: str) -> dict:
    return {"identifier": {"system": INS_NIR_SYSTEM, "value": ins}}


def test_a_search_answer_of_the_patients_documents_is_right():
    check_search(_searchset(_document("a", _by_identifier(ME)),
                            _document("b", {"reference": f"Patient?identifier={INS_NIR_SYSTEM}|{ME}"}),
                            _document("c", {"reference": f"Patient?identifier=|{ME}"}),
                            _document("d", {"identifier": {"value": ME}})), ME)
    check_search(_searchset(), ME)  # an empty record


def test_every_subject_form_the_service_accepts_is_read_as_the_patient():
    """What other clients deposited is stored as they wrote it: URL-encoded or absolute conditional references,
    a contained Patient."""
    contained = _document("e", {"reference": "#p"})
    contained["contained"] = [{"resourceType": "Patient", "id": "p", "identifier": [
        {"system": INS_NIR_SYSTEM, "value": ME}]}]
    check_search(_searchset(
        _document("a", {"reference": f"Patient?identifier=urn%3Aoid%3A1.2.250.1.213.1.4.8%7C{ME}"}),
        _document("b", {"reference": f"https://dmp.example.fr/fhir/Patient?identifier={INS_NIR_SYSTEM}|{ME}"}),
        contained), ME)


@pytest.mark.parametrize("answer, kind", [
    (_searchset(_document("a", _by_identifier(ME)), _document("x", _by_identifier(OTHER))), "another patient"),
    (_searchset(_document("x", None)), "without a patient identifier"),
    (_searchset(_document("x", {"reference": "Patient/123"})), "without a patient identifier"),
    (_searchset(_document("x", {"identifier": {"system": INS_NIR_SYSTEM}})), "without a patient identifier"),
    (_searchset(_document("a", _by_identifier(ME), status="superseded")), "not current"),
    (_searchset(_document("x", {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": ME}})),
     "without a patient identifier"),  # the same digits in another system (RPPS) are no INS
    (_searchset(_document("x", {"reference": f"Patient?identifier=urn:oid:1.2.250.1.71.4.2.1|{ME}"})),
     "without a patient identifier"),
    (_searchset(_document("x", {"reference": f"Patient?identifier={ME}"})), "without a patient identifier"),
    (_searchset({"resourceType": "Patient", "id": "p"}), "not a DocumentReference"),
    (orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": []}), "not a searchset"),
    (orjson.dumps({"resourceType": "OperationOutcome"}), "not a searchset"),
    (b"{}", "not a searchset"),
    (b"[]", "not a JSON object"),
    (b"<html>ok</html>", "not JSON"),
    (orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": {"resource": {}}}), "not a list"),
])
def test_a_wrong_search_answer_is_named_by_its_kind(answer, kind):
    with pytest.raises(WrongAnswer) as raised:
        check_search(answer, ME)
    assert kind in str(raised.value) and str(raised.value).startswith("wrong answer: search: ")
    assert repr(raised.value) == str(raised.value)  # what Locust's failures table shows, without ids


def test_a_complete_search_answer_lists_the_documents_it_must():
    answer = _searchset(_document("a", _by_identifier(ME)))
    check_search(answer, ME, frozenset({"a"}))
    with pytest.raises(WrongAnswer, match="missing"):
        check_search(answer, ME, frozenset({"a", "b"}))
    check_search(_searchset(_document("a", _by_identifier(ME)), next_link=True), ME, frozenset({"a", "b"}))  # paged


def test_created_documents_follow_the_dmp_visibility_rules():
    created = CreatedDocuments()
    created.created(ME, "a")
    created.created(ME, "b")
    created.created(ME, "c")
    created.masking("b")
    created.deleting("c")
    created.masking("unknown")  # a document this run did not create: nothing to forget
    assert created.expected(ME, by_patient=True) == {"a", "b"}      # the patient sees masked documents
    assert created.expected(ME, by_patient=False) == {"a"}         # professionals do not
    created.blocking(ME, "10003456789")
    assert created.expected(ME, False, "10003456789") == frozenset()          # the blocked professional
    assert created.expected(ME, False, "10101010101") == {"a"}                # another professional still sees it
    assert created.expected(ME, by_patient=False) == frozenset() and created.expected(OTHER, True) == frozenset()


def test_a_retrieve_must_answer_the_bytes_deposited():
    documents = DocumentBytes(block_bytes=1 << 16)
    data = documents.content("urn:oid:1.9", 5000)
    deposited = Deposited(5000, hashlib.sha256(data).hexdigest(), "urn:oid:1.9")
    check_retrieve(data, deposited, documents.content)
    check_retrieve(b"anything", None, documents.content)            # nothing known: nothing checked
    check_retrieve(data, Deposited(5000, deposited.sha256, "other-id"), documents.content)  # the hash decides
    with pytest.raises(WrongAnswer, match="size"):
        check_retrieve(data[:-1], deposited, documents.content)
    with pytest.raises(WrongAnswer, match="bytes"):
        check_retrieve(data[:-1] + b"x", deposited, documents.content)
    with pytest.raises(WrongAnswer, match="bytes"):
        check_retrieve(documents.content("urn:oid:1.8", 5000), deposited, documents.content)


def _response(*locations: str | None, status: str = "201 Created") -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": [
        {"response": {"status": status, **({"location": loc} if loc else {})}} for loc in locations]})


def test_a_deposit_answer_names_its_locations():
    answer = check_deposit(_response("List/l/_history/1", "DocumentReference/d/_history/1", "Binary/d"), 3)
    assert (answer.document, answer.binary, answer.created) == ("d", "Binary/d", True)
    assert not check_deposit(_response(None, "DocumentReference/d", "Binary/d", status="200 OK"), 3).created


@pytest.mark.parametrize("answer, kind", [
    (_response("List/l", None, "Binary/d"), "no DocumentReference location"),
    (_response("List/l", "DocumentReference/", "Binary/d"), "no DocumentReference location"),
    (_response("List/l", "DocumentReference/d", None), "no Binary location"),
    (_response("DocumentReference/d", "Binary/d"), "one response entry per request entry"),
    (orjson.dumps({"resourceType": "OperationOutcome", "issue": []}), "not a transaction-response"),
    (b"", "not JSON"),
])
def test_a_wrong_deposit_answer_is_named_by_its_kind(answer, kind):
    with pytest.raises(WrongAnswer, match=kind):
        check_deposit(answer, 3)


def test_only_an_ok_outcome_is_true():
    assert Outcome.OK and not Outcome.FAILED and not Outcome.WRONG


def _history(*about: str) -> bytes:
    events = [{"resourceType": "AuditEvent", "id": str(i),
               "entity": [{"what": {"identifier": {"system": INS_NIR_SYSTEM, "value": ins}}},
                          {"what": {"reference": "DocumentReference/x"}}]} for i, ins in enumerate(about)]
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": e} for e in events]})


def test_an_access_history_must_be_about_the_patient_only():
    check_history(_history(ME, ME), ME)
    check_history(_history(), ME)  # nobody read the record yet
    with pytest.raises(WrongAnswer, match="another patient"):
        check_history(_history(ME, OTHER), ME)
    with pytest.raises(WrongAnswer, match="not an AuditEvent"):
        check_history(_searchset(_document("a", _by_identifier(ME))), ME)
    with pytest.raises(WrongAnswer):
        check_history(b"[]", ME)


def test_td02_in_fhir_says_whether_the_record_is_open_and_the_caller_authorised():
    from load.checks import check_patient

    def answer(*patients):
        return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": len(patients),
                             "entry": [{"resource": p} for p in patients]})

    def patient(ins, **more):
        return {"resourceType": "Patient", "identifier": [{"system": INS_NIR_SYSTEM, "value": ins}], **more}
    extension = "https://segur-loadsim.example/fhir/StructureDefinition/dmp-authorisation"
    assert check_patient(answer(patient(ME, active=True)), ME) == (True, True)
    assert check_patient(answer(), ME) == (False, False)                       # no open record (PDSm4DMP)
    assert check_patient(answer(patient(ME, active=False)), ME) == (False, False)
    assert check_patient(answer(patient(ME, extension=[{"url": extension, "valueCode": "INTERDIT"}])), ME) == (True, False)
    with pytest.raises(WrongAnswer, match="another INS"):
        check_patient(answer(patient(OTHER)), ME)
    with pytest.raises(WrongAnswer):
        check_patient(orjson.dumps({"resourceType": "Bundle", "type": "transaction-response"}), ME)


def test_a_later_visit_expects_only_what_was_created_since():
    created = CreatedDocuments()
    created.created(ME, "old", at=100.0)
    created.created(ME, "new", at=200.0)
    created.created(ME, "unknown")
    assert created.expected(ME, False, since=150.0) == {"new", "unknown"}
    assert created.expected(ME, False) == {"old", "new", "unknown"}

"""ITI-67: every search parameter, matching and not matching, each token form, each date precision and
prefix, AND across repeats and OR within a comma list, on both back ends (see ``search_record`` for the
four documents searched)."""

from __future__ import annotations

import pytest

from record_documents import patient, professional
from search_record import (A03, CONFIDENTIALITY, FORMAT, LOINC, MASKED, RFC3986, SNOMED, VISIBILITY, found, q,
                           shared_record)

ALL = {"d1", "d2", "d3", "d4"}

TOKEN_CASES = [
    # category: each token form
    (f"category={A03}|10", {"d1"}), (f"category={A03}|11", {"d2"}), (f"category={A03}|99", set()),
    ("category=10", {"d1"}), (f"category={A03}|", {"d1", "d2"}), ("category=|10", set()),
    ("category=x|10", set()),
    (f"category:not={A03}|10", {"d2", "d3", "d4"}), ("category:missing=true", {"d3", "d4"}),
    ("category:missing=false", {"d1", "d2"}),
    # type (the indexed column for plain forms, the token table for modifiers)
    (f"type={LOINC}|11488-4", {"d1"}), ("type=11502-2", {"d2"}), (f"type={LOINC}|", ALL), ("type=|11488-4", set()),
    (f"type={LOINC}|60591-5", set()), (f"type:not={LOINC}|11488-4", {"d2", "d3", "d4"}),
    ("type:missing=true", set()), ("type:missing=false", ALL),
    # status
    ("status=current", {"d1", "d3", "d4"}), ("status=superseded", {"d2"}),
    ("status=http://hl7.org/fhir/document-reference-status|superseded", {"d2"}),
    ("status=entered-in-error", set()), ("status:not=current", {"d2"}), ("status:missing=true", set()),
    # security-label: deposited labels, and the patient's mask read live
    (f"security-label={CONFIDENTIALITY}|N", {"d1"}), (f"security-label={CONFIDENTIALITY}|V", set()),
    (f"security-label={MASKED}", {"d4"}), (f"security-label={VISIBILITY}|{MASKED}", {"d4"}),
    (f"security-label={VISIBILITY}|", {"d4"}), (f"security-label=|{MASKED}", set()),
    (f"security-label:not={VISIBILITY}|{MASKED}", {"d1", "d2", "d3"}),
    ("security-label:missing=true", {"d2", "d3"}), ("security-label:missing=false", {"d1", "d4"}),
    # context.facilityType, context.practiceSetting, context.event, content.format
    (f"facility={SNOMED}|F1", {"d1"}), (f"facility={SNOMED}|000000", set()), ("facility=F2", {"d2"}),
    (f"setting={SNOMED}|S2", {"d2"}), (f"setting={SNOMED}|000000", set()), ("setting:missing=true", {"d3", "d4"}),
    (f"event={SNOMED}|E3", {"d2"}), (f"event={SNOMED}|000000", set()), (f"event:not={SNOMED}|E1", {"d2", "d3", "d4"}),
    (f"format={FORMAT}|fmt-a", {"d1"}), (f"format={FORMAT}|urn:nothing", set()), (f"format={FORMAT}|", {"d1", "d2"}),
    # identifier: masterIdentifier or identifier
    (f"identifier={RFC3986}|urn:oid:1.1.1", {"d1"}), (f"identifier={RFC3986}|urn:oid:9.9.9.9.9", set()),
    ("identifier=|local-7", {"d2"}), ("identifier=local-7", {"d2"}), (f"identifier={RFC3986}|local-7", set()),
]

AND_OR_CASES = [
    (f"category={A03}|10,{A03}|11", {"d1", "d2"}),  # comma: OR
    (f"category={A03}|10&category={A03}|11", set()),  # repeat: AND
    (f"event={SNOMED}|E2&event={SNOMED}|E3", {"d2"}),  # AND of two values one document has
    (f"event={SNOMED}|E1&event={SNOMED}|E2", set()),
    (f"type={LOINC}|11488-4,{LOINC}|11502-2", {"d1", "d2"}),
    (f"type={LOINC}|11488-4&type={LOINC}|11502-2", set()),
    ("status=current,superseded", ALL), ("status=current&status=superseded", set()),
    ("status=current,superseded&status=superseded", {"d2"}),
    (f"category={A03}|10&type={LOINC}|11502-2", set()),  # different parameters: AND
    (f"category={A03}|10,{A03}|11&type={LOINC}|11502-2", {"d2"}),
    ("date=ge2025&date=lt2026", {"d1", "d2"}), ("date=lt2025-01-01,gt2026-01-01", {"d3", "d4"}),
]

DATE_CASES = [
    # precision: year, month, day, minute (no zone: UTC), second, fraction, another zone
    ("date=2025", {"d1", "d2"}), ("date=2025-01", {"d1"}), ("date=2025-01-22", {"d1"}),
    ("date=2025-01-22T10:00", {"d1"}), ("date=2025-01-22T10:00:00Z", {"d1"}), ("date=2025-01-22T10:00:01Z", set()),
    ("date=2025-01-22T10:00:00.000Z", {"d1"}), ("date=" + q("2025-01-22T11:00:00+01:00"), {"d1"}),
    ("date=2025-01-22T11:00:00+01:00", {"d1"}),  # '+' sent unescaped arrives as a space: still the zone
    ("date=2025-01-21", set()),
    # every prefix
    ("date=eq2025", {"d1", "d2"}), ("date=ne2025", {"d3", "d4"}), ("date=gt2025", {"d3"}), ("date=lt2025", {"d4"}),
    ("date=ge2025", {"d1", "d2", "d3"}), ("date=le2025", {"d1", "d2", "d4"}), ("date=sa2025", {"d3"}),
    ("date=eb2025", {"d4"}), ("date=ge2025-06-03T08:30:00Z", {"d2", "d3"}), ("date=gt2025-06-03T08:30:00Z", {"d3"}),
    ("date=le2024-12-31T23:59:59Z", {"d4"}), ("date=lt2024-12-31T23:59:59Z", set()),
    ("date:missing=true", set()), ("date:missing=false", ALL),
    # period (a Period: d1 2025-01-10..2025-01-20, d2 from 2025-06-01, open): a range against a range
    ("period=lt1990-01-01", set()), ("period=2025-01", {"d1"}), ("period=2025-01-15", set()),
    ("period=ge2025-01-15", {"d1", "d2"}), ("period=sa2025-05", {"d2"}), ("period=eb2025-05", {"d1"}),
    ("period=gt2030", {"d2"}), ("period=lt2025-01-10", set()), ("period=le2025-01-10", {"d1"}),
    ("period=ne2025-01", {"d2"}), ("period:missing=true", {"d3", "d4"}),
    # creation (content.attachment.creation: d1 2025-01-21T09:00:00Z to the second, d2 the day 2025-06-02)
    ("creation=lt1990-01-01", set()), ("creation=2025-06-02", {"d2"}), ("creation=2025-06", {"d2"}),
    ("creation=2025-01-21", {"d1"}), ("creation=2025-01-21T09:00:00Z", {"d1"}),
    ("creation=eq2025-06-02T12:00Z", set()), ("creation=ge2025-06-02T12:00Z", {"d2"}),
    ("creation=sa2025-01-21T09:00:00Z", {"d2"}), ("creation:missing=true", {"d3", "d4"}),
]


@pytest.mark.parametrize("query,expected", TOKEN_CASES, ids=[c[0][:70] for c in TOKEN_CASES])
def test_token_parameters(service, query, expected):
    assert found(service, shared_record(service), query) == expected


@pytest.mark.parametrize("query,expected", AND_OR_CASES, ids=[c[0][:70] for c in AND_OR_CASES])
def test_repeats_are_and_comma_lists_are_or(service, query, expected):
    assert found(service, shared_record(service), query) == expected


@pytest.mark.parametrize("query,expected", DATE_CASES, ids=[c[0][:70] for c in DATE_CASES])
def test_date_parameters_at_every_precision_and_prefix(service, query, expected):
    assert found(service, shared_record(service), query) == expected


def test_date_approximately(service):
    record = shared_record(service)
    near = found(service, record, "date=ap2025-01-22")
    assert "d1" in near and "d3" not in near


def test_relatesto_and_id(service):
    record = shared_record(service)
    d1, d2, d3 = record.ids["d1"], record.ids["d2"], record.ids["d3"]
    assert found(service, record, f"relatesto=DocumentReference/{d2}") == {"d3"}
    assert found(service, record, f"relatesto={d2}") == {"d3"}
    assert found(service, record, f"relatesto={service.url}/DocumentReference/{d2}") == {"d3"}
    assert found(service, record, f"relatesto=DocumentReference/{d1}") == set()
    assert found(service, record, "relatesto:missing=false") == {"d3"}
    assert found(service, record, f"_id={d1}") == {"d1"}
    assert found(service, record, f"_id={d1},{d3}") == {"d1", "d3"}
    assert found(service, record, f"_id={d1}&_id={d3}") == set()
    assert found(service, record, "_id=00000000000000000000000000000000") == set()
    assert found(service, record, f"identifier={RFC3986}|{q(record.masters['d3'])}") == {"d3"}


def test_author_identifier(service, rng):
    record = shared_record(service)
    rpps = record.author.rpps
    assert found(service, record, f"author.identifier=urn:oid:1.2.250.1.71.4.2.1|8{rpps}") == ALL
    assert found(service, record, f"author:identifier={rpps}") == ALL
    other = professional(rng).rpps
    assert found(service, record, f"author.identifier=urn:oid:1.2.250.1.71.4.2.1|8{other}") == set()
    assert found(service, record, f"author.identifier=8{other},8{rpps}") == ALL
    assert found(service, record, f"author.identifier=8{other}&author.identifier=8{rpps}") == set()


def test_the_mask_is_searched_as_it_is_now(service, rng):
    """security-label reads the patient's current decision: masked after deposit, then unmasked."""
    record = shared_record(service)  # only to reuse its helpers on a record of this test's own
    from search_record import build_record
    own = build_record(service, rng)
    me = service.token(patient(own.ins))
    assert found(service, own, f"security-label={VISIBILITY}|{MASKED}", me) == {"d4"}
    assert service.call("POST", f"/DocumentReference/{own.ids['d1']}/$mask", me).status == 200
    assert found(service, own, f"security-label={VISIBILITY}|{MASKED}", me) == {"d1", "d4"}
    assert found(service, own, f"security-label={CONFIDENTIALITY}|N", me) == {"d1"}  # its other label stays
    assert service.call("POST", f"/DocumentReference/{own.ids['d4']}/$unmask", me).status == 200
    assert found(service, own, f"security-label={VISIBILITY}|{MASKED}", me) == {"d1"}
    assert record.ins != own.ins


def test_filters_keep_the_visibility_rules(service, rng):
    """A filter never widens what a professional may see: the masked d4 stays hidden from another one."""
    record = shared_record(service)
    other = service.token(professional(rng))
    assert found(service, record, f"security-label={MASKED}", other) == set()
    assert found(service, record, "date=eb2025", other) == set()
    assert found(service, record, f"category={A03}|10", other) == {"d1"}


BAD_VALUES = [
    ("category=", None), ("category=a,,b", "category"), ("category=|", "category"), ("category=a|b|c", "category"),
    ("category:text=x", "category:text"), ("category:missing=maybe", "category:missing"),
    ("date=2025-13", "date"), ("date=xx2025", "date"), ("date=2025-01-22T10", "date"), ("period=2025-02-30", "period"),
    ("creation=ge", "creation"), ("date:not=2025", "date:not"), ("status=gone", "status"),
    ("status=http://example.org|current", "status"), (f"type={LOINC}|0000-0", "type"),
    ("author.identifier=42", "author.identifier"), ("author.identifier=urn:oid:1.2.250.1.71.4.2.1|", "author.identifier"),
    ("_count=-1", "_count"), ("_count=abc", "_count"), ("_total=some", "_total"), ("_summary=everything", "_summary"),
    ("patient=Patient/1", "patient"), ("patient.identifier=urn:oid:1.2.250.1.213.1.4.8|", "patient.identifier"),
]


@pytest.mark.parametrize("query,name", [c for c in BAD_VALUES if c[1]], ids=[c[0][:60] for c in BAD_VALUES if c[1]])
def test_a_malformed_value_is_a_400_naming_its_parameter(service, rng, query, name):
    from fhir_validation import validate
    record = shared_record(service)
    reply = service.call("GET", record.path(query), service.token(patient(record.ins)))
    assert reply.status == 400, reply
    assert validate(reply.json()).issue[0].expression == [name]


def test_an_empty_value_is_left_out(service):
    record = shared_record(service)
    reply = service.call("GET", record.path("category="), service.token(patient(record.ins)))
    assert reply.status == 200 and record.names(reply.json()) == ALL
    assert "category" not in reply.json()["link"][0]["url"]


def test_two_patients_in_one_search(service, rng):
    from record_documents import make_ins
    record = shared_record(service)
    other = make_ins(rng)
    me = service.token(patient(record.ins))
    both = record.path(f"patient.identifier=urn:oid:1.2.250.1.213.1.4.8|{other}")  # AND: no document is both
    reply = service.call("GET", both, me)
    assert reply.status == 200 and "entry" not in reply.json()
    comma = f"/DocumentReference?patient.identifier={record.ins},{other}"
    assert service.call("GET", comma, me).status == 400

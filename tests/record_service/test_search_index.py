"""What a DocumentReference is indexed under at deposit (no service needed)."""

from __future__ import annotations

from record_service.codes import MASKED_FROM_PROFESSIONALS, VISIBILITY_SYSTEM
from record_service.search_dates import LATEST, value_range
from record_service.search_index import dates_of, tokens_of

RESOURCE = {
    "resourceType": "DocumentReference",
    "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3"},
    "identifier": [{"value": "local-7"}, {"system": "s"}],
    "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
    "category": [{"coding": [{"system": "c", "code": "10"}, {"code": "bare"}]}],
    "securityLabel": [{"coding": [{"system": "v3", "code": "N"}]},
                      {"coding": [{"system": VISIBILITY_SYSTEM, "code": MASKED_FROM_PROFESSIONALS}]}],
    "context": {"facilityType": {"coding": [{"system": "sct", "code": "F"}]},
                "practiceSetting": {"coding": [{"system": "sct", "code": "S"}]},
                "event": [{"coding": [{"system": "sct", "code": "E1"}]}, {"coding": [{"system": "sct", "code": "E2"}]}],
                "period": {"start": "2025-01-10"}},
    "content": [{"format": {"system": "fmt", "code": "a"}, "attachment": {"creation": "2025-06-02"}}],
    "relatesTo": [{"code": "replaces", "target": {"reference": "DocumentReference/abc",
                                                   "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:x"}}}],
}


def test_every_token_parameter_is_indexed_from_its_path():
    assert set(tokens_of(RESOURCE, None)) == {
        ("identifier", "urn:ietf:rfc:3986", "urn:oid:1.2.3"), ("identifier", "", "local-7"),
        ("type", "http://loinc.org", "11488-4"), ("category", "c", "10"), ("category", "", "bare"),
        ("security-label", "v3", "N"),  # the mask is read live from documents.masked, never indexed
        ("facility", "sct", "F"), ("setting", "sct", "S"), ("event", "sct", "E1"), ("event", "sct", "E2"),
        ("format", "fmt", "a"), ("relatesto", "", "abc"), ("relatesto:identifier", "urn:ietf:rfc:3986", "urn:x"),
    }


def test_the_replaced_document_is_indexed_even_when_named_by_identifier_only():
    assert ("relatesto", "", "resolved-id") in set(tokens_of({"resourceType": "DocumentReference"}, "resolved-id"))


def test_dates_are_ranges():
    assert set(dates_of(RESOURCE)) == {("period", value_range("2025-01-10")[0], LATEST),
                                       ("creation", *value_range("2025-06-02"))}


def test_values_of_the_wrong_shape_are_skipped_not_fatal():
    odd = {"category": "x", "securityLabel": [1, None, {"coding": "no"}], "context": [], "content": None,
           "identifier": {"system": 3, "value": "v"}, "relatesTo": [{"target": "x"}],
           "masterIdentifier": {"value": "x" * 600}}
    assert list(tokens_of(odd, None)) == [] and list(dates_of({"context": {"period": {"start": "nope"}}})) == []

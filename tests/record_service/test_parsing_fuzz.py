"""Fuzzing the parsers without a service, thousands of inputs a second: an ITI-65 Bundle or an ITI-67 query
string, however hostile, is either understood or refused with a 4xx ServiceError; never another exception
(which the service would answer 500)."""

from __future__ import annotations

import copy
import json
import urllib.parse
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from record_documents import json_paths
from record_service.bundles import parse_deposit
from record_service.document_search import SEARCH_PARAMETERS, document_search
from record_service.outcomes import ServiceError
from record_service.searches import Parameters

CASES = Path(__file__).parent / "cases"
# the richest shapes the field sends: contained authors, conditional subjects, a PATCH entry, charsets
SEEDS = [json.loads((CASES / name).read_text()) for name in (
    "02-subject-conditional-reference-minimal.json", "03-contained-author-deposit.json",
    "06-replace-with-patch-entry.json", "08-contenttype-with-charset.json")]
_HOSTILE_TEXT = st.sampled_from(["", " ", "\x00", "²", "١٢٣", "#", "#practitioner-author", "Patient?identifier=",
                                 "urn:oid:1.2.250.1.213.1.4.8|179069201204576", "9999-12-31T23:59:60-10:00",
                                 "0001-01-01T00:00:00+10:00", "DocumentReference/", "a" * 300, "text/plain; x"])
_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=20),
                  _HOSTILE_TEXT)
_json = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                    st.dictionaries(st.text(max_size=8) | st.sampled_from(
                                                        ["coding", "system", "code", "reference", "identifier",
                                                         "value", "part", "name", "resourceType", "id"]),
                                                        inner, max_size=3)), max_leaves=10)


@st.composite
def _mutated(draw):
    bundle = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in json_paths(bundle) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = bundle
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_json)
    return bundle


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bundle=_mutated())
def test_a_mutated_deposit_is_parsed_or_refused_with_a_4xx(bundle):
    try:
        parse_deposit(bundle, 1_000_000, 10)
    except ServiceError as refusal:
        assert 400 <= refusal.status < 500


_NAMES = st.sampled_from([*SEARCH_PARAMETERS, "_count", "_total", "_summary", "_cursor", "foo", "type:not",
                          "category:missing", "date:missing", "relatesto:identifier", "patient:identifier"])
_VALUES = st.one_of(_HOSTILE_TEXT, st.text(max_size=30), st.sampled_from(
    ["ge2026", "sa2026-06-12T10:00", "eb9999-12-31T23:59:59-14:00", "ap0001-01-01", "00000", "0" * 30 + "1",
     "http://loinc.org|11502-2", "|x", "x|", "a,b,,c", "true", "count", "accurate", "1.abc", "%00"]))


@settings(max_examples=3000, deadline=None)
@given(pairs=st.lists(st.tuples(_NAMES, _VALUES), max_size=6), strict=st.booleans())
def test_a_hostile_query_string_is_understood_or_refused_with_a_4xx(pairs, strict):
    query = urllib.parse.urlencode([("patient.identifier", "urn:oid:1.2.250.1.213.1.4.8|179069201204576"), *pairs])
    try:
        document_search(Parameters(query.encode()), strict)
    except ServiceError as refusal:
        assert 400 <= refusal.status < 500

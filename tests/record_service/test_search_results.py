"""ITI-67 answers: _count (clamped, 0 = only the total), _total and _summary=count, unsupported parameters
(left out of the self link, or refused under Prefer: handling=strict), the self and next links, POST
_search, and /metadata, on both back ends."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from record_documents import make_ins, multi_document_bundle, patient, professional
from search_record import A03, found, shared_record
from segur.identifiers import INS_NIR_SYSTEM

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MANY = 101  # one more than the largest page


def _link(bundle: dict, relation: str) -> str | None:
    return next((link["url"] for link in bundle.get("link", []) if link["relation"] == relation), None)


def _query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def _get(service, record, query: str, headers: dict | None = None):
    return service.call("GET", record.path(query), service.token(patient(record.ins)), headers=headers)


_MANY_BUILT: dict[str, str] = {}


def _many(service, rng) -> str:
    """A patient with MANY documents (deposited in two Bundles), built once per back end."""
    if service.url not in _MANY_BUILT:
        ins, author = make_ins(rng), professional(rng)
        for first, last in ((0, 51), (51, MANY)):
            bundle = multi_document_bundle(ins, author.rpps, [f"doc {i}".encode() for i in range(first, last)])
            reply = service.call("POST", "/", service.token(author), bundle)
            assert reply.status == 201, reply
        _MANY_BUILT[service.url] = ins
    return _MANY_BUILT[service.url]


def test_count_zero_answers_only_the_total(service):
    record = shared_record(service)
    reply = _get(service, record, "_count=0")
    assert reply.status == 200, reply
    bundle = reply.json()
    assert bundle["total"] == 4 and not bundle.get("entry") and _link(bundle, "next") is None


def test_summary_count_answers_only_the_total(service):
    record = shared_record(service)
    bundle = _get(service, record, f"_summary=count&category={A03}|10,{A03}|11").json()
    assert bundle["total"] == 2 and not bundle.get("entry")
    assert ("_summary", "count") in _query(_link(bundle, "self"))


def test_total_when_asked_and_only_then(service):
    record = shared_record(service)
    assert _get(service, record, "_total=accurate").json()["total"] == 4
    assert _get(service, record, "_total=estimate&status=current").json()["total"] == 3
    assert "total" not in _get(service, record, "_total=none").json()
    assert "total" not in _get(service, record, "").json()


def test_total_counts_every_page_and_next_links_keep_the_filters(service):
    record = shared_record(service)
    path = record.path(f"_total=accurate&_count=1&category={A03}|10,{A03}|11")
    seen, pages = [], 0
    me = service.token(patient(record.ins))
    while path:
        bundle = service.call("GET", path, me).json()
        assert bundle["total"] == 2
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        nxt = _link(bundle, "next")
        path = nxt[len(service.url):] if nxt else None
        pages += 1
        assert pages <= 3
    assert sorted(seen) == sorted([record.ids["d1"], record.ids["d2"]])


def test_count_over_the_page_size_is_clamped_with_a_next_link(service, rng):
    ins = _many(service, rng)
    me = service.token(patient(ins))
    path = f"/DocumentReference?patient.identifier={INS_NIR_SYSTEM}|{ins}&_count=500&_total=accurate"
    first = service.call("GET", path, me)
    assert first.status == 200, first
    bundle = first.json()
    assert len(bundle["entry"]) == 100 and bundle["total"] == MANY
    assert ("_count", "100") in _query(_link(bundle, "self"))  # what was applied, not what was asked
    rest = service.call("GET", _link(bundle, "next")[len(service.url):], me).json()
    assert len(rest["entry"]) == 1 and _link(rest, "next") is None
    assert service.call("GET", path.replace("_count=500", "_count=99999999999999999999999"), me).status == 200


def test_an_unsupported_parameter_is_left_out_of_the_self_link(service):
    record = shared_record(service)
    for extra in ("foo=bar", "author=Practitioner/1", "_summary=true", "_sort=-date", "_elements=id"):
        reply = _get(service, record, f"status=current&{extra}&category={A03}|10")
        assert reply.status == 200, (extra, reply)
        bundle = reply.json()
        assert record.names(bundle) == {"d1"}
        applied = _query(_link(bundle, "self"))
        assert [name for name, _ in applied] == ["patient.identifier", "status", "category"], extra


def test_prefer_handling_strict_refuses_an_unsupported_parameter_naming_it(service):
    from fhir_validation import validate
    record = shared_record(service)
    for prefer in ("handling=strict", "return=minimal, handling=strict", "HANDLING=STRICT"):
        for name in ("foo", "author", "_sort"):
            reply = _get(service, record, f"{name}=x", {"Prefer": prefer})
            assert reply.status == 400, reply
            issue = validate(reply.json()).issue[0]
            assert issue.code == "not-supported" and issue.expression == [name]
    lenient = _get(service, record, "foo=x", {"Prefer": "handling=lenient"})
    assert lenient.status == 200 and record.names(lenient.json()) == {"d1", "d2", "d3", "d4"}
    assert _get(service, record, f"category={A03}|10", {"Prefer": "handling=strict"}).status == 200


def test_the_self_link_is_the_request_when_everything_applied(service):
    record = shared_record(service)
    query = f"status=current&category={A03}|10&date=ge2025-01&_count=5"
    bundle = _get(service, record, query).json()
    assert _link(bundle, "self") == f"{service.url}{record.path(query)}"


POST_QUERIES = [
    "status=current",
    f"category={A03}|10,{A03}|11&status=current,superseded",
    "date=" + quote("ge2025-01-22T11:00:00+01:00", safe="") + "&date=lt2026",
    "period=ge2025-01-15&_count=1&_total=accurate",
    "foo=bar&type=http://loinc.org|11488-4",
]


@pytest.mark.parametrize("query", POST_QUERIES)
def test_post_search_answers_like_the_get(service, query):
    record = shared_record(service)
    me = service.token(patient(record.ins))
    got = service.call("GET", record.path(query), me).json()
    form = f"patient.identifier={quote(INS_NIR_SYSTEM + '|' + record.ins, safe='')}&{query}".encode()
    posted = service.call("POST", "/DocumentReference/_search", me, form, headers=FORM)
    assert posted.status == 200, posted
    body = posted.json()
    assert [e["resource"]["id"] for e in body["entry"]] == [e["resource"]["id"] for e in got["entry"]]
    assert body.get("total") == got.get("total")
    assert _query(_link(body, "self")) == _query(_link(got, "self"))  # a GET URL stating what was applied
    assert (_link(body, "next") is None) == (_link(got, "next") is None)


def test_post_search_takes_url_parameters_too(service):
    record = shared_record(service)
    me = service.token(patient(record.ins))
    posted = service.call("POST", f"/DocumentReference/_search?category={A03}|10", me,
                          f"patient.identifier={INS_NIR_SYSTEM}|{record.ins}".encode(), headers=FORM)
    assert posted.status == 200 and record.names(posted.json()) == {"d1"}


def test_post_search_refuses_other_bodies(service):
    record = shared_record(service)
    me = service.token(patient(record.ins))
    json_body = service.call("POST", "/DocumentReference/_search", me, {"patient.identifier": record.ins})
    assert json_body.status == 415
    huge = service.call("POST", "/DocumentReference/_search", me, b"foo=" + b"x" * 70_000, headers=FORM)
    assert huge.status == 413
    assert service.call("POST", "/DocumentReference/_search", None, b"", headers=FORM).status == 401
    missing = service.call("POST", "/DocumentReference/_search", me, b"status=current", headers=FORM)
    assert missing.status == 400 and b"patient.identifier" in missing.body


def test_total_of_a_blocked_professional_is_zero(service, rng):
    record = shared_record(service)
    assert found(service, record, "_summary=count") == set()
    blocked = professional(rng)
    me = service.token(patient(record.ins))
    assert service.call("POST", "/Patient/$block", me, {"resourceType": "Parameters", "parameter": [
        {"name": "professional", "valueIdentifier": {"value": blocked.rpps}}]}).status == 200
    bundle = service.call("GET", record.path("_summary=count"), service.token(blocked)).json()
    assert bundle["total"] == 0


def test_metadata_states_every_search_parameter_with_its_type(service):
    from record_service.document_search import SEARCH_PARAMETERS
    statement = service.call("GET", "/metadata").json()
    document = next(r for r in statement["rest"][0]["resource"] if r["type"] == "DocumentReference")
    stated = {p["name"]: p["type"] for p in document["searchParam"]}
    assert stated == {**SEARCH_PARAMETERS, "_count": "number"}
    assert {"period": "date", "relatesto": "reference", "category": "token"}.items() <= stated.items()
    assert "_search" in document["documentation"] and "foo" not in stated

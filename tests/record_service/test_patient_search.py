"""TD0.2 on the FHIR front, ``GET /Patient?identifier=SYSTEM|INS``, on a running service (SQLite and PostgreSQL):
the answer's shape, the patient states, refusals, and agreement with the XDS front's ``/xds/td02``."""

from __future__ import annotations

import pytest
from lxml import etree

from record_service.patient_search import AUTHORISATION_EXTENSION
from record_service.xds import terms
from record_service.xds.terms import NS, q
from segur.identifiers import INS_NIR_SYSTEM, INS_NIR_TEST_SYSTEM
from tests.record_service.fhir_validation import validate
from tests.record_service.record_documents import make_ins, make_rpps, patient, professional
from tests.record_service.xds.test_front import Caller


def _td02(service, token: str | None, query: str, headers: dict | None = None):
    return service.call("GET", f"/Patient?{query}", token, headers=headers)


def _ask(service, actor, ins: str, system: str = INS_NIR_SYSTEM) -> dict:
    reply = _td02(service, service.token(actor), f"identifier={system}|{ins}")
    assert reply.status == 200, reply
    assert reply.headers["content-type"].startswith("application/fhir+json")
    bundle = reply.json()
    validate(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == len(bundle.get("entry", []))
    return bundle


def _authorisation(bundle: dict) -> str | None:
    """The professional's authorisation carried by the one Patient, or None if there is no Patient."""
    if not bundle.get("entry"):
        return None
    codes = [e["valueCode"] for e in bundle["entry"][0]["resource"].get("extension", [])
             if e["url"] == AUTHORISATION_EXTENSION]
    return codes[0] if codes else ""


def _block(service, ins: str, rpps: str, blocked: bool = True) -> None:
    operation = "$block" if blocked else "$unblock"
    assert service.call("POST", f"/Patient/{operation}", service.token(patient(ins)), {
        "resourceType": "Parameters", "parameter": [{"name": "professional", "valueIdentifier": {
            "system": "urn:oid:1.2.250.1.71.4.2.1", "value": "8" + rpps}}]}).status == 200


def _opt_out(service, ins: str) -> None:
    assert service.call("POST", "/Patient/$opt-out", service.token(patient(ins))).status == 200


def _refused(reply, status: int = 400, code: str | None = None) -> dict:
    assert reply.status == status, reply
    outcome = reply.json()
    validate(outcome)
    assert outcome["resourceType"] == "OperationOutcome"
    if code is not None:
        assert outcome["issue"][0]["code"] == code, outcome
    return outcome


def test_an_open_record_is_one_active_patient_with_the_professionals_authorisation(service, rng):
    ins, actor = make_ins(rng), professional(rng)
    bundle = _ask(service, actor, ins)
    assert bundle["total"] == 1 and len(bundle["entry"]) == 1
    entry = bundle["entry"][0]
    assert entry["search"] == {"mode": "match"}
    resource = entry["resource"]
    assert resource["resourceType"] == "Patient" and resource["active"] is True
    assert resource["identifier"] == [{"system": INS_NIR_SYSTEM, "value": ins}]
    assert resource["extension"] == [{"url": AUTHORISATION_EXTENSION, "valueCode": "VALIDE"}]
    assert bundle["link"] == [{"relation": "self",
                               "url": f"{service.url}/Patient?identifier={INS_NIR_SYSTEM}|{ins}"}]
    # the test INS system is answered under that system; a bare INS under the INS-NIR's
    test_system = _ask(service, actor, ins, INS_NIR_TEST_SYSTEM)["entry"][0]["resource"]
    assert test_system["identifier"] == [{"system": INS_NIR_TEST_SYSTEM, "value": ins}]
    bare = _td02(service, service.token(actor), f"identifier={ins}").json()
    assert bare["total"] == 1 and bare["entry"][0]["resource"]["identifier"][0]["system"] == INS_NIR_SYSTEM


def test_an_opted_out_patient_has_no_entry_for_anyone(service, rng):
    ins = make_ins(rng)
    _opt_out(service, ins)
    for actor in (professional(rng), patient(ins)):
        bundle = _ask(service, actor, ins)
        assert bundle["total"] == 0 and "entry" not in bundle


def test_a_blocked_professional_is_interdit_and_unblocked_valide_again(service, rng):
    ins, blocked, other = make_ins(rng), professional(rng), professional(rng)
    _block(service, ins, blocked.rpps)
    assert _authorisation(_ask(service, blocked, ins)) == "INTERDIT"
    assert _authorisation(_ask(service, other, ins)) == "VALIDE"
    _block(service, ins, blocked.rpps, blocked=False)
    assert _authorisation(_ask(service, blocked, ins)) == "VALIDE"


def test_a_patient_asks_about_themself_only(service, rng):
    ins = make_ins(rng)
    mine = _ask(service, patient(ins), ins)
    assert mine["total"] == 1 and "extension" not in mine["entry"][0]["resource"]  # a professional's matter
    _refused(_td02(service, service.token(patient(make_ins(rng))), f"identifier={INS_NIR_SYSTEM}|{ins}"),
             403, "forbidden")


def test_no_token_is_a_401(service, rng):
    _refused(_td02(service, None, f"identifier={INS_NIR_SYSTEM}|{make_ins(rng)}"), 401, "login")


@pytest.mark.parametrize("query, code, says", [
    ("", "required", "identifier is required"),
    ("identifier=", "required", "identifier is required"),
    ("name=Martin", "required", "identifier is required"),
    ("identifier=urn:oid:1.2.250.1.213.1.4.9|{ins}", "invalid", "INS system"),  # the NIA: not an INS system here
    ("identifier=urn:oid:1.2.3.4|{ins}", "invalid", "INS system"),
    ("identifier=http://example.org/mrn|12345", "invalid", "INS system"),
    ("identifier={INS_NIR_SYSTEM}|{bad_key}", "invalid", "is not a valid INS"),
    ("identifier={INS_NIR_SYSTEM}|12345", "invalid", "is not a valid INS"),
    ("identifier={INS_NIR_SYSTEM}|", "invalid", "not a whole system"),
    ("identifier=|", "invalid", "is not a token"),
    ("identifier=a|b|c", "invalid", "is not a token"),
    ("identifier:exact={INS_NIR_SYSTEM}|{ins}", "not-supported", "modifier"),
    ("identifier={INS_NIR_SYSTEM}|{ins},{INS_NIR_SYSTEM}|{other}", "invalid", "one patient"),
    ("identifier={INS_NIR_SYSTEM}|{ins}&_count=%01", "invalid", "control characters"),
])
def test_bad_input_is_a_precise_400(service, rng, query, code, says):
    ins, other = make_ins(rng), make_ins(rng)
    bad_key = ins[:13] + f"{(int(ins[13:]) % 97) + 1:02d}"
    query = query.format(ins=ins, other=other, bad_key=bad_key, INS_NIR_SYSTEM=INS_NIR_SYSTEM)
    outcome = _refused(_td02(service, service.token(professional(rng)), query), 400, code)
    assert says in outcome["issue"][0]["diagnostics"], outcome


def test_other_parameters_are_ignored_or_refused_with_prefer_strict(service, rng):
    ins, actor = make_ins(rng), professional(rng)
    query = f"identifier={INS_NIR_SYSTEM}|{ins}&name=Martin&_count=5"
    lenient = _td02(service, service.token(actor), query)
    assert lenient.status == 200 and lenient.json()["total"] == 1
    # what was left out is not in the self link
    assert lenient.json()["link"][0]["url"] == f"{service.url}/Patient?identifier={INS_NIR_SYSTEM}|{ins}"
    outcome = _refused(_td02(service, service.token(actor), query, {"Prefer": "handling=strict"}), 400, "not-supported")
    assert "'name'" in outcome["issue"][0]["diagnostics"] and outcome["issue"][0]["expression"] == ["name"]
    strict = _td02(service, service.token(actor), f"identifier={INS_NIR_SYSTEM}|{ins}", {"Prefer": "handling=strict"})
    assert strict.status == 200 and strict.json()["total"] == 1


def test_repeated_identifiers_are_and(service, rng):
    ins, other, actor = make_ins(rng), make_ins(rng), professional(rng)
    token = service.token(actor)
    same = _td02(service, token, f"identifier={INS_NIR_SYSTEM}|{ins}&identifier={ins}").json()
    assert same["total"] == 1
    two = _td02(service, token, f"identifier={INS_NIR_SYSTEM}|{ins}&identifier={INS_NIR_SYSTEM}|{other}").json()
    assert two["total"] == 0 and "entry" not in two
    no_system = _td02(service, token, f"identifier=|{ins}").json()  # an INS always has its system
    assert no_system["total"] == 0


def test_the_other_patient_routes_still_answer(service, rng):
    ins = make_ins(rng)
    _block(service, ins, make_rpps(rng))
    assert service.call("POST", "/Patient", service.token(patient(ins))).status == 405
    assert service.call("GET", "/Patient/$block", service.token(patient(ins))).status == 405
    _opt_out(service, ins)


def _xds_td02(service, actor, ins: str) -> tuple[str, str]:
    caller = Caller(service, actor, ins)
    request = etree.Element(q("segur", "TD02Request"), nsmap={"segur": NS["segur"]})
    status, answer = caller.send(terms.TD02, "/xds/td02", request)
    assert status == 200, etree.tostring(answer)[:400]
    return answer.findtext(q("segur", "DmpStatus")), answer.findtext(q("segur", "Autorisation"))


def _fhir_td02(service, actor, ins: str) -> tuple[str, str | None]:
    bundle = _ask(service, actor, ins)
    return ("OK" if bundle["total"] else "FERME"), _authorisation(bundle)


def test_the_xds_and_fhir_td02_agree_and_neither_is_in_the_access_history(service, rng):
    ins, actor, blocked = make_ins(rng), professional(rng), professional(rng)
    _block(service, ins, blocked.rpps)
    assert _xds_td02(service, actor, ins) == _fhir_td02(service, actor, ins) == ("OK", "VALIDE")
    assert _xds_td02(service, blocked, ins) == _fhir_td02(service, blocked, ins) == ("OK", "INTERDIT")
    _opt_out(service, ins)
    assert _xds_td02(service, actor, ins)[0] == _fhir_td02(service, actor, ins)[0] == "FERME"
    assert _fhir_td02(service, blocked, ins) == ("FERME", None)  # a closed record: no Patient to carry it
    history = service.call("GET", f"/AuditEvent?patient.identifier={INS_NIR_SYSTEM}|{ins}",
                           service.token(patient(ins))).json()
    assert history["resourceType"] == "Bundle" and "entry" not in history


@pytest.mark.parametrize("query", [
    "identifier=%FF%FE", "identifier=urn:oid:1.2.250.1.213.1.4.8|%C2%B2%C2%B2", "identifier=\\", "identifier=a\\",
    "%=%", "identifier=urn:oid:1.2.250.1.213.1.4.8\\|x", "identifier=" + "9" * 5000, "identifier=,", "&&&",
    "identifier:=x", "identifier=urn:oid:1.2.250.1.213.1.4.8|2530%3207300443", "identifier=%00",
])
def test_odd_queries_are_refused_never_a_500(service, rng, query):
    reply = _td02(service, service.token(professional(rng)), query)
    assert reply.status in (200, 400), reply
    validate(reply.json())

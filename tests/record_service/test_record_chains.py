"""A patient's decision holds for every version of a document: the rule matrix over replacement chains.

A chain v1 -> v2 -> v3 is one document in the DMP's sense. The patient masks, unmasks or deletes one
version (the first, a middle or the last one) while the chain has one, two or three versions; the
author then goes on replacing. Every version is then tried by every actor on every read path
(search, ``GET /DocumentReference/{id}``, ``GET /Binary/{id}``), on both back ends.
(adversary case masked_replacement_leak.sh: v2 of a masked v1 was readable by everyone, and a
superseded v1 stayed readable once v2 was masked.)
"""

from __future__ import annotations

import os

import pytest

from record_documents import deposit_bundle, locations, make_ins, patient, professional, search_path
from record_service.auth import Actor
from segur.identifiers import INS_NIR_SYSTEM

ACTORS = ("patient", "author", "depositor", "other_professional", "blocked_professional")
DECISIONS = ("mask", "mask-unmask", "delete-by-patient", "delete-by-author")
# (chain length when the patient decides, the version the decision names)
POINTS = [(length, target) for length in (1, 2, 3) for target in range(length)]
CASES = [(decision, length, target) for decision in DECISIONS for length, target in POINTS]


def _expected(decision: str, actor: str) -> str:
    """What ``actor`` gets on every version once ``decision`` was taken on any one of them."""
    if decision.startswith("delete"):
        return "gone"
    if decision == "mask" and actor in ("other_professional", "blocked_professional"):
        return "hidden"  # masked comes first: a blocked professional cannot tell it from a missing document
    if actor == "blocked_professional":
        return "blocked"
    return "visible"


class Chain:
    """A patient's document replaced in turn by its depositor: v1 -> v2 -> v3.

    The documents name ``author`` (a hospital professional) as their author; ``depositor``, a town
    doctor of no facility of the author's, sends them. Both may see the document once masked.
    """

    def __init__(self, service, rng):
        self.service = service
        self.ins = make_ins(rng)
        self.actors = {"patient": patient(self.ins), "author": professional(rng, "hospital"),
                       "depositor": professional(rng, "town_doctor", facility=False),
                       "other_professional": professional(rng, "pharmacy"),
                       "blocked_professional": professional(rng, "lab")}
        self.versions: list[str] = []
        self.data: dict[str, bytes] = {}
        block = {"resourceType": "Parameters", "parameter": [
            {"name": "professional", "valueIdentifier": {"value": self.actors["blocked_professional"].rpps}}]}
        assert service.call("POST", "/Patient/$block", self.token("patient"), block).status == 200

    def token(self, actor: str) -> str:
        return self.service.token(self.actors[actor])

    def add_version(self) -> int:
        data = os.urandom(500)
        bundle = deposit_bundle(self.ins, self.actors["author"].rpps, data,
                                replaces=self.versions[-1] if self.versions else None)
        reply = self.service.call("POST", "/", self.token("depositor"), bundle)
        if reply.status == 201:
            [doc_id] = locations(reply.json(), "DocumentReference")
            self.versions.append(doc_id)
            self.data[doc_id] = data
        return reply.status

    def decide(self, decision: str, version: str) -> None:
        me = self.token("patient")
        if decision.startswith("mask"):
            assert self.service.call("POST", f"/DocumentReference/{version}/$mask", me, b"{}").status == 200
        if decision == "mask-unmask":
            assert self.service.call("POST", f"/DocumentReference/{version}/$unmask", me, b"{}").status == 200
        if decision.startswith("delete"):
            who = me if decision == "delete-by-patient" else self.token("author")
            assert self.service.call("DELETE", f"/DocumentReference/{version}", who).status == 204

    def seen_by(self, actor: str, version: str) -> str:
        """'visible', 'hidden' (404 and not listed), 'blocked' (403 and an empty search) or 'gone'
        (404 for everyone, the patient included): what every read path agrees on, else a description."""
        token = self.token(actor)
        reads = (self.service.call("GET", f"/DocumentReference/{version}", token).status,
                 self.service.call("GET", f"/Binary/{version}", token))
        search = self.service.call("GET", search_path(self.ins, status="current,superseded", _count="100"), token)
        listed = version in [e["resource"]["id"] for e in search.json().get("entry", [])] \
            if search.status == 200 else None
        if reads[0] == 200 and reads[1].status == 200 and listed:
            assert reads[1].body == self.data[version]
            return "visible"
        if reads[0] == reads[1].status == 404 and listed is False:
            return "gone" if actor == "patient" or self._gone_for_patient(version) else "hidden"
        if reads[0] == reads[1].status == 403 and listed is False:
            return "blocked"
        return f"read {reads[0]}, Binary {reads[1].status}, search {search.status} listed={listed}"

    def _gone_for_patient(self, version: str) -> bool:
        return self.service.call("GET", f"/DocumentReference/{version}", self.token("patient")).status == 404


@pytest.mark.parametrize("decision,length,target", CASES,
                         ids=[f"{d}-v{t + 1}-of-{n}" for d, n, t in CASES])
def test_a_decision_holds_for_every_version(service, rng, decision, length, target):
    chain = Chain(service, rng)
    for _ in range(length):
        assert chain.add_version() == 201
    chain.decide(decision, chain.versions[target])
    replaced = chain.add_version()  # the author goes on: a new version of the same document
    assert replaced == (404 if decision.startswith("delete") else 201)
    seen = {(actor, f"v{i + 1}"): chain.seen_by(actor, version)
            for actor in ACTORS for i, version in enumerate(chain.versions)}
    expected = {(actor, version): _expected(decision, actor) for actor, version in seen}
    assert seen == expected


def test_a_new_version_of_a_masked_document_carries_the_mask_label(service, rng):
    chain = Chain(service, rng)
    chain.add_version()
    chain.decide("mask", chain.versions[0])
    chain.add_version()
    newest = service.call("GET", f"/DocumentReference/{chain.versions[1]}", chain.token("patient")).json()
    codes = [c.get("code") for label in newest.get("securityLabel", []) for c in label.get("coding", [])]
    assert "MASQUE_PS" in codes
    assert newest["meta"]["versionId"] == "1"


def test_a_version_deposited_masked_masks_the_versions_before_it(service, rng):
    chain = Chain(service, rng)
    chain.add_version()
    bundle = deposit_bundle(chain.ins, chain.actors["author"].rpps, b"masked v2", replaces=chain.versions[0])
    bundle["entry"][1]["resource"]["securityLabel"] = [{"coding": [{
        "system": "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/"
                  "TRE-A07-StatutVisibiliteDocument", "code": "MASQUE_PS"}]}]
    assert service.call("POST", "/", chain.token("depositor"), bundle).status == 201
    assert chain.seen_by("other_professional", chain.versions[0]) == "hidden"


def test_a_blocked_professional_may_deposit_replace_and_delete_their_own_but_not_read(service, rng):
    """Depositing needs only that the patient did not oppose (CSP L1111-15); consulting needs that the
    professional is not blocked: the blocked professional still feeds the record, never reads it."""
    chain = Chain(service, rng)
    blocked = chain.actors["blocked_professional"]
    token = chain.token("blocked_professional")
    reply = service.call("POST", "/", token, deposit_bundle(chain.ins, blocked.rpps, b"v1 by a blocked professional"))
    assert reply.status == 201
    [v1] = locations(reply.json(), "DocumentReference")
    reply = service.call("POST", "/", token, deposit_bundle(chain.ins, blocked.rpps, b"v2", replaces=v1))
    assert reply.status == 201
    [v2] = locations(reply.json(), "DocumentReference")
    assert service.call("GET", f"/Binary/{v2}", token).status == 403
    assert service.call("GET", f"/DocumentReference/{v1}", token).status == 403
    assert service.call("DELETE", f"/DocumentReference/{v2}", token).status == 204
    assert service.call("GET", f"/DocumentReference/{v1}", chain.token("patient")).status == 404


def test_every_refused_read_attempt_is_in_the_access_history(service, rng):
    """A professional's attempt on a masked, deleted or closed record's document is traced like any read,
    though the answer (404) does not tell them the document exists."""
    chain = Chain(service, rng)
    other = chain.token("other_professional")
    for _ in range(2):
        chain.add_version()
    masked, deleted = chain.versions
    chain.decide("mask", masked)  # masks both versions
    assert service.call("GET", f"/Binary/{masked}", other).status == 404
    chain.decide("delete-by-patient", deleted)
    assert service.call("GET", f"/DocumentReference/{deleted}", other).status == 404
    reply = service.call("POST", "/", chain.token("depositor"),
                         deposit_bundle(chain.ins, chain.actors["author"].rpps, b"before closing"))
    [closed] = locations(reply.json(), "DocumentReference")
    assert service.call("POST", "/Patient/$opt-out", chain.token("patient"), b"{}").status == 200
    assert service.call("GET", f"/Binary/{closed}", other).status == 404
    history = service.call("GET", f"/AuditEvent?patient.identifier={INS_NIR_SYSTEM}|{chain.ins}",
                           chain.token("patient"))
    assert history.status == 200
    attempts = [(e["resource"]["entity"][1]["what"]["reference"].split("/")[-1] if len(e["resource"]["entity"]) > 1
                 else None, e["resource"]["outcome"]) for e in history.json()["entry"]
                if e["resource"]["agent"][0]["who"]["identifier"]["value"][1:] == chain.actors["other_professional"].rpps]
    assert attempts == [(closed, "4"), (deleted, "4"), (masked, "4")]


def test_only_the_patient_decides_for_the_chain(service, rng):
    chain = Chain(service, rng)
    chain.add_version()
    chain.add_version()
    for actor in ("author", "depositor", "other_professional"):
        assert service.call("POST", f"/DocumentReference/{chain.versions[0]}/$mask", chain.token(actor),
                            b"{}").status == 403
    other_patient = Actor(ins=make_ins(rng))
    assert service.call("POST", f"/DocumentReference/{chain.versions[1]}/$mask", service.token(other_patient),
                        b"{}").status == 404  # another record's document does not exist for this patient
    assert chain.seen_by("other_professional", chain.versions[0]) == "visible"


@pytest.mark.parametrize("masked_version", ["v1", "v2"])
def test_adversary_case_masked_replacement_leak(service, rng, masked_version):
    """masked_replacement_leak.sh, with its own bodies (cases/v1.json, cases/v2-replaces-v1.json): the patient
    masks v1 and the author deposits v2 replacing it, or masks v2 once it replaced v1; another professional
    finds neither version and reads neither (DocumentReference and Binary)."""
    import json
    import uuid
    from pathlib import Path

    cases = Path(__file__).parent / "cases"
    ins = "103128228225131"
    author, other = Actor(rpps="13218196007", sector="hospital"), Actor(rpps="11338908384", sector="town_doctor")

    def body(name: str, v1: str = "") -> dict:  # a fresh masterIdentifier: the shared service keeps the record
        bundle = json.loads((cases / name).read_text().replace("__V1_ID__", v1))
        bundle["entry"][1]["resource"]["masterIdentifier"]["value"] = f"urn:uuid:{uuid.uuid4()}"
        return bundle

    def deposit(bundle: dict) -> str:
        reply = service.call("POST", "/", service.token(author), bundle)
        assert reply.status == 201, reply
        return locations(reply.json(), "DocumentReference")[0]

    me = service.token(patient(ins))
    v1 = deposit(body("v1.json"))
    if masked_version == "v1":
        assert service.call("POST", f"/DocumentReference/{v1}/$mask", me, b"{}").status == 200
    v2 = deposit(body("v2-replaces-v1.json", v1))
    if masked_version == "v2":
        assert service.call("POST", f"/DocumentReference/{v2}/$mask", me, b"{}").status == 200
    token = service.token(other)
    for version in (v1, v2):
        assert service.call("GET", f"/Binary/{version}", token).status == 404
        assert service.call("GET", f"/DocumentReference/{version}", token).status == 404
    found = service.call("GET", search_path(ins, status="current,superseded", _count="100"), token).json()
    assert not {v1, v2} & {e["resource"]["id"] for e in found.get("entry", [])}
    assert {v1, v2} <= {e["resource"]["id"] for e in service.call(
        "GET", search_path(ins, status="current,superseded", _count="100"), me).json()["entry"]}


def test_a_mask_racing_a_new_version_never_leaves_a_version_unmasked(two_workers, rng):
    """The patient masks v1 while its author deposits v2: whichever commits first, v2 ends up masked."""
    from concurrent.futures import ThreadPoolExecutor

    service = two_workers
    with ThreadPoolExecutor(2) as pool:
        for _ in range(15):
            chain = Chain(service, rng)
            chain.add_version()
            masking = pool.submit(chain.decide, "mask", chain.versions[0])
            replacing = pool.submit(chain.add_version)
            masking.result()
            assert replacing.result() == 201
            assert [chain.seen_by("other_professional", v) for v in chain.versions] == ["hidden", "hidden"]


def test_a_professional_deletes_no_version_another_professional_authored(service, rng):
    """The depositor of v1 may delete v1 alone, not the chain once the named author replaced it by v2 they
    deposited themselves: only the author deletes a professional's document."""
    chain = Chain(service, rng)
    chain.add_version()  # v1: authored by 'author', deposited by 'depositor'
    author = chain.actors["author"]
    reply = service.call("POST", "/", chain.token("author"),
                         deposit_bundle(chain.ins, author.rpps, b"v2 by its author", replaces=chain.versions[0]))
    [v2] = locations(reply.json(), "DocumentReference")
    chain.versions.append(v2)
    chain.data[v2] = b"v2 by its author"
    assert service.call("DELETE", f"/DocumentReference/{chain.versions[0]}", chain.token("depositor")).status == 403
    assert chain.seen_by("other_professional", v2) == "visible"
    assert service.call("DELETE", f"/DocumentReference/{v2}", chain.token("author")).status == 204
    assert chain.seen_by("patient", chain.versions[0]) == "gone"


def test_no_answer_tells_a_hidden_document_from_a_missing_one(service, rng):
    """A replacement, a delete or a read of a document the caller may not know exists answers the same 404 as
    one of an id that was never issued: another record's document, a masked one, a deleted one."""
    chain, other = Chain(service, rng), Chain(service, rng)
    chain.add_version()
    other.add_version()
    stranger = chain.token("other_professional")
    stranger_rpps = chain.actors["other_professional"].rpps
    masked = chain.versions[0]
    chain.decide("mask", masked)
    never_issued = "0" * 32

    def replace(target: dict) -> tuple[int, bytes]:  # the whole answer: its text must not differ either
        bundle = deposit_bundle(chain.ins, stranger_rpps, os.urandom(40))
        bundle["entry"][1]["resource"]["relatesTo"] = [{"code": "replaces", "target": target}]
        reply = service.call("POST", "/", stranger, bundle)
        return reply.status, reply.body

    missing = replace({"reference": f"DocumentReference/{never_issued}"})
    assert missing[0] == 404
    assert replace({"reference": f"DocumentReference/{masked}"}) == missing
    assert replace({"reference": f"DocumentReference/{other.versions[0]}"}) == missing  # another record's
    assert replace({"identifier": {"value": "urn:uuid:never-issued"}}) == missing
    other_master = service.call("GET", f"/DocumentReference/{other.versions[0]}",
                                other.token("patient")).json()["masterIdentifier"]
    assert replace({"identifier": other_master}) == missing
    masked_master = service.call("GET", f"/DocumentReference/{masked}", chain.token("patient")).json()
    assert replace({"identifier": masked_master["masterIdentifier"]}) == missing
    missing = missing[0]
    for path in (f"/DocumentReference/{masked}", f"/Binary/{masked}"):
        assert service.call("GET", path, chain.token("blocked_professional")).status == missing
    assert service.call("DELETE", f"/DocumentReference/{masked}", stranger).status == missing
    other_patient = other.token("patient")
    assert service.call("GET", f"/Binary/{masked}", other_patient).status == missing
    assert service.call("POST", f"/DocumentReference/{masked}/$mask", other_patient, b"{}").status == missing


def test_a_co_author_may_not_delete_a_chain_with_a_version_they_did_not_author(service, rng):
    """v1 by two authors, v2 by one of them, masked: the other reads v1 but may not delete the chain (403, not
    a 404 that would contradict the read)."""
    chain = Chain(service, rng)
    author, co_author = chain.actors["author"], professional(rng, "hospital")
    v1 = deposit_bundle(chain.ins, author.rpps, b"v1 by two")
    v1["entry"][1]["resource"]["author"].append({"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1",
                                                                "value": "8" + co_author.rpps}})
    [first] = locations(service.call("POST", "/", chain.token("author"), v1).json(), "DocumentReference")
    reply = service.call("POST", "/", chain.token("author"), deposit_bundle(chain.ins, author.rpps, b"v2", replaces=first))
    assert reply.status == 201
    chain.decide("mask", first)
    assert service.call("GET", f"/DocumentReference/{first}", service.token(co_author)).status == 200
    assert service.call("DELETE", f"/DocumentReference/{first}", service.token(co_author)).status == 403

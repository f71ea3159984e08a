"""Bearer tokens and actors in their one home: identity raises its own Unauthenticated, the record service's
adapter answers the same 401 as before, and identity imports nothing of the record service."""

from __future__ import annotations

import subprocess
import sys

import jwt
import pytest

import record_service.auth
import record_service.codes
from identity import actors, keys, sectors, tokens
from identity.actors import Actor, check_actor
from identity.errors import Unauthenticated
from identity.tokens import TokenVerifier, issue_token
from record_service.outcomes import ServiceError
from tests.identity.conftest import FINESS, INS, RPPS

KEY = b"k" * 64


def test_actors_are_checked_as_before():
    assert check_actor(Actor(rpps=RPPS, sector="lab", finess=FINESS)) is None
    assert check_actor(Actor(ins=INS)) is None
    assert "exactly one" in check_actor(Actor())
    assert "exactly one" in check_actor(Actor(rpps=RPPS, sector="lab", ins=INS))
    assert check_actor(Actor(ins="295109912611194")) == "invalid INS '295109912611194'"
    assert check_actor(Actor(rpps="10003456789", sector="lab")) == "invalid RPPS '10003456789'"
    assert check_actor(Actor(rpps=RPPS, sector="dentist")).startswith("unknown sector 'dentist' (one of hospital,")
    assert check_actor(Actor(rpps=RPPS, sector="lab", finess="750712185")) == "invalid FINESS '750712185'"


def test_the_sectors_are_the_simulators_and_each_has_its_own_dmp_code():
    from simulator.scenario import PROFESSIONAL_SECTORS

    assert sectors.SECTORS == PROFESSIONAL_SECTORS
    assert record_service.codes.SECTORS is sectors.SECTORS
    codes = [code for code, _ in sectors.SECTEUR_ACTIVITE.values()]
    assert len(set(codes)) == len(codes) and all(code.startswith("SA") and len(code) == 4 for code in codes)
    assert sectors.SECTEUR_ACTIVITE["lab"][0] == "SA29"  # the acceptance check's healthcareFacilityTypeCode


def test_identity_raises_its_own_unauthenticated():
    verifier = TokenVerifier(KEY)
    for header, message in [(None, "no bearer token: send Authorization: Bearer <token>"),
                            ("Basic abc", "the Authorization header must be 'Bearer <token>'"),
                            ("Bearer " + issue_token(b"x" * 64, Actor(ins=INS), 60), "invalid token: Signature "
                                                                                     "verification failed"),
                            ("Bearer " + issue_token(KEY, Actor(ins=INS), 60, now=0), "the token has expired")]:
        with pytest.raises(Unauthenticated) as caught:
            verifier.actor(header)
        assert caught.value.message == message


def test_a_token_naming_an_invalid_identity_is_refused():
    forged = jwt.encode({"iss": "segur-record-service", "iat": 0, "exp": 2**40, "sub": "x", "rpps": "123"}, KEY,
                        algorithm="HS256")
    with pytest.raises(Unauthenticated, match="invalid token: invalid RPPS '123'"):
        TokenVerifier(KEY).actor("Bearer " + forged)


def test_the_service_answers_the_same_401_as_before():
    verifier = record_service.auth.TokenVerifier(KEY)
    assert isinstance(verifier, tokens.TokenVerifier)
    with pytest.raises(ServiceError) as caught:
        verifier.actor("Bearer " + issue_token(KEY, Actor(ins=INS), 60, now=0))
    refusal = caught.value
    assert (refusal.status, refusal.code, refusal.reason) == (401, "login", "unauthenticated")
    assert refusal.message == "the token has expired"
    assert refusal.headers == {"WWW-Authenticate": 'Bearer realm="segur"'}
    assert refusal.outcome()["issue"][0] == {"severity": "error", "code": "login", "diagnostics": "the token has expired"}
    actor = Actor(rpps=RPPS, sector="hospital", finess=FINESS)
    assert verifier.actor("Bearer " + issue_token(KEY, actor, 60)) == actor


def test_the_record_service_reexports_identitys_objects():
    assert record_service.auth.Actor is actors.Actor
    assert record_service.auth.check_actor is actors.check_actor
    assert record_service.auth.issue_token is tokens.issue_token
    assert record_service.auth.load_or_create_key is keys.load_or_create_key
    assert record_service.auth.KeyFileError is keys.KeyFileError
    assert record_service.auth.DEFAULT_KEY_FILE == keys.DEFAULT_KEY_FILE


def test_identity_imports_nothing_of_the_record_service():
    code = ("import sys, identity.actors, identity.keys, identity.tokens, identity.structure, identity.vihf, "
            "identity.command; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('record_service', 'load', 'planner', 'simulator')); print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr

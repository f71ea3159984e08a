"""A bounded fuzz test: hypothesis mutates valid ITI-65 Bundles; the service never answers 5xx, and a
refused deposit stores nothing."""

from __future__ import annotations

import copy
import hashlib
import random
import uuid

from hypothesis import HealthCheck, given, settings, strategies as st

from record_documents import deposit_bundle, json_paths, make_ins, patient, professional, search_path, the_binary

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                       st.text(max_size=30))
_json = st.recursive(_json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=10), inner, max_size=3)),
                     max_leaves=8)


@st.composite
def mutated_bundles(draw):
    """A valid bundle with 1-3 mutations: a value replaced by random JSON, a key removed, a string altered."""
    seed = draw(st.integers(0, 2**32))
    rng = random.Random(seed)
    ins, author = make_ins(rng), professional(rng)
    data = rng.randbytes(rng.randint(0, 3000))
    bundle = deposit_bundle(ins, author.rpps, data, master_id=f"urn:oid:1.2.250.1.999.{seed}",
                            date="2026-03-01T10:00:00+01:00")
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in json_paths(bundle) if p and p[-1] != "data"]
        path = draw(st.sampled_from(paths))
        parent = bundle
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "tweak"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "tweak" and isinstance(parent[path[-1]], str):
            parent[path[-1]] = parent[path[-1]] + draw(st.text(min_size=1, max_size=3))
        else:
            parent[path[-1]] = draw(_json)
    return ins, author, data, bundle


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(case=mutated_bundles())
def test_fuzzed_deposits_never_crash_and_refusals_store_nothing(service, case):
    ins, author, data, bundle = case
    me = service.token(patient(ins))
    before = _ids(service.call("GET", search_path(ins), me))  # shrinking may replay a patient already used
    blob = hashlib.sha256(data).hexdigest()
    blob_before = service.blob_exists(blob)
    reply = service.call("POST", "/", service.token(author), copy.deepcopy(bundle))
    assert reply.status < 500, reply
    after = _ids(service.call("GET", search_path(ins), me))
    if reply.status >= 400:
        assert b"OperationOutcome" in reply.body
        assert after == before, (reply, bundle)
        assert service.blob_exists(blob) == blob_before
    else:
        assert reply.status in (200, 201) and set(before) <= set(after) and after


def _ids(reply) -> list[str]:
    assert reply.status == 200, reply
    return [e["resource"]["id"] for e in reply.json().get("entry", [])]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=200), _json.map(lambda v: __import__("json").dumps(v).encode())),
       path=st.sampled_from(["/", "/Patient/$block", "/Patient/$unblock", f"/DocumentReference/{uuid.uuid4().hex}/$mask"]))
def test_fuzzed_bodies_never_crash(service, body, path):
    token = service.token(patient(make_ins(random.Random(len(body)))))
    reply = service.call("POST", path, token, body)
    assert reply.status < 500, reply

"""A database written by an older version (no replacement chains, no search values) is brought up to date
at start: the patient's mask of one version then holds for the chain, and every search finds older documents."""

from __future__ import annotations

import sqlite3
import uuid

import psycopg
import pytest

from conftest import BACKENDS, Service
from record_documents import deposit_bundle, locations, make_ins, patient, professional, search_path, the_document

CATEGORY = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"


def _as_an_older_version_left_it(service: Service, masked_only: str) -> None:
    """What the database looked like before chains and search values: chain_id empty, the mask on one version."""
    statements = [("UPDATE documents SET chain_id = NULL", ()),
                  ("UPDATE documents SET masked = 0 WHERE id <> ?", (masked_only,)),
                  ("DELETE FROM document_tokens", ()), ("DELETE FROM document_dates", ())]
    if service.db_url is None:
        with sqlite3.connect(service.data_dir / "records.sqlite3") as connection:
            for sql, params in statements:
                connection.execute(sql, params)
    else:
        with psycopg.connect(service.db_url) as connection:
            for sql, params in statements:
                connection.execute(sql.replace("?", "%s"), params)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_older_database_gets_its_chains_and_search_values_at_start(backend, postgres, tmp_path):
    database = postgres.create_database(f"migrate_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    service = Service(tmp_path, database).start()
    try:
        import random

        rng = random.Random(7)
        ins, author, other = make_ins(rng), professional(rng), professional(rng, "pharmacy")
        bundle = deposit_bundle(ins, author.rpps, b"v1")
        the_document(bundle)["category"] = [{"coding": [{"system": CATEGORY, "code": "11"}]}]
        [v1] = locations(service.call("POST", "/", service.token(author), bundle).json(), "DocumentReference")
        reply = service.call("POST", "/", service.token(author), deposit_bundle(ins, author.rpps, b"v2", replaces=v1))
        [v2] = locations(reply.json(), "DocumentReference")
        assert service.call("POST", f"/DocumentReference/{v2}/$mask", service.token(patient(ins)), b"{}").status == 200
        service.stop()
        _as_an_older_version_left_it(service, masked_only=v2)
        service.start()
        assert "brought 2 documents written by an older version up to date" in service.log_tail()
        token = service.token(other)
        assert service.call("GET", f"/Binary/{v1}", token).status == 404  # the mask of v2 holds for v1
        found = service.call("GET", search_path(ins, status="current,superseded",
                                                category=f"{CATEGORY}|11"), service.token(patient(ins))).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [v1]
        service.stop()
        service.start()  # nothing left to do the second time
        assert service.log_tail().count("written by an older version") == 1
    finally:
        service.stop()

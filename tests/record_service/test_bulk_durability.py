"""The bulk seed survives SIGKILL: `segur seed` (load.seed, bulk) under way, the service killed with SIGKILL, restarted
on the same data, the seed run again: it completes, nothing is stored twice (one row, one submission set, one file
a document), and every document the first run had acknowledged keeps its ids and is retrieved byte for byte, as
is every other. SQLite and PostgreSQL; the same harness as test_record_durability.py (a real ``segur serve``)."""

from __future__ import annotations

import http.client
import random
import signal
import sqlite3
import threading
import time
import uuid

import psycopg
import pyarrow.parquet as pq
import pytest

from bench.seed import make_corpus
from load.client import Locations
from load.requests import DocumentBytes
from load.seed import seed
from tests.record_service.conftest import Service
from tests.record_service.record_documents import patient

DOCUMENTS = 2400
SIZE = 40_000
KILL_AFTER_COMMITTED = 600  # documents: two to three bulk requests of 256


def _count(service: Service, table: str) -> int:
    if service.db_url:
        with psycopg.connect(service.db_url) as connection:
            return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    with sqlite3.connect(service.data_dir / "records.sqlite3") as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _files(service: Service) -> int:
    blobs = service.data_dir / "blobs"
    return sum(1 for d in blobs.iterdir() if d.is_dir() and not d.name.startswith(".")
               for f in d.iterdir() if not f.name.startswith("."))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_bulk_seed_killed_midway_completes_when_run_again(backend, postgres, tmp_path):
    db = postgres.create_database(f"bulk_kill_{uuid.uuid4().hex[:8]}") if backend == "postgresql" else None
    service = Service(tmp_path / "service", db).start()
    run = tmp_path / "run"
    run.mkdir()
    make_corpus(run / "corpus.parquet", DOCUMENTS, SIZE, random.Random(15))
    quiet = dict(progress=False, log=lambda line: None)
    first: dict = {}
    seeding = threading.Thread(target=lambda: first.update(outcome=seed(run, service.url, service.key_file, **quiet)[0]))
    try:
        seeding.start()
        deadline = time.time() + 60
        # killed once some requests have committed (their answers on the way or received), while others are in
        # flight: files alone are not enough, a request's files are all written before its one commit
        while _count(service, "documents") < KILL_AFTER_COMMITTED and time.time() < deadline and seeding.is_alive():
            time.sleep(0.01)
        service.stop(signal.SIGKILL)
        seeding.join(120)
        killed = first["outcome"]
        assert 0 < killed.stored < DOCUMENTS and killed.failures, "the kill did not land mid-seed"
        acknowledged = Locations.load(run / "locations.parquet")
        assert len(acknowledged) == killed.stored

        service.start()
        again, path = seed(run, service.url, service.key_file, **quiet)
        assert again.failures == {} and again.stored == DOCUMENTS
        assert again.existing >= killed.stored  # what was acknowledged was not stored again
        located = Locations.load(path)
        assert len(located) == DOCUMENTS
        for master_id in list(pq.read_table(run / "corpus.parquet", columns=["document_id"]).column(0).to_pylist()):
            if acknowledged.get(master_id) is not None:
                assert located.get(master_id) == acknowledged.get(master_id)
        assert _count(service, "documents") == DOCUMENTS
        assert _count(service, "submission_sets") == DOCUMENTS
        assert _files(service) == DOCUMENTS

        corpus = pq.read_table(run / "corpus.parquet", columns=["document_id", "patient_ins", "size_bytes"])
        remake = DocumentBytes()
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
        tokens: dict[str, str] = {}
        for master_id, ins, size in zip(*(corpus.column(c).to_pylist() for c in corpus.column_names)):
            token = tokens.setdefault(ins, service.token(patient(ins)))
            connection.request("GET", "/" + located.get(master_id)[1], headers={"Authorization": f"Bearer {token}"})
            answer = connection.getresponse()
            assert answer.status == 200 and answer.read() == remake.content(master_id, size), master_id
        connection.close()
    finally:
        service.stop()

"""`segur seed` and `segur load` against a server that answers 200/201 with the wrong content: every such
answer is a failure of its own kind ("wrong answer"), in Locust's statistics and replay.json, and exit 1."""

import csv
import json
import shutil
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.load.conftest import SEGUR
from tests.load.fake_fhir import fake_fhir


def _copy(smoke_run, tmp_path):
    """The smoke run in a folder of its own: seeding writes locations.parquet, which other tests read."""
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run, ignore=shutil.ignore_patterns("locations.parquet", "load-*"))
    return run


def _segur(*args):
    return subprocess.run([*SEGUR, *args], capture_output=True, text=True, timeout=180)


def _replay(run, target, tmp_path, *extra):
    key, out = tmp_path / "key", tmp_path / "load"
    seeding = _segur("seed", str(run), "--target", target, "--key", str(key))
    # the fake speaks FHIR only: professionals over PDSm4DMP
    loading = _segur("load", str(run), "--target", target, "--key", str(key), "--speedup", "100", "--out", str(out),
                     "--protocol", "fhir", *extra)
    assert (out / "replay.json").exists(), loading.stderr[-2000:]
    with (out / "locust_stats.csv").open() as handle:
        # the calls' rows (the interactions' rows, type e.g. "consultation (fhir)", are apart)
        stats = {row["Name"]: row for row in csv.DictReader(handle) if row["Type"] in ("GET", "POST", "DELETE", "")}
    with (out / "locust_failures.csv").open() as handle:
        # the calls' failures (an interaction whose call failed is listed too, under its own type)
        errors = {row["Error"]: int(row["Occurrences"]) for row in csv.DictReader(handle)
                  if row["Error"].startswith("wrong answer:")}
    return seeding, loading, json.loads((out / "replay.json").read_text()), stats, errors


def test_searches_answered_with_another_patients_documents_are_wrong_answers(smoke_run, tmp_path):
    with fake_fhir("search") as target:  # two Locust workers: their counts add up at the master
        seeding, loading, report, stats, errors = _replay(_copy(smoke_run, tmp_path), target, tmp_path,
                                                          "--processes", "2")
    searches = report["sent_by_operation"]["search"]
    assert seeding.returncode == 0, seeding.stderr[-1000:]
    assert loading.returncode == 1 and "WRONG ANSWERS" in loading.stderr
    assert searches > 0 and int(stats["search"]["Failure Count"]) == searches
    assert report["wrong_answers"] == report["wrong_answers_by_operation"]["search"] == searches
    assert errors == {"wrong answer: search: a DocumentReference of another patient": searches}
    assert report["failed"] == searches  # the other operations were answered right, and counted so
    assert report["workers"] == 2


def test_retrieves_of_other_bytes_are_wrong_answers(smoke_run, tmp_path):
    with fake_fhir("retrieve") as target:
        seeding, loading, report, stats, errors = _replay(_copy(smoke_run, tmp_path), target, tmp_path)
    retrieves = report["sent_by_operation"]["retrieve"]
    assert seeding.returncode == 0, seeding.stderr[-1000:]
    assert loading.returncode == 1
    assert retrieves > 0 and report["wrong_answers_by_operation"] == {"retrieve": retrieves}
    assert int(stats["retrieve"]["Failure Count"]) == retrieves
    assert set(errors) == {"wrong answer: retrieve: not the size deposited", "wrong answer: retrieve: not the bytes deposited"}


def test_deposits_answered_without_a_location_are_wrong_answers(smoke_run, tmp_path):
    with fake_fhir("deposit") as target:
        seeding, loading, report, stats, errors = _replay(_copy(smoke_run, tmp_path), target, tmp_path)
    deposits = report["sent_by_operation"]["deposit"]
    assert seeding.returncode == 1 and "wrong answer: deposit: no DocumentReference location" in seeding.stderr
    assert loading.returncode == 1
    assert deposits > 0 and report["wrong_answers_by_operation"] == {"deposit": deposits}
    assert int(stats["deposit"]["Failure Count"]) == deposits
    assert errors["wrong answer: deposit: no DocumentReference location"] == deposits


@pytest.fixture
def right_fake(smoke_run, tmp_path):
    with fake_fhir("") as target:
        yield _replay(_copy(smoke_run, tmp_path), target, tmp_path)


def test_a_server_that_answers_right_has_no_wrong_answers(right_fake):
    seeding, loading, report, _, errors = right_fake
    assert seeding.returncode == 0 and loading.returncode == 0, loading.stderr[-1000:]
    assert report["wrong_answers"] == 0 and report["failed"] == 0 and not errors



def _deposit_then_searches(smoke_run, folder):
    """A schedule of one of the smoke run's deposits, then a search by its patient and one by its author."""
    table = pq.read_table(smoke_run / "schedule.parquet")
    deposit = next(row for row in table.to_pylist() if row["operation"] == "deposit" and row["actor_kind"] != "patient")
    by_patient = {**deposit, "operation": "search", "actor_kind": "patient", "actor_id": deposit["patient_ins"],
                  "sector": "patient", "facility_id": None, "offset_s": 30.0}
    by_author = {**deposit, "operation": "search", "offset_s": 40.0}
    rows = [{**deposit, "offset_s": 10.0}, by_patient, by_author]
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema.remove_metadata()).replace_schema_metadata(
        {"window_minutes": "1"}), folder / "schedule.parquet")
    return folder


@pytest.mark.parametrize("wrong, missing", [("empty", 2), ("", 0)])
def test_searches_that_leave_out_a_document_the_replay_deposited_are_wrong_answers(smoke_run, tmp_path, wrong,
                                                                                      missing):
    run = _deposit_then_searches(smoke_run, tmp_path / "run")
    with fake_fhir(wrong) as target:
        loading = _segur("load", str(run), "--target", target, "--key", str(tmp_path / "key"), "--speedup", "10",
                         "--out", str(tmp_path / "load"), "--protocol", "fhir")
    report = json.loads((tmp_path / "load" / "replay.json").read_text())
    assert report["sent_by_operation"] == {"deposit": 1, "search": 2}
    assert loading.returncode == (1 if missing else 0), loading.stderr[-1000:]
    assert report["wrong_answers"] == report["failed"] == missing

"""Replays of the smoke schedule against a real record service (SQLite), as `segur load` runs them."""

import csv
import hashlib
import json
import subprocess
import urllib.request

import pytest

from load.schedule import describe
from tests.load.conftest import SEGUR


def _load(service, run, out, *extra):
    # 50x: the smoke window (10 min, mostly deposits, heavy-tailed sizes, flushes on the minute) in 12 s; at
    # 100x the driver's own CPU for building the largest deposits made a few rows leave > 20 ms late
    proc = subprocess.run([*SEGUR, "load", str(run), "--target", service.url, "--key", str(service.key),
                           "--speedup", "50", "--out", str(out), *extra], capture_output=True, text=True, timeout=180)
    assert (out / "replay.json").exists(), proc.stderr[-2000:]
    return proc, json.loads((out / "replay.json").read_text())


def _locust_counts(out):
    """Locust's interactions (type e.g. "consultation (xds)"), counted by the schedule's operation they play."""
    operations = {"consultation": "search", "document view": "retrieve", "deposit": "deposit", "patient session": "search",
                  "patient document view": "retrieve", "patient upload": "deposit", "access history": "history"}
    counts: dict[str, int] = {}
    with (out / "locust_stats.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["Type"].endswith(")"):
                interaction = row["Type"].rpartition(" (")[0]
                operation = operations.get(interaction, interaction)
                counts[operation] = counts.get(operation, 0) + int(row["Request Count"])
    return counts


def _calls(out):
    with (out / "locust_stats.csv").open() as handle:
        return {row["Name"]: int(row["Request Count"]) for row in csv.DictReader(handle) if row["Type"] == "POST"}


@pytest.fixture(scope="module")
def single(service, seeded, tmp_path_factory):
    out = tmp_path_factory.mktemp("load-single")
    return (out, *_load(service, seeded, out))


def test_replay_is_faithful_to_the_schedule(single, seeded):
    out, proc, report = single
    facts = describe(seeded)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert report["sent"] == report["planned"] == facts.rows
    assert report["sent_by_operation"] == facts.by_operation            # the same count and mix
    assert _locust_counts(out) == facts.by_operation                    # and Locust saw the same
    assert report["failed"] == 0 and report["unanswered"] == 0
    # the service (2 workers, each verifying the VIHF of every new professional and patient, TD0.2 before every
    # deposit) shares this machine's 2 cores with the driver during the minute's flush of deposits: a few rows of
    # the 154 leave late then (0.97-0.99 within 20 ms measured); the driver alone keeps 5 000 rows/s on time
    # (bench/replay.py). What a plan judges is the lateness p99 against its SLO (100 ms).
    assert report["share_within_20ms"] >= 0.95 and report["lateness_p99_ms"] <= 100


def test_the_professionals_interactions_are_their_xds_calls(single, seeded):
    """Under the default protocol (dmp) every professional deposit is TD0.2 + ITI-41, every consultation starts
    with TD0.2, every professional retrieve is one ITI-43; patients stay on FHIR."""
    import pyarrow.parquet as pq
    out, _, report = single
    rows = pq.read_table(seeded / "schedule.parquet", columns=["operation", "actor_kind"]).to_pylist()
    professional = {op: sum(1 for r in rows if r["operation"] == op and r["actor_kind"] == "professional")
                    for op in ("deposit", "search", "retrieve")}
    calls = _calls(out)
    assert calls["ITI-41"] == professional["deposit"] > 0
    assert calls["TD0.2"] == professional["deposit"] + professional["search"]
    assert calls.get("ITI-43", 0) == professional["retrieve"]
    searched = sum(n for name, n in calls.items() if name.startswith("ITI-18 Find"))
    assert searched == professional["search"]  # one FindDocuments or FindSubmissionSets per consultation
    figures = report["calls"]
    assert figures["ITI-41"]["failures"] == 0 and figures["ITI-41"]["driver_cpu_us"] > 0
    # `segur seed` signed every assertion of the window ahead: none was signed while the replay ran
    assert (seeded / "vihf.parquet").exists() and "VIHF" not in report["signatures"]
    consultations = [f for name, f in report["interactions"].items() if name.startswith("consultation (xds)")]
    assert sum(f["count"] for f in consultations) == professional["search"]


def _iti43(service, ins: str, master_id: str) -> bytes:
    from identity.actors import Actor
    from identity.structure import load_or_create_structure
    from identity.vihf import issue_assertion
    from load import xds
    assertion = issue_assertion(load_or_create_structure(service.key), Actor(rpps="10000000009", sector="hospital"),
                                ins)
    request = xds.retrieve(assertion, [xds.unique_id(master_id)])
    call = urllib.request.Request(service.url + request.path, data=request.body,
                                  headers={"Content-Type": request.content_type})
    with urllib.request.urlopen(call, timeout=10) as answer:
        return xds.read_answer(answer.read()).documents()[xds.unique_id(master_id)]


def test_every_acknowledged_deposit_is_retrievable_byte_for_byte(single, service, seeded):
    """ITI-65 acknowledgements by ITI-68 at their Binary location, ITI-41 ones by ITI-43 with their uniqueId."""
    import pyarrow.parquet as pq
    out, _, report = single
    token = subprocess.run([*SEGUR, "token", "--professional", "10000000009", "--sector", "hospital",
                            "--key", str(service.key)], capture_output=True, text=True, check=True).stdout.strip()
    with (out / "acks.csv").open() as handle:
        acks = list(csv.DictReader(handle))
    assert len(acks) == report["sent_by_operation"]["deposit"]
    patients = {row["document_id"]: row["patient_ins"] for row in pq.read_table(
        seeded / "schedule.parquet", columns=["document_id", "patient_ins"]).to_pylist()}
    assert any(ack["location"].startswith("xds:") for ack in acks)
    for ack in acks:
        if ack["location"].startswith("xds:"):
            data = _iti43(service, patients[ack["master_identifier"]], ack["master_identifier"])
            assert len(data) == int(ack["size"]) and hashlib.sha256(data).hexdigest() == ack["sha256"]
            continue

        request = urllib.request.Request(f"{service.url}/{ack['location']}", headers={
            "Authorization": f"Bearer {token}", "Accept": "application/pdf"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            data = answer.read()
        assert len(data) == int(ack["size"]) and hashlib.sha256(data).hexdigest() == ack["sha256"]
        assert ack["master_identifier"].encode() in data[:200]  # the document is the one deposited


def test_two_workers_send_exactly_the_schedule(service, seeded, tmp_path):
    proc, report = _load(service, seeded, tmp_path, "--processes", "2")
    facts = describe(seeded)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert report["workers"] == 2
    assert report["sent_by_operation"] == facts.by_operation and _locust_counts(tmp_path) == facts.by_operation
    with (tmp_path / "acks.csv").open() as handle:
        masters = [row["master_identifier"] for row in csv.DictReader(handle)]
    assert len(masters) == facts.by_operation["deposit"] and len(set(masters)) == len(masters)


def test_lateness_and_concurrency_are_where_a_locust_user_looks(single):
    out, _, report = single
    html = (out / "locust.html").read_text()
    assert "segur-replay" in html and "lateness p99" in html and "in flight" in html
    rows = list(csv.reader((out / "locust_replay.csv").open()))
    assert rows[0] == ["second", "planned", "sent", "succeeded", "failed"]
    assert sum(int(r[2]) for r in rows[1:] if r and r[0].isdigit()) == report["sent"]
    at = next(i for i, row in enumerate(rows) if row[:2] == ["sent", "not_sent"])
    summary = dict(zip(rows[at], rows[at + 1]))  # the summary row (per-request rows follow)
    assert report["in_flight_max"] >= 1 and summary["lateness_p99_ms"] == str(report["lateness_p99_ms"])


def test_lateness_per_request_lines_up_with_locusts_statistics(single):
    """One row per interaction row of Locust's Statistics (same Type and Name, e.g. "consultation (xds)" and
    "first visit", as many sent as Locust counted), in the HTML report and in locust_replay.csv, then Aggregated:
    the overall figures."""
    out, _, report = single
    with (out / "locust_stats.csv").open() as handle:
        locust = {(row["Type"], row["Name"]): int(row["Request Count"]) for row in csv.DictReader(handle)
                  if row["Type"].endswith(")")}
    rows = list(csv.reader((out / "locust_replay.csv").open()))
    header = rows.index(["type", "name", "sent", "not_sent", "lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms",
                         "in_flight_max"])
    operations = [dict(zip(rows[header], row)) for row in rows[header + 1:]]
    assert {(row["type"], row["name"]): int(row["sent"]) for row in operations[:-1]} == locust
    aggregated = operations[-1]
    assert aggregated["name"] == "Aggregated" and int(aggregated["sent"]) == report["sent"]
    assert float(aggregated["lateness_p99_ms"]) == report["lateness_p99_ms"]
    for row in operations:
        assert 0 <= float(row["lateness_p50_ms"]) <= float(row["lateness_p99_ms"]) <= float(row["lateness_max_ms"])
        assert int(row["in_flight_max"]) >= 1
    html = (out / "locust.html").read_text()
    assert all(f"<td>{row['type']}</td><td>{row['name']}</td><td>{row['sent']}</td>" in html for row in operations)

import csv

import pyarrow as pa
import pyarrow.parquet as pq

from load.checks import Deposited, Outcome
from load.client import AckLog, Locations, RecordClient, Tokens
from load.http import Reply
from load.requests import METHODS, DocumentBytes, deposit


def test_processes_sharing_an_ack_log_write_one_header(tmp_path):
    path = tmp_path / "acks.csv"
    first, second = AckLog(path), AckLog(path)  # two workers open it at once
    first.append("urn:oid:1.1", "ab", 10, "Binary/1")
    second.append("urn:oid:1.2", "cd", 20, "Binary/2")
    first.close()
    second.close()
    rows = list(csv.DictReader(path.open()))
    assert [r["master_identifier"] for r in rows] == ["urn:oid:1.1", "urn:oid:1.2"]


def test_documents_are_distinct_and_of_the_asked_size():
    documents = DocumentBytes(block_bytes=1 << 20)
    a, b = documents.content("urn:oid:1.1", 50_000), documents.content("urn:oid:1.2", 50_000)
    assert len(a) == len(b) == 50_000 and a != b and b"urn:oid:1.1" in a[:64]
    assert len(documents.content("urn:oid:1.3", 3 << 20)) == 3 << 20  # larger than the block


def test_deposit_bundle_and_locations_round_trip(tmp_path):
    row = {"document_id": "urn:oid:1.9", "patient_ins": "295109912611193", "type_code": "11502-2",
           "actor_kind": "professional", "actor_id": "10000000009", "facility_id": "010000008"}
    bundle = deposit(row, b"%PDF data", "2026-12-07T10:00:00+01:00")
    assert bundle.size == 9 and b'"11502-2"' in bundle.body and b"urn:oid:1.9" in bundle.body
    known = Locations()
    known.add("urn:oid:1.9", "abc", "Binary/abc")
    known.save(tmp_path / "locations.parquet", "http://x")
    assert Locations.load(tmp_path / "locations.parquet").get("urn:oid:1.9") == ("abc", "Binary/abc")


def test_locations_keep_what_was_deposited_and_read_files_written_before(tmp_path):
    known = Locations()
    known.add("urn:oid:1.1", "a", "Binary/a", Deposited(10, "ab" * 32, "urn:oid:1.1"))
    known.add("urn:oid:1.2", "b", "Binary/b")  # deposited bytes unknown
    known.save(tmp_path / "locations.parquet", "http://x")
    loaded = Locations.load(tmp_path / "locations.parquet")
    assert loaded.deposited("urn:oid:1.1") == Deposited(10, "ab" * 32, "urn:oid:1.1")
    assert loaded.deposited("urn:oid:1.2") is None and loaded.get("urn:oid:1.2") == ("b", "Binary/b")
    pq.write_table(pa.table({"document_id": ["urn:oid:1.3"], "document": ["c"], "binary": ["Binary/c"]}),
                   tmp_path / "old.parquet")  # a file of `segur seed` before sizes were kept
    old = Locations.load(tmp_path / "old.parquet")
    assert old.get("urn:oid:1.3") == ("c", "Binary/c") and old.deposited("urn:oid:1.3") is None


def test_each_operation_is_sent_with_the_method_locusts_statistics_show_beside_its_name(tmp_path):
    """The Lateness tab and the reports give each operation the Type (HTTP method) of load.requests.METHODS:
    the one the client really sends, so their rows line up with Locust's Statistics rows."""
    sent = []

    class Http:
        def call(self, method, path, name, headers, body=None, ok=(200,), check=None, **_):
            sent.append((name, method))
            return Reply(Outcome.FAILED, 503, b"")

    locations = Locations()
    locations.add("urn:oid:1.1", "doc1", "Binary/1")
    class Event:
        def fire(self, **_):
            pass

    client = RecordClient(Http(), Tokens(tmp_path / "key"), locations, AckLog(None), DocumentBytes(block_bytes=1 << 16),
                          request_event=Event(), protocol="fhir")
    # a patient's row is one FHIR call (a professional's is an interaction of several: tests/load/test_interactions)
    row = {"document_id": "urn:oid:1.1", "patient_ins": "295109912611193", "type_code": "11502-2",
           "actor_kind": "patient", "actor_id": "295109912611193", "sector": "patient", "facility_id": None,
           "size_bytes": 1000, "target_rpps": "10000000017"}
    for operation in METHODS:
        client.send({**row, "operation": operation})
    assert sent == list(METHODS.items())

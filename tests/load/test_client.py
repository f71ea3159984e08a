import csv

from load.client import AckLog, Locations
from load.requests import DocumentBytes, deposit, locations


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
    answer = (b'{"entry":[{"response":{"location":"DocumentReference/abc/_history/1"}},'
              b'{"response":{"location":"Binary/abc"}}]}')
    assert locations(answer) == ("abc", "Binary/abc") and locations(b"not json") == (None, None)
    known = Locations()
    known.add("urn:oid:1.9", "abc", "Binary/abc")
    known.save(tmp_path / "locations.parquet", "http://x")
    assert Locations.load(tmp_path / "locations.parquet").get("urn:oid:1.9") == ("abc", "Binary/abc")

"""The driver's XDS.b messages (load/xds.py), its call patterns (load/interactions.py) and the VIHF signed ahead
(load/vihf_ahead.py): what it sends is what the standard and the service say, without the service's code."""

from __future__ import annotations

import base64
import datetime as dt
import statistics

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lxml import etree

from identity.structure import load_or_create_structure
from load import interactions, vihf_ahead, xds
from load.client import Assertions
from load.interactions import CallPatterns
from record_service.xds import terms
from tests import schemas

INS = "295109912611193"
RPPS = "10000000009"


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "signing.key"
    load_or_create_structure(path)
    return path


@pytest.fixture(scope="module")
def schema():
    return schemas.load(schemas.XDS)


@pytest.fixture(scope="module")
def assertion(key):
    return Assertions(key).for_row({"actor_id": RPPS, "sector": "hospital", "facility_id": "010000008",
                                    "patient_ins": INS})


def test_the_driver_spells_the_protocol_as_the_service_does():
    """The driver does not import the service; both write the standard's names, and must agree."""
    for prefix in ("soap", "wsa", "wsse", "rim", "rs", "lcm", "query", "xdsb", "xop", "segur"):
        assert xds.NS[prefix] == terms.NS[prefix], prefix
    for name in ("ITI41", "ITI18", "ITI43", "TD02", "SUCCESS", "APPROVED", "HAS_MEMBER", "DOCUMENT_ENTRY", "DE_AUTHOR",
                 "DE_CLASS", "DE_CONFIDENTIALITY", "DE_FORMAT", "DE_FACILITY_TYPE", "DE_PRACTICE", "DE_TYPE",
                 "DE_PATIENT_ID", "DE_UNIQUE_ID", "SUBMISSION_SET", "SS_CONTENT_TYPE", "SS_UNIQUE_ID", "SS_SOURCE_ID",
                 "SS_PATIENT_ID", "FIND_DOCUMENTS", "FIND_SUBMISSION_SETS", "GET_ASSOCIATIONS",
                 "GET_DOCUMENTS_AND_ASSOCIATIONS", "REPOSITORY_UNIQUE_ID"):
        assert getattr(xds, name) == getattr(terms, name), name


def _envelope(request: xds.Request) -> tuple[etree._Element, dict[str, bytes]]:
    answer_like = xds.read_answer(request.body)  # the request parses as an answer would: MTOM or plain
    return answer_like.body.getroottree().getroot(), answer_like.parts


@pytest.mark.parametrize("make", [
    lambda a: xds.provide_and_register(a, ins=INS, rpps=RPPS, finess="010000008", master_id="urn:oid:1.2.3.4",
                                       data=b"%PDF-1.7 x" * 100, type_code="11502-2",
                                       when=dt.datetime(2026, 11, 30, 10, tzinfo=dt.timezone.utc)),
    lambda a: xds.td02(a, INS),
    lambda a: xds.find_documents(a, INS, dt.datetime(2024, 11, 30, tzinfo=dt.timezone.utc)),
    lambda a: xds.find_submission_sets(a, INS, dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)),
    lambda a: xds.get_associations(a, ["urn:uuid:" + "1" * 8 + "-1111-1111-1111-" + "1" * 12]),
    lambda a: xds.get_documents_and_associations(a, ["urn:uuid:" + "2" * 8 + "-2222-2222-2222-" + "2" * 12]),
    lambda a: xds.retrieve(a, ["1.2.3.4", "1.2.3.5"]),
], ids=["ITI-41", "TD0.2", "FindDocuments", "FindSubmissionSets", "GetAssociations", "GetDocumentsAndAssociations",
        "ITI-43"])
def test_every_request_is_a_schema_valid_soap_1_2_envelope_with_its_action_and_vihf(make, assertion, schema):
    request = make(assertion)
    envelope, parts = _envelope(request)
    assert envelope.tag == xds.q("soap", "Envelope")
    assert envelope.findtext(f".//{xds.q('wsa', 'Action')}") == request.action
    assert request.path == xds.PATHS[request.action] and request.action in request.content_type
    security = envelope.find(f".//{xds.q('wsse', 'Security')}")
    assert security is not None and etree.QName(security[0]).localname == "Assertion"
    for include in list(envelope.iter(xds.q("xop", "Include"))):  # the XOP package read back, as XOP says
        document = include.getparent()
        document.remove(include)
        document.text = base64.b64encode(parts[include.get("href").removeprefix("cid:")]).decode()
    if request.action != xds.TD02:  # our own TD0.2 shape has no official schema
        assert schema.validate(envelope), [f"line {e.line}: {e.message}" for e in schema.error_log][:5]


def test_an_iti41_carries_its_document_as_an_mtom_part_with_its_declared_hash_and_size(assertion):
    data = bytes(range(256)) * 40
    request = xds.provide_and_register(assertion, ins=INS, rpps=RPPS, finess=None, master_id="urn:oid:1.2.250.9",
                                       data=data, type_code="11502-2", when=dt.datetime.now(dt.timezone.utc))
    assert request.content_type.startswith("multipart/related") and 'type="application/xop+xml"' in request.content_type
    envelope, parts = _envelope(request)
    include = envelope.find(f".//{xds.q('xdsb', 'Document')}/{xds.q('xop', 'Include')}")
    assert parts[include.get("href").removeprefix("cid:")] == data
    slots = {slot.get("name"): slot.findtext(f".//{xds.q('rim', 'Value')}") for slot in envelope.iter(xds.q("rim", "Slot"))}
    import hashlib
    assert slots["hash"] == hashlib.sha1(data).hexdigest() and slots["size"] == str(len(data))
    ids = {e.get("identificationScheme"): e.get("value") for e in envelope.iter(xds.q("rim", "ExternalIdentifier"))}
    assert ids[xds.DE_UNIQUE_ID] == "1.2.250.9" and ids[xds.DE_PATIENT_ID] == xds.cx(INS)


def test_answers_are_read_plain_or_mtom_and_a_fault_is_refused():
    body = (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
            b'<xdsb:RetrieveDocumentSetResponse xmlns:xdsb="urn:ihe:iti:xds-b:2007" '
            b'xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" xmlns:xop="http://www.w3.org/2004/08/xop/include">'
            b'<rs:RegistryResponse status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"/>'
            b'<xdsb:DocumentResponse><xdsb:DocumentUniqueId>1.2.3</xdsb:DocumentUniqueId>'
            b'<xdsb:Document><xop:Include href="cid:doc@x"/></xdsb:Document></xdsb:DocumentResponse>'
            b'<xdsb:DocumentResponse><xdsb:DocumentUniqueId>1.2.4</xdsb:DocumentUniqueId>'
            b'<xdsb:Document>' + base64.b64encode(b"inline") + b'</xdsb:Document></xdsb:DocumentResponse>'
            b'</xdsb:RetrieveDocumentSetResponse></s:Body></s:Envelope>')
    mtom = (b"--B\r\nContent-Type: application/xop+xml\r\nContent-ID: <root>\r\n\r\n" + body +
            b"\r\n--B\r\nContent-Type: application/pdf\r\nContent-ID: <doc@x>\r\n\r\n\r\nbytes\r\n--B--\r\n")
    answer = xds.read_answer(mtom)
    assert answer.documents() == {"1.2.3": b"\r\nbytes", "1.2.4": b"inline"}
    assert answer.status == xds.SUCCESS  # an ITI-43 answer's status is its rs:RegistryResponse's
    fault = (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>'
             b's:Sender</s:Value></s:Code><s:Reason><s:Text>no</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>')
    with pytest.raises(xds.BadAnswer, match="SOAP Fault: no"):
        xds.read_answer(fault)
    with pytest.raises(xds.BadAnswer):
        xds.read_answer(b"<html>not soap</html>")


def test_call_patterns_draw_visits_as_the_scenario_says():
    patterns = CallPatterns.from_metadata({"call_patterns": '{"first_visit_share": 0.25, "days_since_last_visit": 60,'
                                                            ' "unknown_later_key": 1}'})
    assert patterns.first_visit_share == 0.25 and patterns.batch_size == 20  # defaults for what is not given
    rows = [{"actor_id": f"{i:011d}", "patient_ins": INS, "offset_s": i * 0.5} for i in range(4000)]
    first = sum(patterns.first_visit(row) for row in rows) / len(rows)
    assert 0.22 < first < 0.28
    assert all(patterns.first_visit(row) == patterns.first_visit(dict(row)) for row in rows[:50])  # stable
    now = dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
    days = [(now - patterns.last_visit(row, now)).total_seconds() / 86400 for row in rows]
    assert 54 < statistics.mean(days) < 66 and min(days) >= 1 / 24
    assert (now - patterns.find_from(now)).days in (730, 731)
    assert CallPatterns.from_metadata({}) == CallPatterns()


def test_protocols_route_professionals_and_keep_patients_on_fhir():
    professional, patient = {"actor_kind": "professional"}, {"actor_kind": "patient"}
    assert [interactions.route(p, professional) for p in ("dmp", "xds", "fhir")] == ["xds", "xds", "fhir"]
    assert {interactions.route(p, patient) for p in ("dmp", "fhir")} == {"fhir"}
    assert not interactions.replayed("xds", "patient") and interactions.replayed("dmp", "patient")
    with pytest.raises(ValueError, match="unknown protocol"):
        interactions.route("soap", professional)
    row = {"actor_kind": "professional", "operation": "search"}
    assert interactions.locust_type(row, "dmp") == "consultation (xds)"


def test_vihf_signed_ahead_are_loaded_and_only_by_the_structure_that_signed_them(tmp_path, key):
    rows = [{"offset_s": float(i), "operation": op, "actor_kind": "professional", "actor_id": RPPS, "sector": "hospital",
             "facility_id": "010000008", "patient_ins": ins}
            for i, (op, ins) in enumerate([("search", INS), ("deposit", INS), ("retrieve", "195019912612384")])]
    rows.append({**rows[0], "operation": "search", "actor_kind": "patient", "actor_id": INS, "sector": "patient"})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "schedule.parquet")
    path = vihf_ahead.sign_schedule(tmp_path, key, log=lambda _: None, progress=False)
    table = pq.read_table(path).to_pylist()
    assert sorted(r["patient_ins"] for r in table) == sorted([INS, "195019912612384"])  # one per professional+patient
    assertions = Assertions(key, ahead=path)
    assert len(assertions) == 2
    signed = []

    class Book:
        def add(self, *args, **kwargs):
            signed.append(args)
    assertions.signed = Book()
    assertions.for_row(rows[0])
    assert signed == []                                   # loaded, not signed again
    other_key = tmp_path / "other" / "signing.key"
    other_key.parent.mkdir()
    assert len(Assertions(other_key, ahead=path)) == 0    # another structure's assertions would be refused
    assert vihf_ahead.load(path, None, now=table[0]["expires_at"]) == {}  # expired ones are not taken
    again = []
    vihf_ahead.sign_schedule(tmp_path, key, log=again.append, progress=False)
    assert "signed 0 VIHF" in again[0] and "(2 kept)" in again[0]


class _Event:
    def __init__(self):
        self.fired = []

    def fire(self, **kwargs):
        self.fired.append(kwargs)


@pytest.fixture()
def answering():
    """A 127.0.0.1 server answering every POST with 200 and the body put in ``answering.body``."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        body = b""

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/soap+xml")
            self.send_header("Content-Length", str(len(Handler.body)))
            self.end_headers()
            self.wfile.write(Handler.body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield Handler
    server.shutdown()
    server.server_close()


_FAILURE = (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><rs:RegistryResponse '
            b'xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" status="urn:oasis:names:tc:ebxml-regrep:'
            b'ResponseStatusType:Failure"><rs:RegistryErrorList><rs:RegistryError errorCode="XDSRegistryError" '
            b'codeContext="no"/></rs:RegistryErrorList></rs:RegistryResponse></s:Body></s:Envelope>')


def test_a_refusal_in_xds_terms_is_a_failure_and_an_unreadable_answer_a_wrong_one(answering, key, tmp_path):
    """A RegistryResponse Failure is the service refusing (a failure, as a FHIR 4xx), not a wrong answer; an
    answer the check cannot read (here: invalid base64 in an ITI-43) is a wrong answer, never a crash."""
    from load.checks import Outcome
    from load.client import AckLog, Locations, RecordClient, Tokens
    from load.http import RecordHttp
    from load.requests import DocumentBytes
    from load.stats import ReplayStats

    event, stats = _Event(), ReplayStats()
    http = RecordHttp(answering.url, event, connections=2, calls=stats.calls)
    locations = Locations()
    locations.add("urn:oid:1.2.3", "", "")
    client = RecordClient(http, Tokens(key), locations, AckLog(None), DocumentBytes(block_bytes=1 << 16), event,
                          protocol="dmp", assertions=Assertions(key), stats=stats)
    row = {"document_id": "urn:oid:1.2.3", "patient_ins": INS, "type_code": "11502-2", "actor_kind": "professional",
           "actor_id": RPPS, "sector": "hospital", "facility_id": "010000008", "size_bytes": 1000, "offset_s": 1.0,
           "operation": "retrieve"}
    answering.body = _FAILURE
    assert client.send(row) is Outcome.FAILED
    assert str(event.fired[0]["exception"]) == "ITI-43 refused: XDSRegistryError"
    answering.body = (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
                      b'<xdsb:RetrieveDocumentSetResponse xmlns:xdsb="urn:ihe:iti:xds-b:2007" '
                      b'xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"><rs:RegistryResponse status="urn:oasis:'
                      b'names:tc:ebxml-regrep:ResponseStatusType:Success"/><xdsb:DocumentResponse><xdsb:DocumentUniqueId>'
                      b'1.2.3</xdsb:DocumentUniqueId><xdsb:Document>%%%not base64</xdsb:Document></xdsb:DocumentResponse>'
                      b'</xdsb:RetrieveDocumentSetResponse></s:Body></s:Envelope>')
    assert client.send(row) is Outcome.WRONG
    assert stats.calls.failed["ITI-43"] == 2 and stats.interactions.count
    http.close()


def test_the_scenario_clock_dates_queries_and_deposits_in_the_scenario():
    clock = interactions.scenario_clock({"window_start": "2026-12-07T16:30:00"})
    assert clock({"offset_s": 90.0}) == dt.datetime(2026, 12, 7, 16, 31, 30, tzinfo=interactions.SCENARIO_ZONE)
    wall = interactions.scenario_clock({})({"offset_s": 5.0})   # an older schedule: the wall clock
    assert abs((wall - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 5


def test_the_submission_set_never_reuses_a_documents_unique_id(assertion):
    """Looped deposits name documents P.0, P.0.1…: the submission set has its own OID, never '<document>.1'."""
    ids = set()
    for master in ("urn:oid:1.2.250.9.0", "urn:oid:1.2.250.9.0.1"):
        request = xds.provide_and_register(assertion, ins=INS, rpps=RPPS, finess=None, master_id=master, data=b"x",
                                           type_code="11502-2", when=dt.datetime.now(dt.timezone.utc))
        envelope, _ = _envelope(request)
        found = {e.get("identificationScheme"): e.get("value") for e in envelope.iter(xds.q("rim", "ExternalIdentifier"))}
        assert found[xds.SS_UNIQUE_ID].startswith("2.25.")
        ids |= {found[xds.SS_UNIQUE_ID], found[xds.DE_UNIQUE_ID]}
    assert len(ids) == 4

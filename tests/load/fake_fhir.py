"""A tiny FHIR MHD server on 127.0.0.1 that answers with an accepted status but, in one chosen way, wrongly.

``wrong`` picks what it gets wrong (everything else is answered right, as the record service would):
- ``"search"``: every search answers a searchset with another patient's DocumentReference;
- ``"retrieve"``: every retrieve answers other bytes: one byte short for even-sized documents, one
  byte changed for odd-sized ones;
- ``"deposit"``: every deposit answers a transaction-response whose entries name no location;
- ``"empty"``: every search answers an empty searchset, as if the patient had no documents;
- ``"history"``: every access-history request answers an AuditEvent about another patient.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

from segur.identifiers import INS_NIR_SYSTEM

OTHER_PATIENT = "292051305508777"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wrong = ""
    store: dict[str, tuple[str, bytes, str]] = {}   # id -> (patient INS, bytes, masterIdentifier)
    lock = threading.Lock()

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, payload: dict | bytes, content_type: str = "application/fhir+json") -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/health":
            return self._send(200, {"status": "ok"}, "application/json")
        if parts.path == "/AuditEvent":
            return self._history()
        if parts.path == "/Patient":  # TD0.2 in FHIR: every record is open, every professional authorised
            ins = parse_qs(parts.query).get("identifier", ["|"])[0].rpartition("|")[2]
            return self._send(200, {"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [
                {"resource": {"resourceType": "Patient", "active": True,
                              "identifier": [{"system": INS_NIR_SYSTEM, "value": ins}]}}]})
        if parts.path == "/DocumentReference":
            return self._search(parse_qs(parts.query).get("patient.identifier", ["|"])[0].rpartition("|")[2])
        doc_id = parts.path.rpartition("/")[2]
        with self.lock:
            found = self.store.get(doc_id)
        if found is None:
            return self._send(404, {"resourceType": "OperationOutcome", "issue": []})
        data = found[1]
        if self.wrong == "retrieve":
            data = data[:-1] if len(data) % 2 == 0 else data[:-1] + bytes([data[-1] ^ 1])
        return self._send(200, data, "application/pdf")

    def _search(self, ins: str) -> None:
        with self.lock:
            mine = [(doc_id, master) for doc_id, (patient, _, master) in self.store.items() if patient == ins]
        if self.wrong == "empty":
            mine = []
        subject = OTHER_PATIENT if self.wrong == "search" else ins
        entries = [{"resource": {"resourceType": "DocumentReference", "id": doc_id, "status": "current",
                                 "masterIdentifier": {"value": master},
                                 "subject": {"identifier": {"system": INS_NIR_SYSTEM, "value": subject}}},
                    "search": {"mode": "match"}}
                   for doc_id, master in (mine or ([("x", "urn:oid:1")] if self.wrong == "search" else []))]
        self._send(200, {"resourceType": "Bundle", "type": "searchset", "entry": entries})

    def _history(self) -> None:
        entries = [] if self.wrong != "history" else [{"resource": {
            "resourceType": "AuditEvent", "id": "1",
            "entity": [{"what": {"identifier": {"system": INS_NIR_SYSTEM, "value": OTHER_PATIENT}}}]}}]
        self._send(200, {"resourceType": "Bundle", "type": "searchset", "entry": entries})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if urlsplit(self.path).path != "/":
            return self._send(200, {"resourceType": "OperationOutcome", "issue": []})
        entries = json.loads(body)["entry"]
        doc_id = uuid.uuid4().hex
        document = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "DocumentReference")
        binary = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "Binary")
        with self.lock:
            self.store[doc_id] = (document["subject"]["identifier"]["value"], base64.b64decode(binary["data"]),
                                  document["masterIdentifier"]["value"])
        locations = {"List": f"List/{doc_id}", "DocumentReference": f"DocumentReference/{doc_id}/_history/1",
                     "Binary": f"Binary/{doc_id}"}
        answers = [{"response": {"status": "201 Created"} if self.wrong == "deposit" else
                    {"status": "201 Created", "location": locations[e["resource"]["resourceType"]]}}
                   for e in entries]
        self._send(201, {"resourceType": "Bundle", "type": "transaction-response", "entry": answers})

    def do_DELETE(self) -> None:
        self._send(204, b"")


@contextmanager
def fake_fhir(wrong: str) -> Iterator[str]:
    """Serve on a free 127.0.0.1 port while the block runs; yields the base URL."""
    handler = type("WrongHandler", (_Handler,), {"wrong": wrong, "store": {}, "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

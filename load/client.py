"""One schedule row -> one request to the record service, as the right actor, with its outcome recorded.

The service names documents by its own ids; the schedule by masterIdentifier. :class:`Locations`
maps one to the other: the seeding step writes the corpus's, and every acknowledged deposit of
the replay adds its own (a later read of it runs in the same process: shards are by patient).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from load import requests
from record_service.auth import Actor, issue_token, load_or_create_key

TOKEN_LIFETIME_S = 24 * 3600


class Tokens:
    """A signed token per actor, made once and reused."""

    def __init__(self, key_file: str | Path):
        self._key = load_or_create_key(key_file)
        self._cache: dict[tuple, str] = {}

    def header(self, row: dict) -> str:
        if row["actor_kind"] == "patient":
            who: tuple = ("patient", row["actor_id"])
        else:
            who = ("professional", row["actor_id"], row["sector"], row.get("facility_id"))
        token = self._cache.get(who)
        if token is None:
            actor = Actor(ins=who[1]) if who[0] == "patient" else Actor(rpps=who[1], sector=who[2], finess=who[3])
            token = self._cache[who] = issue_token(self._key, actor, TOKEN_LIFETIME_S)
        return f"Bearer {token}"


class Locations:
    """masterIdentifier -> (DocumentReference id, Binary path) of documents the service holds."""

    COLUMNS = ("document_id", "document", "binary")

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, str]] = {}

    def add(self, master_id: str, document: str, binary: str) -> None:
        self._known[master_id] = (document, binary)

    def get(self, master_id: str | None) -> tuple[str, str] | None:
        return self._known.get(master_id) if master_id else None

    def __len__(self) -> int:
        return len(self._known)

    @classmethod
    def load(cls, path: str | Path | None) -> "Locations":
        known = cls()
        if path and Path(path).exists():
            table = pq.read_table(path, columns=list(cls.COLUMNS))
            for master_id, document, binary in zip(*(table.column(c).to_pylist() for c in cls.COLUMNS)):
                known.add(master_id, document, binary)
        return known

    def save(self, path: str | Path, target: str) -> None:
        ids = list(self._known)
        table = pa.table({"document_id": ids, "document": [self._known[i][0] for i in ids],
                          "binary": [self._known[i][1] for i in ids]}, metadata={"target": target})
        temporary = Path(f"{path}.partial")
        pq.write_table(table, temporary)
        os.replace(temporary, path)


class AckLog:
    """Every acknowledged deposit, one CSV line each, appended (several processes may share the file)."""

    HEADER = "master_identifier,sha256,size,acknowledged_at,location\n"

    def __init__(self, path: str | Path | None):
        self._file = None
        if path:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:  # only the process that creates the file writes the header (workers open it at the same time)
                created = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
            else:
                os.write(created, self.HEADER.encode())
                os.close(created)
            self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def append(self, master_id: str, sha256: str, size: int, location: str) -> None:
        if self._file is not None:
            self._file.write(f"{master_id},{sha256},{size},{time.time():.6f},{location}\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class UnknownTarget(Exception):
    """A read of a document the service never acknowledged (its deposit failed, or seeding missed it)."""


class RecordClient:
    """Sends rows through a :class:`load.http.RecordHttp` (which reports them to Locust's statistics)."""

    def __init__(self, http: Any, tokens: Tokens, locations: Locations, acks: AckLog,
                 documents: requests.DocumentBytes, request_event: Any, run_tag: str = ""):
        self.http, self.tokens, self.locations, self.acks = http, tokens, locations, acks
        self.documents, self.request_event = documents, request_event
        self.run_tag = run_tag

    def master_id(self, row: dict) -> str:
        """The masterIdentifier sent: the schedule's, made unique to this run and loop of the window,
        so that a replayed deposit is a new document, not an idempotent repeat."""
        suffix = ".".join(part for part in (self.run_tag, str(row.get("cycle", 0) or "")) if part)
        return f"{row['document_id']}.{suffix}" if suffix else row["document_id"]

    def send(self, row: dict) -> bool:
        return getattr(self, f"_{row['operation']}")(row)

    def _call(self, method: str, path: str, row: dict, ok: tuple[int, ...] = (200,), body: bytes | None = None,
              accept: str = requests.FHIR_JSON) -> tuple[bool, bytes]:
        headers = {"Authorization": self.tokens.header(row), "Accept": accept}
        if body is not None:
            headers["Content-Type"] = requests.FHIR_JSON
        accepted, _, content = self.http.call(method, path, row["operation"], headers, body, ok)
        return accepted, content

    def _unknown(self, row: dict) -> bool:
        self.request_event.fire(request_type="SKIP", name=row["operation"], response_time=0, response_length=0,
                                exception=UnknownTarget(f"{row['document_id']} was never acknowledged"), context={})
        return False

    def _deposit(self, row: dict) -> bool:
        master_id = self.master_id(row)
        data = self.documents.content(master_id, row["size_bytes"])
        when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        bundle = requests.deposit({**row, "document_id": master_id}, data, when)
        ok, content = self._call("POST", "/", row, ok=(200, 201), body=bundle.body)
        if ok:
            document, binary = requests.locations(content)
            if document and binary:  # later reads in this window name the schedule's id
                self.locations.add(row["document_id"], document, binary)
            self.acks.append(master_id, bundle.sha256, bundle.size, binary or "")
        return ok

    def _search(self, row: dict) -> bool:
        return self._call("GET", requests.search_path(row["patient_ins"]), row)[0]

    def _retrieve(self, row: dict) -> bool:
        return self._on_target(row, lambda document, binary: self._call(
            "GET", "/" + binary, row, accept="application/pdf")[0])

    def _mask(self, row: dict) -> bool:
        return self._on_target(row, lambda document, binary: self._call(
            "POST", f"/DocumentReference/{document}/$mask", row, ok=(200, 204), body=b"{}")[0])

    def _delete(self, row: dict) -> bool:
        # DELETE is idempotent: a document already gone (an earlier loop of the window deleted it) is no error
        return self._on_target(row, lambda document, binary: self._call(
            "DELETE", f"/DocumentReference/{document}", row, ok=(200, 204, 404, 410))[0])

    def _on_target(self, row: dict, act) -> bool:
        """Run ``act(document id, binary path)`` on the row's document, or report it unknown to the service."""
        known = self.locations.get(row["document_id"])
        return self._unknown(row) if known is None else act(*known)

    def _block(self, row: dict) -> bool:
        return self._call("POST", "/Patient/$block", row, ok=(200, 204), body=requests.block_body(row["target_rpps"]))[0]

"""One schedule row -> one request to the record service, as the right actor, with its outcome recorded.

The service names documents by its own ids; the schedule by masterIdentifier. :class:`Locations`
maps one to the other: the seeding step writes the corpus's, and every acknowledged deposit of
the replay adds its own (a later read of it runs in the same process: shards are by patient).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from load import requests
from load.checks import (CreatedDocuments, Deposited, Outcome, check_deposit, check_history, check_retrieve,
                         check_search)
from identity.actors import Actor
from identity.keys import load_or_create_key
from identity.tokens import issue_token

if TYPE_CHECKING:  # load.http imports gevent's HTTP client, which `segur seed` (threads) does not need
    from load.http import Reply

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
    """masterIdentifier -> (DocumentReference id, Binary path) of documents the service holds, and what was
    deposited for each when known (size and sha256 of its bytes: what a retrieve must answer).

    ``locations.parquet`` (written by `segur seed`) has the columns ``document_id``, ``document``, ``binary``,
    and, since the driver checks retrieves, ``size`` (bytes, -1 unknown) and ``sha256`` (hex, "" unknown);
    a file without the last two loads with sizes unknown (retrieves of those documents are not checked).
    A seeded document's bytes were made from its ``document_id`` (see ``load.requests.DocumentBytes``).
    """

    COLUMNS = ("document_id", "document", "binary")
    DEPOSIT_COLUMNS = ("size", "sha256")

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, str]] = {}
        self._deposited: dict[str, Deposited] = {}

    def add(self, master_id: str, document: str, binary: str, deposited: Deposited | None = None) -> None:
        self._known[master_id] = (document, binary)
        if deposited is not None:
            self._deposited[master_id] = deposited
        else:
            self._deposited.pop(master_id, None)

    def get(self, master_id: str | None) -> tuple[str, str] | None:
        return self._known.get(master_id) if master_id else None

    def deposited(self, master_id: str | None) -> Deposited | None:
        """What was deposited under ``master_id`` (None: unknown, e.g. a file written before sizes were kept)."""
        return self._deposited.get(master_id) if master_id else None

    def __len__(self) -> int:
        return len(self._known)

    @classmethod
    def load(cls, path: str | Path | None) -> "Locations":
        known = cls()
        if path and Path(path).exists():
            names = set(pq.read_schema(path).names)
            extra = [c for c in cls.DEPOSIT_COLUMNS if c in names] if set(cls.DEPOSIT_COLUMNS) <= names else []
            table = pq.read_table(path, columns=list(cls.COLUMNS) + extra)
            columns = [table.column(c).to_pylist() for c in cls.COLUMNS]
            if extra:
                sizes, hashes = (table.column(c).to_pylist() for c in cls.DEPOSIT_COLUMNS)
            else:
                sizes, hashes = [-1] * table.num_rows, [""] * table.num_rows
            for (master_id, document, binary), size, sha256 in zip(zip(*columns), sizes, hashes):
                deposited = Deposited(size, sha256 or "", master_id) if size is not None and size >= 0 else None
                known.add(master_id, document, binary, deposited)
        return known

    def save(self, path: str | Path, target: str) -> None:
        ids = list(self._known)
        unknown = Deposited(-1)
        deposited = [self._deposited.get(i, unknown) for i in ids]
        table = pa.table({"document_id": ids, "document": [self._known[i][0] for i in ids],
                          "binary": [self._known[i][1] for i in ids],
                          "size": pa.array([d.size for d in deposited], pa.int64()),
                          "sha256": [d.sha256 for d in deposited]}, metadata={"target": target})
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

    def __repr__(self) -> str:  # Locust's failures table shows repr(): the message, constant per operation
        return str(self)


class RecordClient:
    """Sends rows through a :class:`load.http.RecordHttp` (which reports them to Locust's statistics),
    and checks what each is answered (``load.checks``): ``send`` returns the row's :class:`Outcome`."""

    def __init__(self, http: Any, tokens: Tokens, locations: Locations, acks: AckLog,
                 documents: requests.DocumentBytes, request_event: Any, run_tag: str = ""):
        self.http, self.tokens, self.locations, self.acks = http, tokens, locations, acks
        self.documents, self.request_event = documents, request_event
        self.run_tag = run_tag
        self.created = CreatedDocuments()

    def master_id(self, row: dict) -> str:
        """The masterIdentifier sent: the schedule's, made unique to this run and loop of the window,
        so that a replayed deposit is a new document, not an idempotent repeat."""
        suffix = ".".join(part for part in (self.run_tag, str(row.get("cycle", 0) or "")) if part)
        return f"{row['document_id']}.{suffix}" if suffix else row["document_id"]

    def send(self, row: dict) -> Outcome:
        return getattr(self, f"_{row['operation']}")(row)

    def _call(self, method: str, path: str, row: dict, ok: tuple[int, ...] = (200,), body: bytes | None = None,
              accept: str = requests.FHIR_JSON, check: Callable[[bytes], Any] | None = None) -> Reply:
        headers = {"Authorization": self.tokens.header(row), "Accept": accept}
        if body is not None:
            headers["Content-Type"] = requests.FHIR_JSON
        return self.http.call(method, path, row["operation"], headers, body, ok, check)

    def _unknown(self, row: dict) -> Outcome:
        """No request: the target was never acknowledged. One failure kind per operation in Locust's table
        (request type NOT SENT), and apart from the sent requests in replay.json."""
        self.request_event.fire(request_type="NOT SENT", name=row["operation"], response_time=0, response_length=0,
                                exception=UnknownTarget(f"not sent: target missing ({row['operation']}): seed the "
                                                        "corpus first (segur seed RESULT_DIR --target URL)"),
                                context={})
        return Outcome.NOT_SENT

    def _deposit(self, row: dict) -> Outcome:
        master_id = self.master_id(row)
        data = self.documents.content(master_id, row["size_bytes"])
        when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        bundle = requests.deposit({**row, "document_id": master_id}, data, when)
        reply = self._call("POST", "/", row, ok=(200, 201), body=bundle.body,
                           check=partial(check_deposit, entries=bundle.entries))
        if reply.outcome:
            answer = reply.checked  # later reads in this window name the schedule's id
            self.locations.add(row["document_id"], answer.document, answer.binary,
                               Deposited(bundle.size, bundle.sha256, master_id))
            if answer.created:
                self.created.created(row["patient_ins"], answer.document)
            self.acks.append(master_id, bundle.sha256, bundle.size, answer.binary)
        return reply.outcome

    def _search(self, row: dict) -> Outcome:
        ins = row["patient_ins"]
        by_patient = row["actor_kind"] == "patient"
        expected = self.created.expected(ins, by_patient, None if by_patient else row["actor_id"])
        return self._call("GET", requests.search_path(ins), row,
                          check=partial(check_search, patient_ins=ins, expected=expected)).outcome

    def _retrieve(self, row: dict) -> Outcome:
        deposited = self.locations.deposited(row["document_id"])
        check = None if deposited is None else partial(check_retrieve, deposited=deposited,
                                                       remake=self.documents.content)
        return self._on_target(row, lambda document, binary: self._call(
            "GET", "/" + binary, row, accept="application/pdf", check=check).outcome)

    def _mask(self, row: dict) -> Outcome:
        def act(document: str, binary: str) -> Outcome:
            self.created.masking(document)  # from now on, professionals' searches need not list it
            return self._call("POST", f"/DocumentReference/{document}/$mask", row, ok=(200, 204), body=b"{}").outcome
        return self._on_target(row, act)

    def _delete(self, row: dict) -> Outcome:
        def act(document: str, binary: str) -> Outcome:
            self.created.deleting(document)
            # DELETE is idempotent: a document already gone (an earlier loop of the window deleted it) is no error
            return self._call("DELETE", f"/DocumentReference/{document}", row, ok=(200, 204, 404, 410)).outcome
        return self._on_target(row, act)

    def _on_target(self, row: dict, act: Callable[[str, str], Outcome]) -> Outcome:
        """Run ``act(document id, binary path)`` on the row's document, or report it unknown to the service."""
        known = self.locations.get(row["document_id"])
        return self._unknown(row) if known is None else act(*known)

    def _history(self, row: dict) -> Outcome:
        ins = row["patient_ins"]
        return self._call("GET", requests.history_path(ins), row,
                          check=partial(check_history, patient_ins=ins)).outcome

    def _block(self, row: dict) -> Outcome:
        self.created.blocking(row["patient_ins"], row["target_rpps"])
        return self._call("POST", "/Patient/$block", row, ok=(200, 204),
                          body=requests.block_body(row["target_rpps"])).outcome

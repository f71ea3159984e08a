"""Seeding: load a run's corpus (the documents that exist before the replay window) into a service.

Two paths, the same documents and the same ``locations.parquet``:

- **bulk** (the default): many documents a request through the service's operator bulk load
  (``POST /$bulk-load``, :mod:`record_service.bulk_load`: a compact binary framing, one transaction per
  request, every file fsynced before it commits), with an operator token signed by ``key_file``. It is
  idempotent by masterIdentifier: a document already stored is answered with its ids, never stored twice, so
  a seed cut short (the seeder or the service killed) is completed by running it again.
- **per deposit** (``bulk=False``, ``--no-bulk``): each document deposited by its author as an ITI-65
  transaction, as the replay's deposits are, from a pool of threads each keeping its own connection open.

Which rows: every row the window needs (the corpus's ``needed`` column; every row when it has none), then,
when ``corpus_bytes`` is given, the other rows (in ``seed_order`` when the corpus has that column, else in
file order) until the bytes seeded reach ``corpus_bytes``. What the service answers for the needed rows is kept
in ``locations.parquet`` beside the corpus (the others are never addressed by the replay: keeping them would
only grow the file and the replay's start), so the replay can address documents by the service's ids (and check
that a retrieve answers the size and bytes deposited). A 2xx answer that names no location is a wrong answer
(``load.checks``): that document counts as refused.
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from load import requests, vihf_ahead
from load.checks import DepositAnswer, Deposited, WrongAnswer, check_deposit
from load.client import Locations, Tokens
from identity.keys import load_or_create_key
from identity.tokens import issue_operator_token
from segur.bulk_frame import MAGIC, MEDIA_TYPE, encode_document
from segur.errors import InputError
from segur.identifiers import INS_NIR_SYSTEM

BULK_BATCH_BYTES = 8 * 1024 * 1024   # document bytes a bulk request carries (fewer when the service says 413)
BULK_BATCH_DOCUMENTS = 256           # and at most this many documents
BULK_IN_FLIGHT = 4                   # bulk requests at once: keeps two service workers busy while one is built
_RETRIES = 5                         # a 503 (the service at capacity, a storage fault) or a lost connection


@dataclass
class SeedOutcome:
    documents: int = 0
    stored: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    existing: int = 0          # of ``stored``: already in the service (a seed run again), not stored twice
    seconds: float = 0.0


class _Connections:
    """One keep-alive connection per thread to the target."""

    def __init__(self, target: str):
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"--target {target!r}: expected a URL such as http://127.0.0.1:8080")
        self._factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._local = threading.local()

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        for attempt in (1, 2):  # a kept-alive connection the server closed: reconnect once
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = self._factory(self._host, self._port, timeout=120)
            try:
                connection.request("POST", self._prefix + path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


_ROW_COLUMNS = ("document_id", "patient_ins", "type_code", "size_bytes", "author_kind", "author_id",
                "author_sector", "facility_id", "date")


def _as_row(doc: dict) -> dict:
    return {"document_id": doc["document_id"], "patient_ins": doc["patient_ins"], "type_code": doc["type_code"],
            "size_bytes": doc["size_bytes"], "actor_kind": doc["author_kind"], "actor_id": doc["author_id"],
            "sector": doc["author_sector"], "facility_id": doc["facility_id"], "date": doc["date"],
            "needed": doc.get("needed", True)}


@dataclass
class _Selection:
    """The corpus rows to seed, in the order seeded: ``order`` (row numbers), ``needed`` (per row of ``order``)."""

    order: np.ndarray
    needed: np.ndarray
    bytes: int
    rows_in_corpus: int


def select_rows(corpus: Path, corpus_bytes: int | None) -> _Selection:
    """Every needed row (file order), then, up to ``corpus_bytes`` in all, the others (``seed_order``, else file
    order). A corpus without a ``needed`` column: every row is needed."""
    names = set(pq.read_schema(corpus).names)
    columns = ["size_bytes"] + [c for c in ("needed", "seed_order") if c in names]
    table = pq.read_table(corpus, columns=columns)
    sizes = table.column("size_bytes").to_numpy(zero_copy_only=False).astype(np.int64)
    rows = len(sizes)
    needed = (table.column("needed").fill_null(True).to_numpy(zero_copy_only=False).astype(bool)
              if "needed" in names else np.ones(rows, dtype=bool))
    first = np.flatnonzero(needed)
    order = first
    total = int(sizes[first].sum())
    if corpus_bytes is not None and total < corpus_bytes:
        others = np.flatnonzero(~needed)
        if "seed_order" in names and others.size:
            keys = table.column("seed_order").to_numpy(zero_copy_only=False)[others]
            others = others[np.argsort(keys, kind="stable")]
        running = total + np.cumsum(sizes[others])
        # the rows until the bytes reach corpus_bytes (the one that reaches it included)
        count = int(np.searchsorted(running, corpus_bytes, side="left")) + 1
        others = others[:count]
        order = np.concatenate([first, others])
        total += int(sizes[others].sum())
    return _Selection(order, needed[order], total, rows)


def _selected_rows(corpus: Path, selection: _Selection, chunk: int = 2048) -> Iterator[dict]:
    """The selected rows as dicts, in the selection's order, ``chunk`` at a time (the table's columns once in
    memory: no document bytes, ~100 bytes a row)."""
    names = set(pq.read_schema(corpus).names)
    table = pq.read_table(corpus, columns=list(_ROW_COLUMNS))
    if "needed" in names:
        table = table.append_column("needed", pq.read_table(corpus, columns=["needed"]).column("needed"))
    order = selection.order
    if order.size == table.num_rows and np.array_equal(order, np.arange(order.size)):  # all, in file order
        for batch in table.to_batches(max_chunksize=chunk):
            for doc in batch.to_pylist():
                yield _as_row(doc)
        return
    for start in range(0, order.size, chunk):
        for doc in table.take(pa.array(order[start:start + chunk])).to_pylist():
            yield _as_row(doc)


def _answer(status: int, body: bytes, entries: int) -> tuple[DepositAnswer | None, str]:
    """The deposit's locations, or why it failed: a refusal, a connection error, or a wrong answer
    (a 2xx that is no transaction-response naming the document's locations, see ``load.checks``)."""
    if status not in (200, 201):
        return None, (f"{status} {body[:100].decode(errors='replace')}" if status
                      else f"connection: {body[:80].decode(errors='replace')}")
    try:
        return check_deposit(body, entries), ""
    except WrongAnswer as wrong:
        return None, str(wrong)


def _when(row: dict) -> str:
    return row["date"].isoformat(timespec="seconds") + "+01:00"


def bulk_resource(row: dict, size: int, when: str) -> dict:
    """The DocumentReference of a corpus row, as its ITI-65 deposit carries it (``load.requests.deposit``), its
    bytes in the bulk frame (no ``data``, no ``url``; the service adds the SHA-1 ``hash``)."""
    subject = {"identifier": {"system": INS_NIR_SYSTEM, "value": row["patient_ins"]}}
    document = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": row["document_id"]},
        "status": "current",
        "type": requests.type_coding(row["type_code"]),
        "subject": subject,
        "date": when,
        "author": requests._author(row),
        "context": {"period": {"start": when}},
        "content": [{"attachment": {"contentType": "application/pdf", "size": size, "creation": when}}],
    }
    if row.get("facility_id"):
        document["custodian"] = {"identifier": {"system": "https://finess.esante.gouv.fr", "value": row["facility_id"]}}
    return document


def _depositor(row: dict) -> dict:
    if row["actor_kind"] == "patient":
        return {"ins": row["actor_id"]}
    depositor = {"rpps": row["actor_id"], "sector": row["sector"]}
    if row.get("facility_id"):
        depositor["finess"] = row["facility_id"]
    return depositor


def _bulk_batches(rows: Iterator[dict], max_bytes: int, max_documents: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    size = 0
    for row in rows:
        batch.append(row)
        size += row["size_bytes"]
        if size >= max_bytes or len(batch) >= max_documents:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class _Bulk:
    """Bulk requests to the service, each a batch of rows; what each answers goes to ``locations``."""

    def __init__(self, connections: _Connections, key_file: str | Path, documents: requests.DocumentBytes,
                 record: Callable[[dict, dict | None, Deposited | None, str], None]):
        self.connections = connections
        self.authorization = f"Bearer {issue_operator_token(load_or_create_key(key_file))}"
        self.documents = documents
        self.record = record
        self.max_bytes = BULK_BATCH_BYTES
        self.gone = ""  # why the service cannot be reached, once every retry failed

    def send(self, rows: list[dict]) -> None:
        """Send ``rows`` (split when the service finds the request too large), recording every row's fate. Once
        the service could not be reached after every retry, the rows left are refused at once (run the seed
        again once the service is back: what was stored is answered, not stored twice)."""
        if self.gone:
            for row in rows:
                self.record(row, None, None, self.gone)
            return
        parts: list[bytes] = [MAGIC]
        deposited: list[Deposited] = []
        for row in rows:
            data = self.documents.content(row["document_id"], row["size_bytes"])
            sha256 = hashlib.sha256(data).hexdigest()
            parts += encode_document(bulk_resource(row, len(data), _when(row)), _depositor(row), data, sha256)
            deposited.append(Deposited(len(data), sha256, row["document_id"]))
        body = b"".join(parts)
        del parts
        status, answer = 0, b""
        for attempt in range(_RETRIES):
            try:
                status, answer = self.connections.post("/$bulk-load", body, {
                    "Authorization": self.authorization, "Content-Type": MEDIA_TYPE, "Accept": "application/json"})
            except OSError as error:
                status, answer = 0, str(error).encode()
            if status == 413 and len(rows) > 1:  # the service's limit is lower than our batch: halve it
                self.max_bytes = max(self.max_bytes // 2, 1)
                half = len(rows) // 2
                del body
                self.send(rows[:half])
                self.send(rows[half:])
                return
            if status not in (0, 503) or attempt == _RETRIES - 1 or self.gone:
                break
            time.sleep(min(0.25 * 2 ** attempt, 2))
        if status == 0:
            self.gone = f"connection: {answer[:80].decode(errors='replace')}"
        reason = self._check(status, answer, rows, deposited)
        if reason:
            for row in rows:
                self.record(row, None, None, reason)

    def _check(self, status: int, answer: bytes, rows: list[dict], deposited: list[Deposited]) -> str:
        """'' when the answer locates every row (each recorded), else why not (nothing recorded)."""
        if status != 200:
            return (f"{status} {answer[:160].decode(errors='replace')}" if status
                    else f"connection: {answer[:80].decode(errors='replace')}")
        try:
            located = orjson.loads(answer)["documents"]
            if len(located) != len(rows):
                return f"wrong answer: {len(located)} documents located for {len(rows)} sent"
            for row, sent, where in zip(rows, deposited, located):
                if where.get("masterIdentifier") != row["document_id"] or not where.get("document") \
                        or where.get("binary") != f"Binary/{where['document']}":
                    return f"wrong answer: {row['document_id']} not located"
                if where.get("sha256") != sent.sha256:
                    return f"wrong answer: {row['document_id']} stored with another sha256"
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return f"wrong answer: {answer[:80]!r}"
        for row, sent, where in zip(rows, deposited, located):
            self.record(row, where, sent, "")
        return ""


def seed(result_dir: str | Path, target: str, key_file: str | Path, *, threads: int = 16,
         progress: bool | None = None, log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
         corpus_bytes: int | None = None, bulk: bool = True) -> tuple[SeedOutcome, Path]:
    """Deposit the corpus documents the window needs (and, up to ``corpus_bytes`` bytes in all, others) into
    ``target``; returns the outcome and the locations file. ``bulk``: through the operator's bulk load (with at most
    ``min(threads, 4)`` requests at once), else one ITI-65 deposit per document from ``threads`` threads. Then
    sign the schedule's VIHF assertions ahead (``vihf.parquet``, :mod:`load.vihf_ahead`) with the structure beside
    ``key_file``, which the service trusts when started with the same key."""
    folder = Path(result_dir)
    corpus = folder / "corpus.parquet"
    if not corpus.is_file():
        raise InputError(f"{folder}: no corpus.parquet (run `segur simulate` first)")
    if corpus_bytes is not None and corpus_bytes < 0:
        raise InputError(f"corpus_bytes {corpus_bytes}: a number of bytes, 0 or more")
    selection = select_rows(corpus, corpus_bytes)
    total = int(selection.order.size)
    connections = _Connections(target)
    documents = requests.DocumentBytes()
    locations = Locations()
    outcome = SeedOutcome(documents=total)
    lock = threading.Lock()
    show = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    bar = tqdm(total=selection.bytes, unit="B", unit_scale=True, unit_divisor=1024, desc="seeding",
               disable=not show, smoothing=0.1)

    def record(row: dict, where: dict | None, deposited: Deposited | None, reason: str) -> None:
        with lock:
            if where is not None:
                if row["needed"]:
                    locations.add(row["document_id"], where["document"], where["binary"], deposited)
                outcome.stored += 1
                outcome.bytes += deposited.size
                outcome.existing += not where.get("created", True)
            else:
                outcome.failures[reason] = outcome.failures.get(reason, 0) + 1
            bar.update(row["size_bytes"])

    rows = _selected_rows(corpus, selection)
    if bulk and not _has_bulk_load(connections, key_file):
        log(f"{target} has no bulk load (POST /$bulk-load): seeding one deposit each")
        bulk = False
    try:
        if bulk:
            sender = _Bulk(connections, key_file, documents, record)
            in_flight = max(1, min(threads, BULK_IN_FLIGHT))
            _run(in_flight, (lambda batch=batch: sender.send(batch)
                             for batch in _bulk_batches(rows, BULK_BATCH_BYTES, BULK_BATCH_DOCUMENTS)))
        else:
            tokens = Tokens(key_file)
            token_lock = threading.Lock()

            def deposit(row: dict) -> None:
                data = documents.content(row["document_id"], row["size_bytes"])
                request = requests.deposit(row, data, _when(row))
                with token_lock:
                    authorization = tokens.header(row)
                try:
                    status, body = connections.post("/", request.body, {"Authorization": authorization,
                                                                        "Content-Type": requests.FHIR_JSON,
                                                                        "Accept": requests.FHIR_JSON})
                except OSError as error:
                    status, body = 0, str(error).encode()
                answer, reason = _answer(status, body, request.entries)
                where = None if answer is None else {"document": answer.document, "binary": answer.binary,
                                                     "created": answer.created}
                record(row, where, Deposited(request.size, request.sha256, row["document_id"]), reason)

            _run(threads, (lambda row=row: deposit(row) for row in rows))
    finally:
        bar.close()
    outcome.seconds = time.perf_counter() - started

    path = folder / "locations.parquet"
    locations.save(path, target)
    rate = outcome.stored / outcome.seconds if outcome.seconds else 0.0
    log(f"seeded {outcome.stored:,} of {total:,} documents ({outcome.bytes / 1e6:,.1f} MB) into {target}"
        f" in {outcome.seconds:,.1f} s ({rate:,.0f} documents/s, {'bulk' if bulk else 'one deposit each'}"
        f"{f'; {outcome.existing:,} were already there' if outcome.existing else ''})")
    for reason, count in sorted(outcome.failures.items(), key=lambda item: -item[1])[:5]:
        log(f"  {count:,} refused: {reason}")
    if (folder / "schedule.parquet").is_file():  # the replay's VIHF assertions, so that signing never paces it
        vihf_ahead.sign_schedule(folder, key_file, log=log, progress=show)
    return outcome, path


def _has_bulk_load(connections: _Connections, key_file: str | Path) -> bool:
    """Whether the service has the operator's bulk load: a request of no document is refused as such (400 naming
    the bulk load), where a service without it answers something else (404, 405...). A service that cannot be
    reached: True (the seed then fails fast, saying so)."""
    try:
        status, answer = connections.post("/$bulk-load", MAGIC, {
            "Authorization": f"Bearer {issue_operator_token(load_or_create_key(key_file))}",
            "Content-Type": MEDIA_TYPE})
    except OSError:
        return True
    return status == 400 and b"bulk load" in answer


def _run(workers: int, jobs: Iterator[Callable[[], None]]) -> None:
    """Run ``jobs`` on ``workers`` threads, at most ``4 * workers`` made ahead (the corpus never all in memory)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: set = set()
        for job in jobs:
            pending.add(pool.submit(job))
            if len(pending) >= workers * 4:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
        for future in pending:
            future.result()

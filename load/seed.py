"""Seeding: load a run's corpus (the documents that exist before the replay window) into a service.

Each corpus document is deposited by its author, as the replay's deposits are, from a pool of
threads each keeping its own connection open. What the service answers is kept in
``locations.parquet`` beside the corpus, so the replay can address documents by the service's ids
(and check that a retrieve answers the size and bytes deposited). A 2xx answer that names no
location is a wrong answer (``load.checks``): that document counts as refused.
"""

from __future__ import annotations

import http.client
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

import pyarrow.parquet as pq
from tqdm import tqdm

from load import requests, vihf_ahead
from load.checks import DepositAnswer, Deposited, WrongAnswer, check_deposit
from load.client import Locations, Tokens
from segur.errors import InputError


@dataclass
class SeedOutcome:
    documents: int = 0
    stored: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    bytes: int = 0


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
                connection = self._local.connection = self._factory(self._host, self._port, timeout=60)
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


def _corpus_rows(path: Path, batch_rows: int = 2048) -> Iterator[dict]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        for doc in batch.to_pylist():
            yield {"document_id": doc["document_id"], "patient_ins": doc["patient_ins"],
                   "type_code": doc["type_code"], "size_bytes": doc["size_bytes"],
                   "actor_kind": doc["author_kind"], "actor_id": doc["author_id"],
                   "sector": doc["author_sector"], "facility_id": doc["facility_id"], "date": doc["date"]}


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


def seed(result_dir: str | Path, target: str, key_file: str | Path, *, threads: int = 16,
         progress: bool | None = None, log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)
         ) -> tuple[SeedOutcome, Path]:
    """Deposit every corpus document into ``target``; returns the outcome and the locations file. Then sign the
    schedule's VIHF assertions ahead (``vihf.parquet``, :mod:`load.vihf_ahead`) with the structure beside
    ``key_file``, which the service trusts when started with the same key."""
    folder = Path(result_dir)
    corpus = folder / "corpus.parquet"
    if not corpus.is_file():
        raise InputError(f"{folder}: no corpus.parquet (run `segur simulate` first)")
    total = pq.ParquetFile(corpus).metadata.num_rows
    connections = _Connections(target)
    tokens = Tokens(key_file)
    token_lock = threading.Lock()
    documents = requests.DocumentBytes()
    locations = Locations()
    outcome = SeedOutcome(documents=total)
    lock = threading.Lock()

    def deposit(row: dict) -> None:
        data = documents.content(row["document_id"], row["size_bytes"])
        bundle = requests.deposit(row, data, row["date"].isoformat(timespec="seconds") + "+01:00")
        with token_lock:
            authorization = tokens.header(row)
        try:
            status, body = connections.post("/", bundle.body, {"Authorization": authorization,
                                                              "Content-Type": requests.FHIR_JSON,
                                                              "Accept": requests.FHIR_JSON})
        except OSError as error:
            status, body = 0, str(error).encode()
        answer, reason = _answer(status, body, bundle.entries)
        with lock:
            if answer is not None:
                locations.add(row["document_id"], answer.document, answer.binary,
                              Deposited(bundle.size, bundle.sha256, row["document_id"]))
                outcome.stored += 1
                outcome.bytes += bundle.size
            else:
                outcome.failures[reason] = outcome.failures.get(reason, 0) + 1

    show = sys.stderr.isatty() if progress is None else progress
    with ThreadPoolExecutor(max_workers=threads) as pool, \
            tqdm(total=total, unit="doc", desc="seeding", disable=not show) as bar:
        pending: set = set()
        for row in _corpus_rows(corpus):
            pending.add(pool.submit(deposit, row))
            if len(pending) >= threads * 4:  # bounded read-ahead: the corpus is never all in memory
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
                bar.update(len(done))
        for future in pending:
            future.result()
        bar.update(len(pending))

    path = folder / "locations.parquet"
    locations.save(path, target)
    log(f"seeded {outcome.stored:,} of {total:,} documents ({outcome.bytes / 1e6:,.1f} MB) into {target}")
    for reason, count in sorted(outcome.failures.items(), key=lambda item: -item[1])[:5]:
        log(f"  {count:,} refused: {reason}")
    if (folder / "schedule.parquet").is_file():  # the replay's VIHF assertions, so that signing never paces it
        vihf_ahead.sign_schedule(folder, key_file, log=log, progress=show)
    return outcome, path

"""One schedule row -> one request to the record service, as the right actor, with its outcome recorded.

The service names documents by its own ids; the schedule by masterIdentifier. :class:`Locations`
maps one to the other: the seeding step writes the corpus's, and every acknowledged deposit of
the replay adds its own (a later read of it runs in the same process: shards are by patient).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import zlib
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from load import interactions, requests, xds
from load.checks import (CreatedDocuments, Deposited, Outcome, Refused, WrongAnswer, check_deposit, check_history,
                         check_patient, check_retrieve, check_search)
from load.interactions import CallPatterns
from load.stats import row_label
from identity.actors import Actor
from identity.keys import load_or_create_key
from identity.structure import load_or_create_structure, structure_files
from identity.tokens import issue_token
from identity.vihf import issue_assertion

if TYPE_CHECKING:  # load.http imports gevent's HTTP client, which `segur seed` (threads) does not need
    from load.http import Reply

TOKEN_LIFETIME_S = 24 * 3600
ASSERTION_LIFETIME_S = 8 * 3600   # a VIHF is reused within a working session, as professionals' software does


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


class Assertions:
    """A signed VIHF per professional and patient, made once and reused until it is about to expire (it names
    the patient, so a consultation of another patient needs another). Signed with the structure's key and
    certificate kept beside ``key_file`` (identity.structure), which the service trusts.

    ``signed``: a :class:`load.stats.LatencyBook`-like sink told the time and CPU of each signature.
    Raises FileNotFoundError when ``create`` is false and the structure's files are not beside ``key_file``
    (a worker on another machine must use the structure the service trusts, never make its own)."""

    RENEW_BEFORE_S = 600   # an assertion is signed again when it expires within this many seconds

    def __init__(self, key_file: str | Path, signed: Any = None, ahead: str | Path | None = None,
                 create: bool = True):
        """``ahead``: a ``vihf.parquet`` signed by `segur seed` (load.vihf_ahead), loaded when signed by this
        structure; what it lacks is signed on demand."""
        if not create:
            missing = [str(path) for path in structure_files(key_file) if not path.exists()]
            if missing:
                raise FileNotFoundError(f"the structure's files {', '.join(missing)} are not on this machine: copy them "
                                        "beside the key (a structure of its own would sign assertions the service "
                                        "refuses)")
        self._structure = load_or_create_structure(key_file)
        self._cache: dict[tuple, tuple[bytes, float]] = {}   # who -> (assertion, expires_at)
        if ahead is not None:
            from load import vihf_ahead
            self._cache.update(vihf_ahead.load(ahead, vihf_ahead.structure_fingerprint(key_file)))
        self.signed = signed

    def __len__(self) -> int:
        return len(self._cache)

    def for_row(self, row: dict) -> bytes:
        who = (row["actor_id"], row["sector"], row.get("facility_id"), row["patient_ins"])
        cached = self._cache.get(who)
        now = time.time()
        if cached is None or cached[1] - now < self.RENEW_BEFORE_S:
            started, cpu = time.perf_counter(), time.process_time()
            actor = Actor(rpps=who[0], sector=who[1], finess=who[2])
            cached = self._cache[who] = (issue_assertion(self._structure, actor, who[3], expires_in=ASSERTION_LIFETIME_S,
                                                         now=now), now + ASSERTION_LIFETIME_S)
            if self.signed is not None:
                self.signed.add("VIHF", (time.perf_counter() - started) * 1000, True, time.process_time() - cpu)
        return cached[0]


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


class InteractionFailed(Exception):
    """An interaction one of whose calls failed or was answered wrong (its text names the call: constant per
    kind, so Locust's failures table groups them)."""

    def __repr__(self) -> str:
        return str(self)


# the FHIR calls' names in the calls' book (Locust keeps the operation's name, as before)
# (the service's /metrics name them so too: the planner joins both)
_FHIR_CALLS = {"deposit": "ITI-65", "search": "ITI-67", "retrieve": "ITI-68", "mask": "$mask", "delete": "DELETE",
               "history": "AuditEvent", "block": "$block", "td02": "TD0.2 (FHIR)", "resolve": "ITI-67"}


class RecordClient:
    """Sends rows through a :class:`load.http.RecordHttp` (which reports them to Locust's statistics),
    and checks what each is answered (``load.checks``): ``send`` returns the row's :class:`Outcome`.

    Each row is an interaction (``load.interactions``): under ``protocol`` its calls go over XDS.b or FHIR,
    one after the other; the interaction's latency goes to Locust (type e.g. ``consultation (xds)``) and to
    ``stats.interactions``."""

    def __init__(self, http: Any, tokens: Tokens, locations: Locations, acks: AckLog,
                 documents: requests.DocumentBytes, request_event: Any, run_tag: str = "", *,
                 protocol: str = "dmp", patterns: CallPatterns | None = None, assertions: Assertions | None = None,
                 stats: Any = None, clock: Callable[[dict], dt.datetime] | None = None):
        self.http, self.tokens, self.locations, self.acks = http, tokens, locations, acks
        self.documents, self.request_event = documents, request_event
        self.run_tag = run_tag
        self.created = CreatedDocuments()   # by masterIdentifier
        interactions.route(protocol, {"actor_kind": "patient"})  # an unknown protocol fails here, not per row
        self.protocol = protocol
        self.patterns = patterns or CallPatterns()
        self.assertions = assertions
        self.stats = stats
        # the scenario instant of a row (interactions.scenario_clock): query bounds and deposit dates
        self.clock = clock or (lambda row: dt.datetime.now(dt.timezone.utc))
        # the interaction under way, per greenlet (many are in flight at once; under gevent threading.local is
        # greenlet-local): its first failed call and the calls it made
        self._here = threading.local()

    def master_id(self, row: dict) -> str:
        """The masterIdentifier sent: the schedule's, made unique to this run and loop of the window,
        so that a replayed deposit is a new document, not an idempotent repeat. The suffix is digits: the
        id stays an OID (an XDS uniqueId)."""
        suffix = ".".join(str(zlib.crc32(part.encode()) if not part.isdigit() else part)
                          for part in (self.run_tag, str(row.get("cycle", 0) or "")) if part)
        return f"{row['document_id']}.{suffix}" if suffix else row["document_id"]

    def send(self, row: dict) -> Outcome:
        """Play the row's interaction; its outcome is the worst of its calls' (OK only when every call was)."""
        started = time.perf_counter()
        self._here.worst, self._here.made = None, []
        if interactions.route(self.protocol, row) == "xds":
            outcome = getattr(self, f"_xds_{row['operation']}")(row)
        elif row["actor_kind"] == "professional" and row["operation"] in ("search", "deposit"):
            outcome = getattr(self, f"_pdsm_{row['operation']}")(row)
        else:
            outcome = getattr(self, f"_{row['operation']}")(row)
        if outcome is Outcome.NOT_SENT:
            return outcome
        elapsed_ms = (time.perf_counter() - started) * 1000
        kind = interactions.locust_type(row, self.protocol)
        # Locust prefixes the type and name: the text names the call that failed, and how
        failure = None if outcome else InteractionFailed(self._here.worst[1] if self._here.worst else outcome.value)
        self.request_event.fire(request_type=kind, name=self._variant(row), response_time=elapsed_ms,
                                response_length=0, exception=failure, context={})
        if self.stats is not None:
            self.stats.interactions.add(f"{kind} {self._variant(row)}".strip(), elapsed_ms, bool(outcome),
                                        calls=self._here.made)
        return outcome

    def label(self, row: dict) -> str:
        """The row's per-request key: Locust's (Type, Name) of its interaction (load.stats.row_label)."""
        return row_label(interactions.locust_type(row, self.protocol), self._variant(row))

    def _variant(self, row: dict) -> str:
        if row["actor_kind"] == "professional" and row["operation"] == "search":
            return "first visit" if self.patterns.first_visit(row) else "later visit"
        return row["sector"] if row["actor_kind"] == "professional" else row["operation"]

    def _step(self, reply_or_outcome: Any, call: str) -> Outcome:
        """Note a call's outcome in the interaction (the first failure names it) and return it."""
        outcome = getattr(reply_or_outcome, "outcome", reply_or_outcome)
        if not outcome and outcome is not Outcome.NOT_SENT and self._here.worst is None:
            self._here.worst = (outcome, f"{call} {outcome.value}")
        return outcome

    # --- FHIR (patients; professionals under PDSm4DMP) ----------------------------------------------

    def _call(self, method: str, path: str, row: dict, ok: tuple[int, ...] = (200,), body: bytes | None = None,
              accept: str = requests.FHIR_JSON, check: Callable[[bytes], Any] | None = None,
              name: str | None = None, cpu_s: float = 0.0) -> Reply:
        headers = {"Authorization": self.tokens.header(row), "Accept": accept}
        if body is not None:
            headers["Content-Type"] = requests.FHIR_JSON
        operation = name or row["operation"]
        call = _FHIR_CALLS.get(operation, operation)
        reply = self.http.call(method, path, operation, headers, body, ok, check, call=call, cpu_s=cpu_s)
        self._here.made.append(call)
        self._step(reply, operation)
        return reply

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
        when = self.clock(row).isoformat(timespec="seconds")
        building = time.process_time()
        bundle = requests.deposit({**row, "document_id": master_id}, data, when)
        reply = self._call("POST", "/", row, ok=(200, 201), body=bundle.body,
                           check=partial(check_deposit, entries=bundle.entries), name="deposit",
                           cpu_s=time.process_time() - building)
        if reply.outcome:
            answer = reply.checked  # later reads in this window name the schedule's id
            self.locations.add(row["document_id"], answer.document, answer.binary,
                               Deposited(bundle.size, bundle.sha256, master_id))
            if answer.created:
                self.created.created(row["patient_ins"], master_id, self.clock(row).timestamp())
            self.acks.append(master_id, bundle.sha256, bundle.size, answer.binary)
        return reply.outcome

    def _search(self, row: dict, extra: str = "", since: dt.datetime | None = None) -> Outcome:
        """ITI-67 of the row's patient (``extra``: more parameters); the answer must list the documents this run
        deposited for them (``since``: those created since then, what a later visit asks for)."""
        ins = row["patient_ins"]
        by_patient = row["actor_kind"] == "patient"
        expected = self.created.expected(ins, by_patient, None if by_patient else row["actor_id"],
                                         None if since is None else since.timestamp())
        return self._call("GET", requests.search_path(ins) + extra, row, name="search",
                          check=partial(check_search, patient_ins=ins, expected=expected)).outcome

    def _retrieve(self, row: dict) -> Outcome:
        deposited = self.locations.deposited(row["document_id"])
        check = None if deposited is None else partial(check_retrieve, deposited=deposited,
                                                       remake=self.documents.content)
        return self._on_target(row, lambda document, binary: self._call(
            "GET", "/" + binary, row, accept="application/pdf", check=check, name="retrieve").outcome)

    def _mask(self, row: dict) -> Outcome:
        def act(document: str, binary: str) -> Outcome:
            self.created.masking(self._deposited_id(row))  # from now on, professionals' searches need not list it
            return self._call("POST", f"/DocumentReference/{document}/$mask", row, ok=(200, 204), body=b"{}").outcome
        return self._on_target(row, act)

    def _delete(self, row: dict) -> Outcome:
        def act(document: str, binary: str) -> Outcome:
            self.created.deleting(self._deposited_id(row))
            # DELETE is idempotent: a document already gone (an earlier loop of the window deleted it) is no error
            return self._call("DELETE", f"/DocumentReference/{document}", row, ok=(200, 204, 404, 410)).outcome
        return self._on_target(row, act)

    def _deposited_id(self, row: dict) -> str:
        """The masterIdentifier the row's document was deposited under (this run's, or the corpus's)."""
        deposited = self.locations.deposited(row["document_id"])
        return deposited.content_id if deposited is not None and deposited.content_id else row["document_id"]

    def _on_target(self, row: dict, act: Callable[[str, str], Outcome]) -> Outcome:
        """Run ``act(document id, binary path)`` on the row's document, or report it unknown to the service.
        A document deposited over XDS.b is known by its uniqueId only: its FHIR locations are looked up first
        (a search by identifier, as the patient's app finds it in the record)."""
        known = self.locations.get(row["document_id"])
        if known is None:
            return self._unknown(row)
        if not known[0]:
            known = self._resolve(row)
            if known is None:
                return self._here.worst[0] if self._here.worst else Outcome.FAILED
        return act(*known)

    def _resolve(self, row: dict) -> tuple[str, str] | None:
        master_id = self._deposited_id(row)
        found: dict = {}

        def locate(body: bytes) -> None:
            check_search(body, row["patient_ins"])
            for entry in orjson.loads(body).get("entry", []):
                resource = entry.get("resource", {})
                if (resource.get("masterIdentifier") or {}).get("value") == master_id:
                    url = ((resource.get("content") or [{}])[0].get("attachment") or {}).get("url", "")
                    found["at"] = (resource["id"], url)
            if "at" not in found:
                raise WrongAnswer("search", "a document the service acknowledged is missing",
                                  f"{master_id} not found by identifier")

        path = (requests.search_path(row["patient_ins"]) +
                f"&identifier={quote('urn:ietf:rfc:3986|' + master_id, safe=':')}")
        if not self._call("GET", path, row, check=locate, name="resolve").outcome:
            return None
        document, binary = found["at"]
        deposited = self.locations.deposited(row["document_id"])
        self.locations.add(row["document_id"], document, binary, deposited)
        return document, binary

    def _history(self, row: dict) -> Outcome:
        ins = row["patient_ins"]
        return self._call("GET", requests.history_path(ins), row,
                          check=partial(check_history, patient_ins=ins)).outcome

    def _block(self, row: dict) -> Outcome:
        self.created.blocking(row["patient_ins"], row["target_rpps"])
        return self._call("POST", "/Patient/$block", row, ok=(200, 204),
                          body=requests.block_body(row["target_rpps"])).outcome

    # --- professionals over PDSm4DMP (FHIR) ------------------------------------------------------------

    def _pdsm_td02(self, row: dict) -> tuple[bool, bool] | None:
        """TD0.2 in FHIR: (the record is open, this professional may read it), None when the call failed."""
        reply = self._call("GET", requests.patient_path(row["patient_ins"]), row, name="td02",
                           check=partial(check_patient, patient_ins=row["patient_ins"]))
        return reply.checked if reply.outcome else None

    def _pdsm_search(self, row: dict) -> Outcome:
        access = self._pdsm_td02(row)
        if access is None:
            return self._here.worst[0]
        if not all(access):  # the software stops here
            return Outcome.OK
        now = self.clock(row)
        if self.patterns.first_visit(row):
            return self._search(row, f"&period=ge{self.patterns.find_from(now).strftime('%Y-%m-%d')}")
        since = self.patterns.last_visit(row, now).astimezone(dt.timezone.utc).replace(microsecond=0)
        return self._search(row, f"&date=ge{since.strftime('%Y-%m-%dT%H:%M:%SZ')}".replace(":", "%3A"), since=since)

    def _pdsm_deposit(self, row: dict) -> Outcome:
        if self.patterns.access_check_before_deposit:
            access = self._pdsm_td02(row)
            if access is None:
                return self._here.worst[0]
            if not access[0]:  # a closed record takes no deposit
                return Outcome.OK
        return self._deposit(row)

    # --- professionals over XDS.b ----------------------------------------------------------------------

    def _soap(self, request: xds.Request, name: str, row: dict, read: Callable[[xds.Answer], Any],
              build_cpu_s: float) -> Reply:
        """One SOAP call: its answer read by ``read`` (which raises WrongAnswer when it is not what was asked)."""
        def check(body: bytes) -> Any:
            try:
                return read(xds.read_answer(body))
            except xds.BadAnswer as bad:
                raise WrongAnswer(name, "not the SOAP answer asked for", str(bad)) from None
        reply = self.http.call("POST", request.path, name, {"Content-Type": request.content_type,
                                                            "Accept": f"{xds.SOAP_XML}, multipart/related"},
                               request.body, (200,), check, cpu_s=build_cpu_s)
        self._here.made.append(name)
        self._step(reply, name)
        return reply

    def _built(self, make: Callable[[], xds.Request]) -> tuple[xds.Request, float]:
        started = time.process_time()
        request = make()
        return request, time.process_time() - started

    def _assertion(self, row: dict) -> bytes:
        if self.assertions is None:
            raise RuntimeError("an XDS.b interaction needs VIHF assertions (RecordClient(assertions=…))")
        return self.assertions.for_row(row)

    def _xds_td02(self, row: dict, assertion: bytes) -> tuple[bool, bool] | None:
        """TD0.2: (the record is open, this professional may read it), or None when the call failed."""
        request, cpu = self._built(lambda: xds.td02(assertion, row["patient_ins"]))

        def read(answer: xds.Answer) -> tuple[bool, bool]:
            status, authorisation = answer.td02()
            if status not in ("OK", "FERME") or authorisation not in ("VALIDE", "INTERDIT"):
                raise WrongAnswer("TD0.2", "not a TD0.2 answer", f"DmpStatus {status!r}, Autorisation {authorisation!r}")
            if answer.patient_id() != row["patient_ins"]:
                raise WrongAnswer("TD0.2", "an answer about another patient",
                                  f"{answer.patient_id()!r}, asked {row['patient_ins']}")
            return status == "OK", authorisation == "VALIDE"
        reply = self._soap(request, "TD0.2", row, read, cpu)
        return reply.checked if reply.outcome else None

    def _xds_search(self, row: dict) -> Outcome:
        """A consultation: TD0.2, then a first opening's FindDocuments or a later visit's FindSubmissionSets,
        GetAssociations and GetDocumentsAndAssociations by batches."""
        assertion = self._assertion(row)
        access = self._xds_td02(row, assertion)
        if access is None:
            return self._here.worst[0]
        if not all(access):  # a closed record, or a professional the patient blocked: the software stops here
            return Outcome.OK
        ins = row["patient_ins"]
        now = self.clock(row)
        expected = self.created.expected(ins, False, row["actor_id"])
        if self.patterns.first_visit(row):
            request, cpu = self._built(lambda: xds.find_documents(assertion, ins, self.patterns.find_from(now)))
            reply = self._soap(request, "ITI-18 FindDocuments", row,
                               partial(_entries_of, ins=ins, expected=expected, name="ITI-18 FindDocuments"), cpu)
            return reply.outcome
        since = self.patterns.last_visit(row, now).replace(microsecond=0)
        # what this run deposited for the patient since the last visit: the later visit's calls must bring it back
        must = self.created.expected(ins, False, row["actor_id"], since.timestamp())
        request, cpu = self._built(lambda: xds.find_submission_sets(assertion, ins, since))
        reply = self._soap(request, "ITI-18 FindSubmissionSets", row,
                           partial(_submission_sets_of, ins=ins, must=must), cpu)
        if not reply.outcome or not reply.checked:
            return reply.outcome
        members: list[str] = []
        chunks = _chunks(reply.checked, _MAX_QUERY_VALUES)
        for number, chunk in enumerate(chunks, 1):
            request, cpu = self._built(lambda: xds.get_associations(assertion, chunk))
            reply = self._soap(request, "ITI-18 GetAssociations", row,
                               partial(_members_of, sets=set(chunk), must=must if number == len(chunks) else None,
                                       before=len(members)), cpu)
            if not reply.outcome:
                return reply.outcome
            members += reply.checked
        found: set[str] = set()
        batches = _chunks(list(dict.fromkeys(members)), self.patterns.batch_size)
        for number, batch in enumerate(batches, 1):
            request, cpu = self._built(lambda: xds.get_documents_and_associations(assertion, batch))
            last = number == len(batches)
            reply = self._soap(request, "ITI-18 GetDocumentsAndAssociations", row,
                               partial(_entries_of, ins=ins, expected=must if last else frozenset(),
                                       name="ITI-18 GetDocumentsAndAssociations", already=found), cpu)
            if not reply.outcome:
                return reply.outcome
            found |= reply.checked
        return Outcome.OK

    def _xds_retrieve(self, row: dict) -> Outcome:
        """A document view: ITI-43 of the row's document, by its uniqueId; the bytes compared with the deposit's."""
        if self.locations.get(row["document_id"]) is None:
            return self._unknown(row)
        assertion = self._assertion(row)
        unique = xds.unique_id(self._deposited_id(row))
        deposited = self.locations.deposited(row["document_id"])
        request, cpu = self._built(lambda: xds.retrieve(assertion, [unique]))

        def read(answer: xds.Answer) -> None:
            _succeeded(answer, "ITI-43")
            documents = answer.documents()
            if unique not in documents:
                raise WrongAnswer("ITI-43", "not the document asked for",
                                  f"asked {unique}, got {sorted(documents)[:3]} ({answer.status})")
            check_retrieve(documents[unique], deposited, self.documents.content)
        return self._soap(request, "ITI-43", row, read, cpu).outcome

    def _xds_deposit(self, row: dict) -> Outcome:
        """A deposit: TD0.2 (the record must be open), then ITI-41 with the document as an MTOM part."""
        assertion = self._assertion(row)
        if self.patterns.access_check_before_deposit:
            access = self._xds_td02(row, assertion)
            if access is None:
                return self._here.worst[0]
            if not access[0]:  # a closed record takes no deposit (a blocked professional may still deposit)
                return Outcome.OK
        master_id = self.master_id(row)
        data = self.documents.content(master_id, row["size_bytes"])
        request, cpu = self._built(lambda: xds.provide_and_register(
            assertion, ins=row["patient_ins"], rpps=row["actor_id"], finess=row.get("facility_id"), master_id=master_id,
            data=data, type_code=row["type_code"], when=self.clock(row)))

        def read(answer: xds.Answer) -> None:
            _succeeded(answer, "ITI-41")
        reply = self._soap(request, "ITI-41", row, read, cpu)
        if reply.outcome:
            sha256 = hashlib.sha256(data).hexdigest()
            self.locations.add(row["document_id"], "", "", Deposited(len(data), sha256, master_id))
            self.created.created(row["patient_ins"], master_id, self.clock(row).timestamp())
            self.acks.append(master_id, sha256, len(data), "xds:" + xds.unique_id(master_id))
        return reply.outcome


_MAX_QUERY_VALUES = 100  # values the service takes in one stored query


def _succeeded(answer: xds.Answer, name: str) -> None:
    """Raise :class:`Refused` unless the answer's status is Success: a Failure (or a PartialSuccess) with its
    RegistryErrorList is the service refusing, in XDS.b's terms, what an HTTP 4xx says in FHIR's."""
    if answer.status != xds.SUCCESS:
        codes = answer.error_codes()
        raise Refused(f"{name} refused: {codes[0] if codes else answer.status.rpartition(':')[2] or 'no status'}")


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), max(size, 1))]


def _entries_of(answer: xds.Answer, ins: str, expected: frozenset[str], name: str,
                already: set[str] = frozenset()) -> set[str]:
    """The documents (``urn:oid:`` + uniqueId) of the DocumentEntries a query returned; WrongAnswer when one is
    another patient's, or when a document this run deposited for the patient (``expected``, masterIdentifiers) is
    neither in it nor ``already`` found by the interaction's earlier calls."""
    _succeeded(answer, name)
    found = set()
    for entry_uuid, unique, patient in answer.entries():
        if patient != xds.cx(ins):
            raise WrongAnswer(name, "a DocumentEntry of another patient", f"{entry_uuid} has {patient!r}, asked {ins}")
        found.add("urn:oid:" + unique)
    missing = expected - found - already
    if missing:
        raise WrongAnswer(name, "a document the service acknowledged is missing",
                          f"patient {ins}: {len(missing)} missing, e.g. {sorted(missing)[0]}")
    return found


def _submission_sets_of(answer: xds.Answer, ins: str, must: frozenset[str] = frozenset()) -> list[str]:
    """The entryUUIDs of the patient's submission sets returned; WrongAnswer when one is another patient's, or when
    none came back though this run deposited documents for them since (``must``)."""
    _succeeded(answer, "ITI-18 FindSubmissionSets")
    sets = []
    for entry_uuid, patient in answer.submission_sets():
        if patient != xds.cx(ins):
            raise WrongAnswer("ITI-18 FindSubmissionSets", "a submission set of another patient",
                              f"{entry_uuid} has {patient!r}, asked {ins}")
        sets.append(entry_uuid)
    if must and not sets:
        raise WrongAnswer("ITI-18 FindSubmissionSets", "a document the service acknowledged is missing",
                          f"patient {ins}: no submission set, {len(must)} deposited since, e.g. {sorted(must)[0]}")
    return sets


def _members_of(answer: xds.Answer, sets: set[str], must: frozenset[str] | None = None, before: int = 0) -> list[str]:
    """The DocumentEntries the submission sets asked hold (their HasMember targets); WrongAnswer for an association
    of another object, or when (``must``: the last call) the sets hold no document though this run deposited some."""
    _succeeded(answer, "ITI-18 GetAssociations")
    members = []
    for source, target in answer.associations():  # ITI-18: the associations whose source or target was asked
        if source not in sets and target not in sets:
            raise WrongAnswer("ITI-18 GetAssociations", "an association of an object not asked for", source)
        if source in sets:
            members.append(target)
    if must and not members and not before:
        raise WrongAnswer("ITI-18 GetAssociations", "a document the service acknowledged is missing",
                          f"no HasMember, {len(must)} deposited since, e.g. {sorted(must)[0]}")
    return members

"""The HTTP handlers: each checks who calls, what is asked, applies the rules, then reads or writes.

Every refusal is a :class:`~record_service.outcomes.ServiceError` raised *before* anything is written
(or inside the write's own savepoint), so a refused request changes nothing in the record; a
professional's refused read is still written to the patient's access history, like any read.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from record_service import registry, rules, searches
from record_service.audit_events import audit_event
from record_service.auth import Actor, TokenVerifier
from record_service.bundles import Deposit, parse_deposit, searchset, transaction_response
from record_service.document_search import document_search
from record_service.metrics import Metrics
from record_service.outcomes import ServiceError, as_storage_fault, invalid, operation_outcome, required, unavailable
from record_service.patient_search import patient_resource, patient_search
from record_service.settings import Settings
from record_service.storage import Store
from segur.identifiers import RPPS_SYSTEM, is_valid_rpps

_log = logging.getLogger("record_service")
FHIR_JSON = "application/fhir+json"
_JSON_TYPES = ("application/fhir+json", "application/json")
_HEX_DIGITS = frozenset("0123456789abcdef")
_PARSED_INLINE_BYTES = 256 * 1024  # larger deposits are parsed, decoded and hashed on a thread
_FORM = "application/x-www-form-urlencoded"
_MAX_FORM_BYTES = 64 * 1024  # a _search form: far more than every parameter ITI-67 has, repeated


def fhir(body: bytes | dict, status: int = 200, headers: dict | None = None) -> Response:
    if isinstance(body, dict):
        body = orjson.dumps(body)
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def _information(message: str) -> Response:
    return fhir(operation_outcome("informational", message, severity="information"))


class Endpoints:
    """The handlers of one app instance, sharing its store, token verifier, metrics and file-writing threads."""

    def __init__(self, settings: Settings, store: Store, verifier: TokenVerifier, metrics: Metrics,
                 blob_threads: ThreadPoolExecutor, blob_reads: ThreadPoolExecutor | None = None):
        self.settings = settings
        self.store = store
        self.verifier = verifier
        self.metrics = metrics
        self.blob_threads = blob_threads
        self.blob_reads = blob_reads or blob_threads  # reads of files not (all) in the page cache
        self._bases: dict[str, str] = {}

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _document_id(request: Request) -> str:
        """The ``{id}`` of the path: ids this service issues are 32 hex digits, anything else names nothing."""
        document_id = request.path_params["id"]
        if len(document_id) != 32 or not _HEX_DIGITS.issuperset(document_id):
            raise ServiceError(404, "not-found", "no such document", reason="not-found")
        return document_id

    def _actor(self, request: Request) -> Actor:
        return self.verifier.actor(request.headers.get("authorization"))

    async def _json_body(self, request: Request) -> object:
        """The request body parsed as JSON, reading at most the configured limit."""
        return _parse_json(await self._body(request))

    async def _body(self, request: Request) -> bytes:
        """The request body (a FHIR JSON one), reading at most the configured limit."""
        _check_content_type(request, _JSON_TYPES, FHIR_JSON, "the body")
        limit = self.settings.max_body_bytes
        return await read_body(request, limit, self._too_large(limit))

    def _too_large(self, limit: int) -> ServiceError:
        return ServiceError(413, "too-costly", f"the request body is larger than {limit} bytes "
                            f"(documents are limited to {self.settings.max_document_bytes} bytes)", reason="oversized")

    async def audit(self, actor: Actor, patient_ins: str, action: str, document_id: str | None, outcome: str,
                     detail: str | None = None) -> None:
        """Record a professional's read (or attempt); returns once committed."""
        if actor.is_professional:
            await self.store.audit(registry.audit_row(actor, patient_ins, action, document_id, outcome, detail))

    # --- ITI-65 -----------------------------------------------------------------------------

    async def audit_search(self, actor: Actor, patient_ins: str, found: bool, detail: str, note: str = "") -> None:
        """Record a professional's search in the access history: refused, and why, when the patient's state
        (a closed record, this professional blocked) hid everything; else a success with ``detail``.
        ``note`` is added to either (e.g. the access mode)."""
        if not actor.is_professional:
            return
        if not found:  # nothing found: say why
            state = await registry.patient_state(self.store, patient_ins, actor)
            if state.opted_out or state.blocked:
                await self.audit(actor, patient_ins, "search", None, "refused",
                                 ("blocked by the patient" if state.blocked else "record closed") + note)
                return
        await self.audit(actor, patient_ins, "search", None, "success", detail + note)

    async def deposit(self, request: Request) -> Response:
        actor = self._actor(request)
        body = await self._body(request)
        if len(body) > _PARSED_INLINE_BYTES:  # a large parse, decode and hash must not stall the other requests
            deposit = await asyncio.get_running_loop().run_in_executor(self.blob_threads, self._parse_deposit, body)
        else:
            deposit = self._parse_deposit(body)
        outcomes = await self.store_deposit(actor, deposit)
        created = any(was_created for _, was_created in outcomes)
        return fhir(transaction_response(deposit, outcomes), 201 if created else 200)

    async def store_deposit(self, actor: Actor, deposit: Deposit) -> list[tuple[str, bool]]:
        """Apply the rules to a checked deposit (from either front) and store it: per document (id, created).

        Raises ServiceError (409 for a masterIdentifier reused for other content) before anything is
        written; bytes are written and fsynced first, then the metadata that points at them."""
        state, existing = await registry.deposit_state(self.store, deposit.patient_ins, actor,
                                                       [d.master_id for d in deposit.documents])
        rules.check_can_deposit(actor, deposit.patient_ins, state)
        for doc in deposit.documents:  # early answer for retries and reused ids, before any bytes are written
            found = existing.get(doc.master_id)
            if found and (found[1] != deposit.patient_ins or found[2] != doc.sha256 or found[3] == "deleted"):
                raise ServiceError(409, "conflict", f"masterIdentifier {doc.master_id[:80]!r} is already used by a "
                                   "different document", "DocumentReference.masterIdentifier", reason="conflict")
        # bytes first, fsynced, then the metadata that points at them; refused, it leaves no byte behind
        contents = {doc.sha256: doc.data for doc in deposit.documents if doc.master_id not in existing}
        outcomes = await self.store.write_with_bytes(registry.deposit(deposit, actor), contents, self.blob_threads)
        created = [deposit.documents[i] for i, (_, was_created) in enumerate(outcomes) if was_created]
        if created:
            self.metrics.documents.inc(len(created))
            self.metrics.document_bytes.inc(sum(len(doc.data) for doc in created))
        return outcomes

    def _parse_deposit(self, body: bytes) -> Deposit:
        return parse_deposit(_parse_json(body), self.settings.max_document_bytes, self.settings.max_documents)

    # --- ITI-67 -----------------------------------------------------------------------------

    async def find_documents(self, request: Request) -> Response:
        """ITI-67 find, ``GET /DocumentReference?…`` (see :mod:`~record_service.document_search`)."""
        query_string = request.scope["query_string"]
        return await self._find(request, searches.Parameters(query_string), query_string)

    async def search_documents(self, request: Request) -> Response:
        """ITI-67 find, ``POST /DocumentReference/_search``: the parameters of the URL and of the
        ``application/x-www-form-urlencoded`` body together, answered exactly as the GET is."""
        query_string = request.scope["query_string"]
        body = await self._form_body(request)
        return await self._find(request, searches.Parameters(b"&".join(p for p in (query_string, body) if p)), None)

    async def _find(self, request: Request, parameters: searches.Parameters, query_string: bytes | None) -> Response:
        actor = self._actor(request)
        search = document_search(parameters, searches.prefers_strict(request.headers.get("prefer")))
        query = search.query
        rules.check_record_access(actor, query.patient_ins)
        base = self._base_url(request)
        # the raw query string as received when every parameter was applied as written (the usual case)
        applied = query_string.decode("latin-1") if search.as_given and query_string is not None \
            else search.self_query()
        self_link = f"{base}DocumentReference?{applied}"
        rows = await registry.search(self.store, query, actor) if search.entries else []
        total = None
        if search.total:
            total = len(rows) if search.entries and query.after is None and len(rows) <= query.count \
                else await registry.count_matches(self.store, query, actor)
        next_link = None
        if len(rows) > query.count:
            rows = rows[:query.count]
            cursor = searches.cursor_token(rows[-1][1], rows[-1][0])
            next_link = f"{base}DocumentReference?{search.next_query(cursor)}"
        found = f"{len(rows)} documents" if search.entries else f"count: {total}"
        await self.audit_search(actor, query.patient_ins, bool(rows or total), found)
        return fhir(searchset([bytes(row[2]) for row in rows], "DocumentReference", self_link, next_link, total))

    async def _form_body(self, request: Request) -> bytes:
        """A ``_search`` form body (application/x-www-form-urlencoded), at most :data:`_MAX_FORM_BYTES`."""
        _check_content_type(request, (_FORM,), _FORM, "the search parameters")
        too_large = ServiceError(413, "too-costly", f"a search form is at most {_MAX_FORM_BYTES} bytes",
                                 reason="oversized")
        return (await read_body(request, _MAX_FORM_BYTES, too_large)).strip()

    def _base_url(self, request: Request) -> str:
        """The service's base URL as the client addressed it (cached per Host: it is built on every search)."""
        host = request.headers.get("host", "")
        base = self._bases.get(host)
        if base is None:
            base = str(request.base_url)
            if len(self._bases) < 64:
                self._bases[host] = base
        return base

    async def readable(self, actor: Actor, document_id: str, with_resource: bool = False,
                       patient_ins: str | None = None) -> tuple:
        """The :func:`~record_service.registry.document` row of a document ``actor`` may read (audited for
        professionals), else the refusal; ``patient_ins``: the document must be that patient's (another
        record's is missing, unaudited, as a document that does not exist)."""
        row = await registry.document(self.store, document_id, actor, with_resource)
        if row is None or (patient_ins is not None and registry.facts(row).patient_ins != patient_ins):
            raise ServiceError(404, "not-found", "no such document", reason="not-found")
        facts = registry.facts(row)
        state = registry.state_of(row, actor)
        try:
            rules.check_can_read(actor, facts, state)
        except ServiceError:  # masked, deleted, closed record, blocked: an attempt is a read too
            await self.audit(actor, facts.patient_ins, "read", document_id, "refused", _refusal_detail(facts, state))
            raise
        await self.audit(actor, facts.patient_ins, "read", document_id, "success")
        return row

    async def stored_bytes(self, document_id: str, sha256: str, size: int) -> bytes:
        """A document's bytes: read on the event loop when all in the page cache (cheaper than a hop to a thread,
        and than handing the server the path with ASGI ``pathsend``), else on a thread of ``blob_reads``, so a
        read that waits for the disk never stalls the worker's other requests (``BlobStore.get_cached``)."""
        blobs = self.store.blobs
        try:
            data = blobs.get_cached(sha256, size)
            if data is not None:
                self.metrics.reads_cached.inc()
            else:
                self.metrics.reads_on_thread.inc()
                data = await asyncio.get_running_loop().run_in_executor(self.blob_reads, blobs.get, sha256, size)
        except FileNotFoundError:
            data = None
        except OSError as error:  # an I/O error, no descriptor left: a storage fault (503), not a bug
            raise as_storage_fault(error) from error
        if data is None or len(data) != size:  # the database and the data directory disagree: say so
            _log.error("document %s: its file %s is %s (expected %d bytes)", document_id, blobs.path(sha256),
                       "missing" if data is None else f"{len(data)} bytes", size)
            raise unavailable("the document's bytes cannot be read from the service's data directory")
        return data

    async def read_document(self, request: Request) -> Response:
        actor = self._actor(request)
        row = await self.readable(actor, self._document_id(request), with_resource=True)
        return fhir(bytes(row[12]))

    # --- ITI-68 -----------------------------------------------------------------------------

    async def retrieve(self, request: Request) -> Response:
        actor = self._actor(request)
        document_id = self._document_id(request)
        row = await self.readable(actor, document_id)
        content_type, sha256, size = row[7], row[8], row[9]
        if FHIR_JSON in request.headers.get("accept", ""):
            data = await self.stored_bytes(document_id, sha256, size)
            return fhir({"resourceType": "Binary", "id": document_id, "contentType": content_type,
                         "data": base64.b64encode(data).decode()})
        return Response(await self.stored_bytes(document_id, sha256, size), media_type=content_type)

    # --- TD0.2 -----------------------------------------------------------------------------

    async def find_patients(self, request: Request) -> Response:
        """TD0.2, ``GET /Patient?identifier=SYSTEM|INS`` (see :mod:`~record_service.patient_search`): no entry
        when the patient closed their record, else their ``Patient`` with this professional's authorisation.
        Not in the access history, as the XDS TD0.2 is not."""
        actor = self._actor(request)
        query_string = request.scope["query_string"]
        search = patient_search(searches.Parameters(query_string),
                                searches.prefers_strict(request.headers.get("prefer")))
        rules.check_record_access(actor, search.ins)
        found = []
        if not search.no_match:
            state = await registry.patient_state(self.store, search.ins, actor)
            if not state.opted_out:
                found.append(patient_resource(search, actor, state))
        applied = query_string.decode("latin-1") if search.as_given else search.self_query()
        return fhir(searchset(found, "Patient", f"{self._base_url(request)}Patient?{applied}", None, len(found)))

    # --- patient controls -------------------------------------------------------------------

    async def mask(self, request: Request) -> Response:
        actor = self._actor(request)
        resource = await self.store.write(registry.set_masked(self._document_id(request), actor, True))
        return fhir(resource)

    async def unmask(self, request: Request) -> Response:
        actor = self._actor(request)
        resource = await self.store.write(registry.set_masked(self._document_id(request), actor, False))
        return fhir(resource)

    async def delete(self, request: Request) -> Response:
        actor = self._actor(request)
        removed = await self.store.write(registry.delete(self._document_id(request), actor))
        await self.store.discard(removed or ())  # the deleted versions' bytes, unless a live document has them
        return Response(status_code=204)

    async def _blocking(self, request: Request, blocked: bool) -> Response:
        actor = self._actor(request)
        rules.check_patient_only(actor, None, "block or unblock a professional")
        rpps = _professional_parameter(await self._json_body(request))
        await self.store.write(registry.set_blocked(actor.ins, rpps, blocked))
        return _information(f"professional {rpps} {'blocked' if blocked else 'unblocked'}")

    async def block(self, request: Request) -> Response:
        return await self._blocking(request, True)

    async def unblock(self, request: Request) -> Response:
        return await self._blocking(request, False)

    async def opt_out(self, request: Request) -> Response:
        actor = self._actor(request)
        rules.check_patient_only(actor, None, "close their record")
        await self.store.write(registry.opt_out(actor.ins))
        return _information("the record is closed: no document can be found or deposited any more")

    async def audit_events(self, request: Request) -> Response:
        actor = self._actor(request)
        parameters = searches.Parameters(request.scope["query_string"])
        patient = searches.patient_ins(parameters)
        rules.check_patient_only(actor, patient, "read the access history")
        count = searches.count(parameters)
        before = searches.audit_cursor(parameters.get("_cursor"))
        rows = await registry.audit_events(self.store, patient, count, before)
        base = self._base_url(request)
        next_link = None
        if len(rows) > count:
            rows = rows[:count]
            params = [(k, v) for k, v in parameters.multi_items() if k != "_cursor"]
            next_link = f"{base}AuditEvent?{urlencode(params + [('_cursor', f'{rows[-1][1]}.{rows[-1][0]}')])}"
        return fhir(searchset([audit_event(row) for row in rows], "AuditEvent",
                              f"{base}AuditEvent?{request.url.query}", next_link))


def _check_content_type(request: Request, accepted: tuple[str, ...], named: str, what: str) -> None:
    """415 unless the request's media type (parameters aside) is one of ``accepted``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in accepted:
        raise ServiceError(415, "not-supported", f"send {what} as {named}, not {content_type[:60]!r}",
                           "Content-Type", reason="wrong-content-type")


async def read_body(request: Request, limit: int, too_large: Exception) -> bytes:
    """The request body, ``too_large`` raised before reading when its declared Content-Length passes ``limit``
    bytes, or as soon as what arrives does."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise invalid(f"the body is not valid JSON: {error}", reason="malformed-json") from None


def _refusal_detail(document: rules.DocumentFacts, state: rules.PatientState) -> str:
    """Why a professional's read was refused, for the patient's access history (the caller only sees a 404
    where the document's existence must not show)."""
    if state.opted_out:
        return "record closed"
    if document.status == "deleted":
        return "document deleted"
    if state.blocked:
        return "blocked by the patient"
    return "document masked by the patient"


def _professional_parameter(body: object) -> str:
    """The RPPS named by ``Parameters.parameter[name=professional].valueIdentifier``."""
    where = "Parameters.parameter[professional].valueIdentifier.value"
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise invalid("the body must be a Parameters resource", "resourceType", reason="wrong-resource")
    for parameter in body.get("parameter") or []:
        if isinstance(parameter, dict) and parameter.get("name") == "professional":
            identifier = parameter.get("valueIdentifier")
            if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
                raise required(where)
            value = identifier["value"]
            rpps = value[1:] if identifier.get("system") == RPPS_SYSTEM and len(value) == 12 else value
            if not is_valid_rpps(rpps):
                raise invalid(f"{value[:40]!r} is not an RPPS (or '8' + RPPS)", where)
            return rpps
    raise required("Parameters.parameter[professional]")

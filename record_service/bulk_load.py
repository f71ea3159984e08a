"""The operator's bulk load: many documents per request, for pre-loading a record (``segur seed``).

``POST /$bulk-load`` with ``Content-Type: application/x-segur-bulk`` and an operator token (below). The body
is a compact binary framing, chosen by measurement over base64 JSON (which costs a third more bytes and an
encode and a decode of every document): the magic line ``SEGURBULK1\\n``, then per document

    4 bytes, big-endian: the length H of its header
    H bytes: a JSON object {"size": N, "sha256": "<hex>", "depositor": {...}, "resource": {DocumentReference}}
    N bytes: the document's bytes

``resource`` is the DocumentReference an ITI-65 deposit would carry (masterIdentifier, status current, type,
subject by INS, date, author, context…; its attachment has a contentType and no ``data``: the bytes are the
frame's), checked by the very parser of a deposit (:func:`~record_service.bundles.parse_deposit`), field by
field. ``depositor`` is who deposited it: ``{"rpps", "sector", "finess"?}`` or ``{"ins"}``, checked as a
token's actor is (:func:`~identity.actors.check_actor`). ``sha256`` is the client's hash of the bytes, checked
(422 if they differ: the frame was damaged). At most ``max_documents`` documents and ``max_body_bytes`` bytes a
request (the service's limits of one deposit).

The answer (200, ``application/json``): ``{"created": n, "existing": m, "documents": [{"masterIdentifier",
"document": "<id>", "binary": "Binary/<id>", "created": bool, "sha256"}...]}`` in the request's order: the ids a
replay needs (``load.client.Locations``). A document whose masterIdentifier is already stored with the same
patient and bytes is not stored again: its existing ids are answered (``created`` false), so a bulk load is
idempotent and may be resent whole after any failure. The same masterIdentifier with other bytes or another
patient is a 409 for the whole request.

Who may call it: the operator, with a token signed by the service's own key (the key file ``segur serve
--key`` reads, which ``segur seed`` and the planner hold) whose subject is ``operator:bulk-load``
(:func:`issue_operator_token`). A professional's or a patient's token is refused (403), and an operator token
is no actor anywhere else (the service's token verifier refuses it: it names no RPPS and no INS).

Guarantees, against an acknowledged ITI-65 deposit:

- Kept: every check of a deposit's DocumentReference (same parser), the deposit rules (a closed record
  refuses deposits; a patient depositor deposits only into their own record); the same rows through the same
  write (:func:`~record_service.registry.deposit`: the document row, its search values, one submission set per
  document as its own deposit would register); the bytes through the BlobStore as a deposit's, each file
  written, fsynced and renamed into place (directory fsynced) before the metadata that names it commits, held
  while in flight and removed if the request is refused (:meth:`~record_service.storage.Store.write_with_bytes`);
  the database committed durably (SQLite ``synchronous=FULL``, PostgreSQL's commit) before the answer. One
  transaction per request: a request is all there or absent, never some of its documents; a 2xx means durable.
- Relaxed, for a pre-load only: (1) the depositor does not authenticate: the operator vouches for each
  document's depositor, whose identity is only checked for form; (2) a deposit's per-document answer (an ITI-65
  transaction-response per submission set) becomes one compact answer per request; (3) the request-level
  atomicity is coarser (a refused document refuses its whole request, where separate deposits would refuse
  only it). There is no access-history entry to relax (a deposit writes none: only reads are journaled) and
  the service sends no notification (the platform's notification of the patient is outside this service).
- Restored after: nothing is switched off globally, so there is nothing to switch back: ordinary deposits
  (ITI-65, ITI-41) are unchanged while and after a bulk load runs, and the bulk path exists only for an
  operator token.

Bad input gets a 4xx OperationOutcome naming the document (its position and masterIdentifier) and the field at
fault, before anything is written; never a 500, never half a request.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time

import jwt
import orjson
from starlette.requests import Request
from starlette.responses import Response

from identity.actors import Actor, check_actor
from record_service import registry
from record_service.auth import load_or_create_key
from record_service.bundles import Deposit, _check_size_and_hash, parse_deposit
from record_service.codes import SUBMISSION_SET_SYSTEM
from record_service.endpoints import Endpoints, read_body
from record_service.outcomes import ServiceError, conflict, forbidden, invalid, unauthenticated
from segur.identifiers import INS_NIR_SYSTEM

MEDIA_TYPE = "application/x-segur-bulk"
MAGIC = b"SEGURBULK1\n"
OPERATOR_SUBJECT = "operator:bulk-load"
_ISSUER = "segur-record-service"
_ALGORITHM = "HS256"
_LENGTH = struct.Struct(">I")
_MAX_HEADER = 256 * 1024  # a DocumentReference's JSON: far more than any real one
_PLACEHOLDER = "AA=="  # stands for the frame's bytes while the deposit parser checks the resource
_SUBMISSION_SET_CODE = {"coding": [{"system": SUBMISSION_SET_SYSTEM, "code": "submissionset"}]}


# --- the client's side (segur seed) ----------------------------------------------------------------

def issue_operator_token(key: bytes, expires_in: int = 24 * 3600, now: float | None = None) -> str:
    """A bulk-load operator token signed with the service's key."""
    issued = int(now if now is not None else time.time())
    return jwt.encode({"iss": _ISSUER, "sub": OPERATOR_SUBJECT, "iat": issued, "exp": issued + expires_in},
                      key, algorithm=_ALGORITHM)


def encode_document(resource: dict, depositor: dict, data: bytes, sha256: str) -> list[bytes]:
    """One document's frame (its parts, to be joined after :data:`MAGIC` with the others)."""
    header = orjson.dumps({"size": len(data), "sha256": sha256, "depositor": depositor, "resource": resource})
    return [_LENGTH.pack(len(header)), header, data]


# --- the service's side ----------------------------------------------------------------------------

class _Document:
    __slots__ = ("position", "master_id", "actor", "deposit")

    def __init__(self, position: int, master_id: str, actor: Actor, deposit: Deposit):
        self.position, self.master_id, self.actor, self.deposit = position, master_id, actor, deposit


def _refused(error: ServiceError, position: int, master_id: str | None) -> ServiceError:
    """``error`` said of the request's document ``position`` (the deposit parser names its fields in a Bundle)."""
    named = f"document {position}" + (f" (masterIdentifier {master_id[:80]!r})" if master_id else "")
    where = f"document[{position}]" + (f".{error.where.split('.resource', 1)[1].lstrip('.')}"
                                       if error.where and ".resource" in error.where else "")
    return ServiceError(error.status, error.code, f"{named}: {error.message}", where.rstrip("."), error.reason,
                        error.headers)


def _depositor(value: object, position: int) -> Actor:
    where = f"document[{position}].depositor"
    if not isinstance(value, dict):
        raise invalid(f"{where} must be an object: {{rpps, sector, finess?}} or {{ins}}", where)
    unknown = set(value) - {"rpps", "sector", "finess", "ins"}
    if unknown:
        raise invalid(f"{where} has unknown fields {sorted(unknown)}", where)
    if not all(v is None or isinstance(v, str) for v in value.values()):
        raise invalid(f"{where}: every field is a string", where)
    actor = Actor(rpps=value.get("rpps"), sector=value.get("sector"), finess=value.get("finess"),
                  ins=value.get("ins"))
    problem = check_actor(actor)
    if problem:
        raise invalid(f"{where}: {problem}", where)
    return actor


def _check_document(position: int, header: dict, data: bytes, max_document_bytes: int) -> _Document:
    """A frame's document checked as a deposit's would be, as a one-document Deposit of its own submission set."""
    where = f"document[{position}]"
    resource = header.get("resource")
    master_id = None
    if isinstance(resource, dict):
        master = resource.get("masterIdentifier")
        master_id = master.get("value") if isinstance(master, dict) and isinstance(master.get("value"), str) else None
    try:
        if not isinstance(resource, dict) or resource.get("resourceType") != "DocumentReference":
            raise invalid(f"{where}.resource must be a DocumentReference", f"{where}.resource", reason="wrong-resource")
        actor = _depositor(header.get("depositor"), position)
        if len(data) > max_document_bytes:
            raise ServiceError(413, "too-costly", f"{len(data)} bytes: documents are limited to {max_document_bytes}",
                               f"{where}.size", reason="oversized")
        contents = resource.get("content")
        attachment = contents[0].get("attachment") if isinstance(contents, list) and contents and \
            isinstance(contents[0], dict) else None
        if not isinstance(attachment, dict):
            raise invalid(f"{where}.resource.content[0].attachment is required", f"{where}.resource.content")
        if attachment.get("data") is not None:
            raise invalid("the bytes travel in the frame, not in content[0].attachment.data",
                          f"{where}.resource.content[0].attachment.data")
        # the deposit parser checks the resource with a placeholder for the bytes; size and hash against the real ones
        checked = {k: v for k, v in attachment.items() if k not in ("url", "size", "hash")}
        checked["data"] = _PLACEHOLDER
        copy = dict(resource, content=[dict(contents[0], attachment=checked), *contents[1:]])
        subject = resource.get("subject")
        identifier = subject.get("identifier") if isinstance(subject, dict) else None
        list_subject = {"identifier": identifier} if isinstance(identifier, dict) else subject
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:submission-set", "resource": {
                "resourceType": "List", "status": "current", "mode": "working", "code": _SUBMISSION_SET_CODE,
                "subject": list_subject}},
            {"fullUrl": "urn:uuid:document", "resource": copy}]}
        deposit = parse_deposit(bundle, max_document_bytes, 1)
        document = deposit.documents[0]
        _check_size_and_hash(attachment, "Bundle.entry[1].resource.content[0].attachment", data)
        sha256 = hashlib.sha256(data).hexdigest()
        if header.get("sha256") != sha256:
            raise ServiceError(422, "invalid", f"{where}.sha256 does not match the document's bytes (damaged frame?)",
                               f"{where}.sha256", reason="hash-mismatch")
        document.data, document.sha256, document.resource = data, sha256, resource
        return _Document(position, document.master_id, actor, deposit)
    except ServiceError as error:
        raise _refused(error, position, master_id) from None


def parse_frame(body: bytes, max_document_bytes: int, max_documents: int) -> list[_Document]:
    """The documents of a bulk body, each checked; a 4xx ServiceError naming the first at fault."""
    if not body.startswith(MAGIC):
        raise invalid(f"a bulk load body starts with {MAGIC!r} (see record_service.bulk_load)", "body",
                      reason="malformed-frame")
    documents: list[_Document] = []
    seen: dict[str, int] = {}
    at, end = len(MAGIC), len(body)
    while at < end:
        position = len(documents)
        if position >= max_documents:
            raise ServiceError(413, "too-costly", f"a bulk load carries at most {max_documents} documents a request",
                               "body", reason="too-many-documents")
        if end - at < _LENGTH.size:
            raise invalid(f"document {position}: the frame ends inside its header length", f"document[{position}]",
                          reason="malformed-frame")
        (length,) = _LENGTH.unpack_from(body, at)
        at += _LENGTH.size
        if length > _MAX_HEADER or length > end - at:
            raise invalid(f"document {position}: a header of {length} bytes (at most {_MAX_HEADER}, and within the "
                          "body)", f"document[{position}]", reason="malformed-frame")
        try:
            header = orjson.loads(body[at:at + length])
        except orjson.JSONDecodeError as error:
            raise invalid(f"document {position}: its header is not valid JSON: {error}", f"document[{position}]",
                          reason="malformed-json") from None
        at += length
        size = header.get("size") if isinstance(header, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise invalid(f"document {position}: its header is a JSON object with a size (bytes)",
                          f"document[{position}].size", reason="malformed-frame")
        if size > end - at:
            raise invalid(f"document {position}: {size} bytes announced, {end - at} left in the body",
                          f"document[{position}].size", reason="malformed-frame")
        document = _check_document(position, header, body[at:at + size], max_document_bytes)
        at += size
        if document.master_id in seen:
            raise invalid(f"document {position}: masterIdentifier {document.master_id[:80]!r} is also document "
                          f"{seen[document.master_id]} of this request", f"document[{position}].resource"
                          ".masterIdentifier.value")
        seen[document.master_id] = position
        documents.append(document)
    if not documents:
        raise invalid("a bulk load carries at least one document", "body", reason="malformed-frame")
    return documents


def _write_all(documents: list[_Document]):
    """One write (one transaction, all or nothing) storing every new document through a deposit's own write."""
    writes = [(document, registry.deposit(document.deposit, document.actor)) for document in documents]

    def write(tx) -> list[tuple[str, bool]]:
        outcomes: list[tuple[str, bool]] = []
        for document, one in writes:
            try:
                outcomes.append(one(tx)[0])
            except ServiceError as error:
                raise _refused(error, document.position, document.master_id) from None
        return outcomes

    return write


class BulkLoad:
    """``POST /$bulk-load`` on an app's :class:`~record_service.endpoints.Endpoints` (its store, threads, metrics)."""

    def __init__(self, endpoints: Endpoints):
        self.endpoints = endpoints
        self._key = load_or_create_key(endpoints.settings.key_file)

    def _check_operator(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated("the bulk load needs the operator's token: Authorization: Bearer <token>")
        try:
            claims = jwt.decode(token, self._key, algorithms=[_ALGORITHM], issuer=_ISSUER,
                                options={"require": ["exp", "iat", "sub"]})
        except jwt.InvalidTokenError as error:
            raise unauthenticated(f"invalid token: {error}") from None
        if claims.get("sub") != OPERATOR_SUBJECT:
            raise forbidden("the bulk load is the operator's (a token whose subject is operator:bulk-load); "
                            "professionals and patients deposit through ITI-65 or ITI-41", reason="not-operator")

    async def load(self, request: Request) -> Response:
        e = self.endpoints
        self._check_operator(request.headers.get("authorization"))
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != MEDIA_TYPE:
            raise ServiceError(415, "not-supported", f"send the bulk load as {MEDIA_TYPE}, not {content_type[:60]!r}",
                               "Content-Type", reason="wrong-content-type")
        limit = e.settings.max_body_bytes
        body = await read_body(request, limit, ServiceError(
            413, "too-costly", f"a bulk load request is at most {limit} bytes: send fewer documents a request",
            reason="oversized"))
        loop = asyncio.get_running_loop()
        documents = await loop.run_in_executor(e.blob_threads, parse_frame, body, e.settings.max_document_bytes,
                                               e.settings.max_documents)
        outcomes = await self._store(documents)
        created = sum(1 for _, was_created in outcomes if was_created)
        return Response(orjson.dumps({"created": created, "existing": len(outcomes) - created, "documents": [
            {"masterIdentifier": document.master_id, "document": doc_id, "binary": f"Binary/{doc_id}",
             "created": was_created, "sha256": document.deposit.documents[0].sha256}
            for document, (doc_id, was_created) in zip(documents, outcomes)]}), media_type="application/json")

    async def _store(self, documents: list[_Document]) -> list[tuple[str, bool]]:
        """Store the documents not already stored (all in one transaction); per document (id, created)."""
        e = self.endpoints
        existing = {row[0]: row[1:] for row in await e.store.fetch(
            "SELECT master_id, id, patient_ins, sha256, status FROM documents WHERE master_id IN"
            f" ({','.join('?' * len(documents))})", [d.master_id for d in documents])}
        new: list[_Document] = []
        for document in documents:  # conflicts refused before any byte is written
            found = existing.get(document.master_id)
            doc = document.deposit.documents[0]
            if found is None:
                new.append(document)
            elif found[1] != document.deposit.patient_ins or found[2] != doc.sha256 or found[3] == "deleted":
                raise _refused(conflict(f"masterIdentifier {doc.master_id[:80]!r} is already used by a different "
                                        "document", "Bundle.entry[1].resource.masterIdentifier"),
                               document.position, document.master_id)
        stored: dict[str, tuple[str, bool]] = {}
        if new:
            contents = {d.deposit.documents[0].sha256: d.deposit.documents[0].data for d in new}
            outcomes = await e.store.write_with_bytes(_write_all(new), contents, e.blob_threads)
            stored = {d.master_id: outcome for d, outcome in zip(new, outcomes)}
            made = [d.deposit.documents[0] for d in new if stored[d.master_id][1]]
            if made:
                e.metrics.documents.inc(len(made))
                e.metrics.document_bytes.inc(sum(len(doc.data) for doc in made))
        return [stored[d.master_id] if d.master_id in stored else (existing[d.master_id][0], False)
                for d in documents]

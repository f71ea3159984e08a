"""The XDS.b operations: ITI-41, ITI-18, ITI-43 and the DMP's TD0.2, on the FHIR front's registry and rules.

Each request is read under the same body limits as a FHIR one, parsed (:mod:`.soap`), its VIHF
verified (signature against the trust store, validity, identity; cached per assertion), then
handled by the same code as its FHIR counterpart: :meth:`Endpoints.store_deposit` for a deposit (so
the same rules, idempotency, bytes-before-metadata and nothing-lost guarantees hold), the ITI-67
search for a query, :meth:`Endpoints.readable` for a retrieve (a patient's mask, a blocked professional,
a closed record; every read in the access history).

Answers: a client's malformed message or refused VIHF is a SOAP Sender fault (HTTP 400) whose Detail
holds an ``rs:RegistryErrorList`` with the XDS code; a refusal of the registry is the operation's
response with status Failure and a ``RegistryErrorList`` (HTTP 200, as SOAP answers them); a storage
fault is a Receiver fault (503, ``Retry-After``). Never a 500 for what the client sent.

TD0.2 (the DMP's "does this patient have an active DMP, may I access it") is carried here as a SOAP
operation of our own shape, documented in docs/xds.md: ``segur:TD02Request`` (optionally a
``segur:PatientId``; else the VIHF's patient) answered by ``segur:TD02Response`` with the patient, the
record's status (``OK``, or ``FERME`` when the patient closed it), the professional's authorisation
(``VALIDE``, or ``INTERDIT`` when the patient blocked them) and the access mode.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import orjson
from lxml import etree
from starlette.requests import Request
from starlette.responses import Response

from identity.errors import VihfError
from record_service import registry, rules
from record_service.auth import Actor
from record_service.cpu_share import name_call
from record_service.document_search import document_search
from record_service.endpoints import Endpoints, read_body
from record_service.outcomes import ServiceError, storage_fault
from record_service.searches import Parameters
from record_service.xds import errors, metadata, queries, soap, submission_sets, terms
from record_service.xds.errors import XdsError
from record_service.xds.terms import NS, q

_log = logging.getLogger("record_service")
_PARSED_INLINE_BYTES = 256 * 1024  # larger messages are parsed on a thread, as large FHIR deposits are
_MODE_WORDS = {"emergency": "accès en bris de glace", "regulation": "accès par un centre de régulation"}
# an ITI-18's call in the metrics (CPU per call): the stored query's name
_ITI18_CALLS = {query_id: f"ITI-18 {name}" for query_id, name in terms.STORED_QUERY_NAMES.items()}


class _Call:
    """One verified request: its message, its caller, the VIHF's patient and access mode."""

    __slots__ = ("message", "actor", "patient_ins", "mode")

    def __init__(self, message: soap.Message, actor: Actor, patient_ins: str, mode: str):
        self.message, self.actor, self.patient_ins, self.mode = message, actor, patient_ins, mode

    def note(self) -> str:
        """For the access history: the access mode when it is not the normal one."""
        return f" ({_MODE_WORDS[self.mode]})" if self.mode in _MODE_WORDS else ""


class XdsEndpoints:
    """The XDS.b handlers of one app instance, beside (and through) its FHIR :class:`Endpoints`."""

    def __init__(self, fhir: Endpoints, vihf_verifier):
        self.fhir = fhir
        self.vihf = vihf_verifier

    # --- the four operations -------------------------------------------------------------------

    async def iti41(self, request: Request) -> Response:
        return await self._answer(request, terms.ITI41, self._provide_and_register, "RegistryResponse")

    async def iti18(self, request: Request) -> Response:
        return await self._answer(request, terms.ITI18, lambda call: self._stored_query(call, request.scope),
                                  "AdhocQueryResponse")

    async def iti43(self, request: Request) -> Response:
        return await self._answer(request, terms.ITI43, self._retrieve, "RetrieveDocumentSetResponse")

    async def td02(self, request: Request) -> Response:
        return await self._answer(request, terms.TD02, self._access_check, "TD02Response")

    # --- request and answer ----------------------------------------------------------------------

    async def _answer(self, request: Request, action: str, handle: Callable[[_Call], Awaitable[tuple]],
                      failure_tag: str) -> Response:
        message: soap.Message | None = None
        try:
            message = await self._message(request, action)
            call = self._verified(message)
            body, parts = await handle(call)
            return self._respond(action, message, body, parts, 200)
        except soap.SoapFault as fault:
            self.fhir.metrics.reject(f"xds-{fault.subcode or fault.code}".lower()[:40])
            return self._fault(action, message, fault)
        except XdsError as error:
            self.fhir.metrics.reject(error.reason)
            return self._respond(action, message, _failure(failure_tag, [error]), [], 200)
        except ServiceError as error:
            if error.status in (503, 507):
                return self._fault(action, message, _receiver(error))
            self.fhir.metrics.reject(error.reason)
            return self._respond(action, message, _failure(failure_tag, [errors.from_service_error(error)]), [], 200)
        except Exception as error:  # the storage broke where no handler expected it: 503, as on the FHIR front
            fault = storage_fault(error)
            if fault is None:
                raise
            _log.error("storage fault on %s: %s", request.url.path, error)
            self.fhir.metrics.reject(fault.reason)
            return self._fault(action, message, _receiver(fault))

    async def _message(self, request: Request, action: str) -> soap.Message:
        limit = self.fhir.settings.max_body_bytes
        body = await read_body(request, limit, soap.SoapFault(
            f"the request body is larger than {limit} bytes", status=413))
        content_type = request.headers.get("content-type")
        if len(body) > _PARSED_INLINE_BYTES:
            message = await asyncio.get_running_loop().run_in_executor(
                self.fhir.blob_threads, soap.parse, content_type, body)
        else:
            message = soap.parse(content_type, body)
        asked = terms.ACTION_ALIASES.get(message.action, message.action)
        if asked != action:
            raise soap.SoapFault(f"wsa:Action {message.action[:100]!r} is not this endpoint's ({action})",
                                 subcode="wsa:ActionNotSupported")
        return message

    def _verified(self, message: soap.Message) -> _Call:
        if message.assertion is None:
            raise _vihf_fault("VIHF absent : le message n'a pas d'assertion SAML dans wsse:Security",
                              "wsse:InvalidSecurity")
        if self.vihf is None:
            raise soap.SoapFault("this service has no VIHF trust store", code="Receiver", status=503)
        try:
            vihf = self.vihf.verify(message.assertion)
        except VihfError as error:
            subcode = {"signature": "wsse:FailedCheck", "untrusted": "wsse:FailedAuthentication",
                       "expired": "wsu:MessageExpired"}.get(error.code, "wsse:InvalidSecurityToken")
            raise _vihf_fault(error.text, subcode) from None
        if not vihf.actor.is_professional:
            raise _vihf_fault("VIHF invalide : l'XDS.b est l'interface des professionnels", "wsse:FailedAuthentication")
        return _Call(message, vihf.actor, vihf.patient_ins, vihf.mode)

    def _respond(self, action: str, message: soap.Message | None, body: etree._Element,
                 parts: list, status: int) -> Response:
        mtom = bool(parts) or (message.mtom if message is not None else False)
        env = soap.envelope(action, message.message_id if message else None, body)
        payload, content_type = soap.serialise(env, mtom, action, parts)
        return Response(payload, status_code=status, media_type=None, headers={"content-type": content_type})

    def _fault(self, action: str, message: soap.Message | None, fault: soap.SoapFault) -> Response:
        env = soap.envelope(None, message.message_id if message else None, soap.fault(fault))
        payload, content_type = soap.serialise(env, False, None)
        return Response(payload, status_code=fault.status, media_type=None,
                        headers={"content-type": content_type, **fault.headers})

    # --- ITI-41 ----------------------------------------------------------------------------------

    async def _provide_and_register(self, call: _Call) -> tuple:
        settings = self.fhir.settings
        deposit, _ = metadata.parse_submission(call.message, settings.max_document_bytes, settings.max_documents)
        if deposit.patient_ins != call.patient_ins:
            raise XdsError(errors.PATIENT_ID_DOES_NOT_MATCH, f"the submission names patient {deposit.patient_ins}, "
                           f"the VIHF {call.patient_ins}", reason="other-patient")
        await self.fhir.store_deposit(call.actor, deposit)
        return errors.registry_response(), []

    # --- ITI-18 ----------------------------------------------------------------------------------

    async def _stored_query(self, call: _Call, scope: dict | None = None) -> tuple:
        query = queries.parse(call.message.body)
        if scope is not None:  # the metrics name the call by its stored query (unknown ones stay "ITI-18")
            name_call(scope, _ITI18_CALLS.get(query.query_id, "ITI-18"))
        named = queries.patient_of(query)
        if named is not None and named != call.patient_ins:
            raise XdsError(errors.PATIENT_ID_DOES_NOT_MATCH, f"the query names patient {named}, the VIHF "
                           f"{call.patient_ins}", reason="other-patient")
        if query.query_id == terms.FIND_DOCUMENTS:
            if named is None:
                raise XdsError(errors.MISSING_PARAM, "$XDSDocumentEntryPatientId is required by FindDocuments")
            rows = await self._search(call, queries.find_documents(query, call.patient_ins))
            return _query_response(rows, call.patient_ins, query.object_ref), []
        if query.query_id in (terms.GET_DOCUMENTS, terms.GET_DOCUMENTS_AND_ASSOCIATIONS):
            rows = await self._search(call, queries.get_documents(query, call.patient_ins))
            associations = []
            if query.query_id == terms.GET_DOCUMENTS_AND_ASSOCIATIONS and rows:
                associations = await self._replacements(rows, call) + await self._memberships(
                    call, document_ids=[row[0] for row in rows])
            return _query_response(rows, call.patient_ins, query.object_ref, associations), []
        if query.query_id == terms.GET_ASSOCIATIONS:
            return await self._associations(call, query), []
        if query.query_id == terms.FIND_SUBMISSION_SETS:
            return await self._find_submission_sets(call, query), []
        if query.query_id == terms.GET_SUBMISSION_SETS:
            return await self._submission_sets_of(call, query), []
        raise XdsError(errors.UNKNOWN_STORED_QUERY, f"stored query {query.query_id[:80]} is not one this registry "
                       "answers (FindDocuments, FindSubmissionSets, GetDocuments, GetDocumentsAndAssociations, "
                       "GetAssociations, GetSubmissionSets)")

    async def _associations(self, call: _Call, query: queries.StoredQuery) -> etree._Element:
        """GetAssociations: the RPLC associations touching the documents of ``$uuid``, and the HasMember ones
        from the submission sets of ``$uuid`` and to its documents, all of them only where the caller may see
        the documents they link. One entry in the access history."""
        targets = queries.association_targets(query)
        visible = await self._search(call, queries.get_documents(
            queries.StoredQuery(terms.GET_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": [
                [metadata.entry_uuid(t) for t in targets]]}, True), call.patient_ins), audited=False) if targets else []
        associations = await self._replacements(visible, call)
        associations += await self._memberships(call, set_ids=targets, document_ids=targets)
        if len(associations) > queries.MAX_RESULTS:
            raise _too_many("associations")
        await self.fhir.audit_search(call.actor, call.patient_ins, bool(associations),
                                     f"{len(associations)} associations (ITI-18 GetAssociations)", call.note())
        return _query_response([], call.patient_ins, query.object_ref, associations)

    async def _memberships(self, call: _Call, set_ids: list[str] = (), document_ids: list[str] = ()) -> list:
        """The HasMember associations (see :func:`registry.submission_set_members`) of these submission sets and
        documents that the caller may see; XDSTooManyResults above :data:`queries.MAX_RESULTS`."""
        pairs = await registry.submission_set_members(self.fhir.store, call.patient_ins, call.actor, set_ids,
                                                      document_ids, queries.MAX_RESULTS)
        if len(pairs) > queries.MAX_RESULTS:
            raise _too_many("associations")
        return [submission_sets.has_member(set_id, document_id) for set_id, document_id in pairs]

    async def _find_submission_sets(self, call: _Call, query: queries.StoredQuery) -> etree._Element:
        """FindSubmissionSets: the patient's submission sets holding a document the caller may see, newest
        first; in the access history as a search."""
        parameters = submission_sets.find_parameters(query, call.patient_ins)
        rows = await registry.find_submission_sets(self.fhir.store, parameters, call.actor) if parameters else []
        if len(rows) > queries.MAX_RESULTS:
            raise _too_many("submission sets")
        await self.fhir.audit_search(call.actor, call.patient_ins, bool(rows),
                                     f"{len(rows)} submission sets (ITI-18 FindSubmissionSets)", call.note())
        return _query_response([], call.patient_ins, query.object_ref,
                               packages=[submission_sets.registry_package(row, query.object_ref) for row in rows])

    async def _submission_sets_of(self, call: _Call, query: queries.StoredQuery) -> etree._Element:
        """GetSubmissionSets: the submission sets of the documents of ``$uuid`` the caller may see, with the
        HasMember associations to those documents; in the access history as a search."""
        targets = queries.association_targets(query)
        pairs = await registry.submission_set_members(self.fhir.store, call.patient_ins, call.actor,
                                                      document_ids=targets, count=queries.MAX_RESULTS)
        set_ids = tuple(dict.fromkeys(set_id for set_id, _ in pairs))
        rows = await registry.find_submission_sets(self.fhir.store, registry.SubmissionSetQuery(
            call.patient_ins, ids=set_ids, count=queries.MAX_RESULTS), call.actor) if set_ids else []
        if len(pairs) + len(rows) > queries.MAX_RESULTS:
            raise _too_many("submission sets and associations")
        await self.fhir.audit_search(call.actor, call.patient_ins, bool(rows),
                                     f"{len(rows)} submission sets (ITI-18 GetSubmissionSets)", call.note())
        return _query_response([], call.patient_ins, query.object_ref,
                               [submission_sets.has_member(set_id, document_id) for set_id, document_id in pairs],
                               packages=[submission_sets.registry_package(row, query.object_ref) for row in rows])

    async def _search(self, call: _Call, parameters, audited: bool = True) -> list[tuple]:
        """The rows (id, date_us, resource) an ITI-67 search finds for this caller; the query itself is in the
        access history as an ITI-67 search is (``audited``; not the registry's own follow-up lookups).
        XDSTooManyResults above :data:`queries.MAX_RESULTS`."""
        search = document_search(parameters, strict=True)
        search.query.count = queries.MAX_RESULTS
        rules.check_record_access(call.actor, search.query.patient_ins)
        rows = await registry.search(self.fhir.store, search.query, call.actor)
        if len(rows) > queries.MAX_RESULTS:
            raise XdsError(errors.TOO_MANY_RESULTS, f"more than {queries.MAX_RESULTS} documents match: ask for "
                           "ObjectRefs, or narrow the query")
        if audited:
            await self.fhir.audit_search(call.actor, call.patient_ins, bool(rows), f"{len(rows)} documents (ITI-18)",
                                         call.note())
        return rows

    async def _replacements(self, rows: list[tuple], call: _Call) -> list[etree._Element]:
        """The RPLC associations touching the documents of ``rows`` (already found for this caller): those they
        replace, and those that replace them (found by one more search, under the same rules)."""
        if not rows:
            return []
        shown = {row[0] for row in rows}
        found = [(row[0], target) for row in rows for target in _replaced(row[2])]
        newer = await self._search(call, Parameters(urlencode([
            ("patient.identifier", f"urn:oid:1.2.250.1.213.1.4.8|{call.patient_ins}"),
            ("status", "current,superseded"), ("relatesto", ",".join(f"DocumentReference/{d}" for d in shown)),
            ("_count", str(queries.MAX_RESULTS))]).encode()), audited=False)
        found += [(row[0], target) for row in newer for target in _replaced(row[2]) if target in shown]
        return [_association(source, target) for source, target in dict.fromkeys(found)]

    # --- ITI-43 ----------------------------------------------------------------------------------

    async def _retrieve(self, call: _Call) -> tuple:
        request = call.message.body
        if request.tag != q("xdsb", "RetrieveDocumentSetRequest"):
            raise soap.SoapFault(f"ITI-43 carries an xdsb:RetrieveDocumentSetRequest, not "
                                 f"<{etree.QName(request).localname}>")
        asked = [((r.findtext(q("xdsb", "RepositoryUniqueId")) or "").strip(),
                  (r.findtext(q("xdsb", "DocumentUniqueId")) or "").strip())
                 for r in request.findall(q("xdsb", "DocumentRequest"))]
        if not asked:
            raise XdsError(errors.REPOSITORY_ERROR, "the request asks for no document (no xdsb:DocumentRequest)")
        if len(asked) > queries.MAX_RESULTS:
            raise XdsError(errors.REPOSITORY_ERROR, f"at most {queries.MAX_RESULTS} documents per request")
        ids = await registry.ids_by_master_id(self.fhir.store, [m for _, u in asked for m in (f"urn:oid:{u}", u) if u])
        response = etree.Element(q("xdsb", "RetrieveDocumentSetResponse"), nsmap={"xdsb": NS["xdsb"], "rs": NS["rs"]})
        status = etree.SubElement(response, q("rs", "RegistryResponse"))
        failures: list[XdsError] = []
        parts: list = []
        for repository, unique_id in asked:
            if repository != terms.REPOSITORY_UNIQUE_ID:
                failures.append(XdsError(errors.UNKNOWN_REPOSITORY, f"repository {repository[:80]!r} is not this "
                                         f"one ({terms.REPOSITORY_UNIQUE_ID})", location=unique_id))
                continue
            document_id = ids.get(f"urn:oid:{unique_id}") or ids.get(unique_id)
            try:  # a document of the VIHF's patient the caller may read (audited); hidden looks like missing
                if document_id is None:
                    raise ServiceError(404, "not-found", "no such document", reason="not-found")
                row = await self.fhir.readable(call.actor, document_id, patient_ins=call.patient_ins)
            except ServiceError as refused:
                if refused.status in (503, 507):
                    raise
                failures.append(XdsError(errors.DOCUMENT_UNIQUE_ID, f"document {unique_id[:80]} is not available",
                                         location=unique_id))
                continue
            content_type, sha256, size = row[7], row[8], row[9]
            data = await self.fhir.stored_bytes(document_id, sha256, size)
            answer = etree.SubElement(response, q("xdsb", "DocumentResponse"))
            etree.SubElement(answer, q("xdsb", "RepositoryUniqueId")).text = terms.REPOSITORY_UNIQUE_ID
            etree.SubElement(answer, q("xdsb", "DocumentUniqueId")).text = unique_id
            etree.SubElement(answer, q("xdsb", "mimeType")).text = content_type
            soap.include(etree.SubElement(answer, q("xdsb", "Document")), data, content_type, parts)
        found = len(asked) - len(failures)
        status.set("status", terms.SUCCESS if not failures else terms.PARTIAL_SUCCESS if found else terms.FAILURE)
        if failures:
            errors.append_errors(status, failures)
        return response, parts

    # --- TD0.2 -----------------------------------------------------------------------------------

    async def _access_check(self, call: _Call) -> tuple:
        request = call.message.body
        if request.tag != q("segur", "TD02Request"):
            raise soap.SoapFault(f"TD0.2 carries a segur:TD02Request ({NS['segur']}), not "
                                 f"<{etree.QName(request).localname}>")
        named = (request.findtext(q("segur", "PatientId")) or "").strip()
        if named and named != call.patient_ins:
            raise XdsError(errors.PATIENT_ID_DOES_NOT_MATCH, f"the request names patient {named[:20]}, the VIHF "
                           f"{call.patient_ins}", reason="other-patient")
        state = await registry.patient_state(self.fhir.store, call.patient_ins, call.actor)
        response = etree.Element(q("segur", "TD02Response"), nsmap={"segur": NS["segur"]})
        for tag, text in (("PatientId", call.patient_ins), ("DmpStatus", "FERME" if state.opted_out else "OK"),
                          ("Autorisation", "INTERDIT" if state.blocked else "VALIDE"), ("Mode", call.mode)):
            etree.SubElement(response, q("segur", tag)).text = text
        return response, []


def _vihf_fault(text: str, subcode: str) -> soap.SoapFault:
    return soap.SoapFault(text, subcode=subcode, detail=[XdsError(errors.REGISTRY_ERROR, text)])


def _receiver(error: ServiceError) -> soap.SoapFault:
    return soap.SoapFault(error.message, code="Receiver", status=error.status, headers=error.headers)


def _failure(tag: str, failures: list[XdsError]) -> etree._Element:
    """The operation's own response element, status Failure, with these errors."""
    if tag == "RetrieveDocumentSetResponse":
        response = etree.Element(q("xdsb", tag), nsmap={"xdsb": NS["xdsb"], "rs": NS["rs"]})
        response.append(errors.registry_response(failures))
        return response
    if tag == "TD02Response":
        response = etree.Element(q("segur", tag), nsmap={"segur": NS["segur"], "rs": NS["rs"]})
        errors.append_errors(response, failures)
        return response
    return errors.registry_response(failures, tag=tag)


def _too_many(what: str) -> XdsError:
    return XdsError(errors.TOO_MANY_RESULTS, f"more than {queries.MAX_RESULTS} {what} match: ask for fewer "
                    "entryUUIDs, or narrow the query")


def _query_response(rows: list[tuple], patient_ins: str, object_ref: bool,
                    associations: list[etree._Element] = (), packages: list[etree._Element] = ()) -> etree._Element:
    """An AdhocQueryResponse (Success) with the submission sets ``packages`` (already LeafClass or ObjectRef),
    the DocumentEntries of ``rows``, then ``associations`` (as ObjectRefs when ``object_ref``)."""
    response = errors.registry_response(tag="AdhocQueryResponse")
    objects = response.find(q("rim", "RegistryObjectList"))
    objects.extend(packages)
    for row in rows:
        objects.append(metadata.document_entry(row[0], orjson.loads(bytes(row[2])), patient_ins, object_ref))
    for association in associations:
        objects.append(etree.Element(q("rim", "ObjectRef"), {"id": association.get("id")}) if object_ref
                       else association)
    return response


def _replaced(resource: bytes) -> list[str]:
    """The ids of the documents a stored DocumentReference replaces (its relatesTo)."""
    found = []
    for relation in orjson.loads(bytes(resource)).get("relatesTo") or []:
        reference = ((relation or {}).get("target") or {}).get("reference") or ""
        if relation.get("code") == "replaces" and reference.startswith("DocumentReference/"):
            found.append(reference.rsplit("/", 1)[1])
    return found


def _association(source: str, target: str) -> etree._Element:
    """The RPLC association ``source`` replaces ``target`` (an id derived from both, so it is stable)."""
    identity = uuid.uuid5(uuid.NAMESPACE_URL, f"rplc:{source}:{target}")
    return etree.Element(q("rim", "Association"), {
        "id": f"urn:uuid:{identity}", "associationType": terms.RPLC, "sourceObject": metadata.entry_uuid(source),
        "targetObject": metadata.entry_uuid(target)}, nsmap={"rim": NS["rim"]})

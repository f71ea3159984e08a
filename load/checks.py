"""What the load driver checks in the answers it is given: a 200 is not a served request if its content is wrong.

A target that ignores ``patient.identifier`` answers every search with 200 and somebody else's
documents; counted by status alone, it would look like a service that serves reads. Every answer
the driver can check cheaply is checked (orjson on small bodies, one ``memcmp`` on documents):

- a search (ITI-67) answers a ``searchset`` Bundle of DocumentReferences that all belong to the
  searched patient (``subject.identifier.value``, or a conditional reference
  ``Patient?identifier=SYSTEM|INS``; none, or another INS, is wrong) and are ``current`` (the
  search asks ``status=current``); a complete answer (no ``next`` link) lists every document this
  replay created for the patient and the searcher may see (see :class:`CreatedDocuments`);
- a retrieve (ITI-68) answers the bytes that were deposited: their size, and their content when
  the driver knows it (the deposit's bytes are re-made and compared; the sha256 decides if not equal);
- a deposit (ITI-65) answers a ``transaction-response`` with one entry per request entry, naming
  the DocumentReference's and the Binary's locations.

A wrong answer raises :class:`WrongAnswer`, whose text starts "wrong answer:" and names its kind
without identifiers, so that Locust's failures table groups it (the identifiers are in ``detail``).
Source: HL7 FHIR R4 (Bundle, search), IHE ITI TF-2 MHD ITI-65/67/68.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qsl

import orjson

SEARCH_STATUS = "current"      # what requests.search_path asks for
_CONDITIONAL_PATIENT = "Patient?identifier="
_INS_SYSTEMS = "urn:oid:1.2.250.1.213.1.4."   # the INS's branch: .8 NIR, .9 NIA, .10 / .11 their test forms


class Outcome(enum.Enum):
    """How one request ended: only ``OK`` is true, so code that tests an outcome as a bool keeps working."""

    OK = "ok"
    FAILED = "failed"            # transport error or a status the caller did not accept
    WRONG = "wrong answer"       # an accepted status whose content is wrong
    NOT_SENT = "not sent"        # no request: its target was never acknowledged (seed the corpus first)

    def __bool__(self) -> bool:
        return self is Outcome.OK


class WrongAnswer(Exception):
    """An answer with an accepted status whose content is not what was asked for.

    ``str()`` and ``repr()`` are both "wrong answer: <operation>: <kind>" (constant per kind, so Locust's
    failures table groups the occurrences); ``detail`` names the documents and values involved.
    """

    def __init__(self, operation: str, kind: str, detail: str = ""):
        super().__init__(f"wrong answer: {operation}: {kind}")
        self.operation, self.kind, self.detail = operation, kind, detail

    def __repr__(self) -> str:
        return str(self)


class Refused(Exception):
    """An answer with an accepted status that refuses the request in the protocol's own terms (an XDS.b
    RegistryResponse Failure with its error code): a failure, like an HTTP 4xx, not a wrong answer."""

    def __repr__(self) -> str:
        return str(self)


@dataclass(frozen=True, slots=True)
class Deposited:
    """What the driver deposited for one document: bytes (size, sha256 hex) and how to re-make them."""

    size: int
    sha256: str = ""
    content_id: str = ""     # the masterIdentifier its bytes were made from (load.requests.DocumentBytes)


@dataclass(frozen=True, slots=True)
class DepositAnswer:
    """The locations a transaction-response names, and whether the document was created by this deposit."""

    document: str            # the DocumentReference id
    binary: str              # the Binary path, e.g. "Binary/abc"
    created: bool            # "201 Created" (False: "200 OK", a repeat of a document already stored)


def _json(body: bytes, operation: str, expected: str) -> dict:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WrongAnswer(operation, f"not JSON (a {expected} was expected)", repr(body[:80])) from None
    if not isinstance(parsed, dict):
        raise WrongAnswer(operation, f"not a JSON object (a {expected} was expected)", repr(body[:80]))
    return parsed


def _bundle(body: bytes, operation: str, kind: str) -> dict:
    bundle = _json(body, operation, f"{kind} Bundle")
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != kind:
        raise WrongAnswer(operation, f"not a {kind} Bundle",
                          f"resourceType {bundle.get('resourceType')!r}, type {bundle.get('type')!r}")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise WrongAnswer(operation, "Bundle.entry is not a list of entries")
    return bundle


def subject_ins(document: dict) -> str | None:
    """The patient's INS a DocumentReference names: ``subject.identifier.value``, or the value of a
    conditional reference ``Patient?identifier=SYSTEM|INS``; None when it names neither, or names an
    identifier of a system outside the INS's (OID 1.2.250.1.213.1.4.*: NIR, NIA and their test forms)."""
    subject = document.get("subject")
    if not isinstance(subject, dict):
        return None
    identifier = subject.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        system = identifier.get("system")
        return identifier["value"] if system is None or _is_ins_system(system) else None
    reference = subject.get("reference")
    if isinstance(reference, str) and reference.startswith("#"):  # a contained Patient
        for resource in document.get("contained") or []:
            if isinstance(resource, dict) and resource.get("id") == reference[1:]:
                for item in resource.get("identifier") or []:
                    if isinstance(item, dict) and _is_ins_system(item.get("system")):
                        return item.get("value") if isinstance(item.get("value"), str) else None
        return None
    if isinstance(reference, str) and _CONDITIONAL_PATIENT in reference:  # relative or absolute, URL-encoded or not
        criteria = parse_qsl(reference.partition("?")[2])
        if [name for name, _ in criteria] != ["identifier"]:
            return None
        system, bar, value = criteria[0][1].partition("|")
        return value if bar and value and (not system or _is_ins_system(system)) else None
    return None


def _is_ins_system(system: object) -> bool:
    return isinstance(system, str) and system.startswith(_INS_SYSTEMS)


def check_search(body: bytes, patient_ins: str, expected: frozenset[str] = frozenset()) -> None:
    """Raise :class:`WrongAnswer` unless ``body`` is a searchset of ``patient_ins``'s current documents
    that, when complete (no ``next`` link), lists every document in ``expected`` (masterIdentifiers)."""
    bundle = _bundle(body, "search", "searchset")
    found = set()
    for entry in bundle.get("entry", []):
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            raise WrongAnswer("search", "an entry without a resource")
        kind = resource.get("resourceType")
        if kind == "OperationOutcome":  # search.mode "outcome": warnings about the search itself
            continue
        if kind != "DocumentReference":
            raise WrongAnswer("search", "an entry that is not a DocumentReference", f"resourceType {kind!r}")
        ins = subject_ins(resource)
        if ins != patient_ins:
            raise WrongAnswer("search", "a DocumentReference of another patient" if ins else
                              "a DocumentReference without a patient identifier",
                              f"DocumentReference/{resource.get('id')} has subject {ins!r}, searched {patient_ins}")
        status = resource.get("status", SEARCH_STATUS)
        if status != SEARCH_STATUS:
            raise WrongAnswer("search", f"a DocumentReference not {SEARCH_STATUS}",
                              f"DocumentReference/{resource.get('id')} is {status!r}")
        found.add((resource.get("masterIdentifier") or {}).get("value"))
    if expected and not _has_next(bundle) and not expected <= found:
        missing = sorted(expected - found)
        raise WrongAnswer("search", "a document the service acknowledged is missing",
                          f"patient {patient_ins}: {len(missing)} missing, e.g. {missing[0]}")


AUTHORISATION_EXTENSION = "dmp-authorisation"   # the end of the TD0.2 answer's authorisation extension URL


def check_patient(body: bytes, patient_ins: str) -> tuple[bool, bool]:
    """TD0.2 in FHIR: (the patient has an open record, the caller may read it). No Patient listed means no open
    record (PDSm4DMP), as does ``active: false``; the authorisation extension ``INTERDIT`` means the patient
    blocked the caller. Raises :class:`WrongAnswer` for another patient, or for what is not a searchset of Patients."""
    bundle = _bundle(body, "TD0.2", "searchset")
    patients = [entry.get("resource") for entry in bundle.get("entry", [])
                if isinstance(entry.get("resource"), dict) and entry["resource"].get("resourceType") == "Patient"]
    if not patients:
        return False, False
    if len(patients) > 1:
        raise WrongAnswer("TD0.2", "more than one Patient for one INS")
    patient = patients[0]
    values = {item.get("value") for item in patient.get("identifier") or [] if isinstance(item, dict)}
    if patient_ins not in values:
        raise WrongAnswer("TD0.2", "a Patient of another INS", f"{sorted(v for v in values if v)[:2]}, asked {patient_ins}")
    refused = any(isinstance(ext, dict) and str(ext.get("url", "")).endswith(AUTHORISATION_EXTENSION)
                  and ext.get("valueCode") not in (None, "VALIDE") for ext in patient.get("extension") or [])
    open_record = patient.get("active", True) is not False
    return open_record, open_record and not refused


def check_history(body: bytes, patient_ins: str) -> None:
    """Raise :class:`WrongAnswer` unless ``body`` is a searchset of AuditEvents about ``patient_ins`` only."""
    bundle = _bundle(body, "history", "searchset")
    for entry in bundle.get("entry", []):
        resource = entry.get("resource")
        if not isinstance(resource, dict) or resource.get("resourceType") != "AuditEvent":
            raise WrongAnswer("history", "an entry that is not an AuditEvent")
        about = {(entity.get("what") or {}).get("identifier", {}).get("value")
                 for entity in resource.get("entity", []) if isinstance(entity, dict)} - {None}
        if about != {patient_ins}:
            raise WrongAnswer("history", "an access-history entry of another patient",
                              f"AuditEvent/{resource.get('id')} is about {sorted(about)}, asked {patient_ins}")


def _has_next(bundle: dict) -> bool:
    links = bundle.get("link")
    return isinstance(links, list) and any(isinstance(link, dict) and link.get("relation") == "next"
                                           for link in links)


def check_retrieve(body: bytes, deposited: Deposited | None, remake: Callable[[str, int], bytes]) -> None:
    """Raise :class:`WrongAnswer` unless ``body`` is the deposited document: same size, and same bytes
    when known (re-made by ``remake(content_id, size)`` and compared; if they differ, the sha256 decides).
    Nothing is checked when the deposit is unknown (``deposited`` None or of unknown size, -1)."""
    if deposited is None or deposited.size < 0:
        return
    if len(body) != deposited.size:
        raise WrongAnswer("retrieve", "not the size deposited", f"{len(body)} bytes, {deposited.size} deposited")
    if deposited.content_id and body == remake(deposited.content_id, deposited.size):
        return
    if deposited.sha256 and hashlib.sha256(body).hexdigest() != deposited.sha256:
        raise WrongAnswer("retrieve", "not the bytes deposited", f"sha256 differs from {deposited.sha256}")


def check_deposit(body: bytes, entries: int) -> DepositAnswer:
    """The locations of a transaction-response to a transaction of ``entries`` entries; raises
    :class:`WrongAnswer` unless it has one entry per request entry and names a DocumentReference and
    a Binary location (``DocumentReference/<id>[/_history/<v>]``, ``Binary/<id>``)."""
    bundle = _bundle(body, "deposit", "transaction-response")
    answers = bundle.get("entry", [])
    if len(answers) != entries:
        raise WrongAnswer("deposit", "not one response entry per request entry",
                          f"{len(answers)} entries for {entries}")
    document, binary, created = "", "", False
    for entry in answers:
        response = entry.get("response")
        location = response.get("location") if isinstance(response, dict) else None
        if not isinstance(location, str):
            continue
        if location.startswith("DocumentReference/") and location.split("/")[1]:
            document = location.split("/")[1]
            created = str(response.get("status", "")).startswith("201")
        elif location.startswith("Binary/") and location.split("/")[1]:
            binary = location
    if not document:
        raise WrongAnswer("deposit", "no DocumentReference location")
    if not binary:
        raise WrongAnswer("deposit", "no Binary location", f"DocumentReference/{document}")
    return DepositAnswer(document, binary, created)


class CreatedDocuments:
    """Documents this replay created (answered "201 Created", or an ITI-41 Success), by patient and
    masterIdentifier: what later searches must list, on either front.

    Only documents created by this run are expected (a corpus document may have been masked or deleted
    by an earlier run on the same service). A document is no longer expected from the moment a delete
    of it is sent (whatever the answer), nor by professionals once a mask is sent; no professional's
    search of a patient is checked for completeness once that patient sent a block of them (the
    DMP's rules: a patient sees their whole record, masked documents included; a mask hides a document
    from professionals other than its author; a blocked professional sees nothing).
    """

    def __init__(self) -> None:
        self._patient_of: dict[str, str] = {}
        self._by_patient: dict[str, dict[str, bool]] = {}   # patient -> {document id: masked}
        self._created_at: dict[str, float] = {}              # document -> when (seconds since the epoch, scenario time)
        self._blocking: set[tuple[str, str]] = set()  # (patient, the professional they blocked)

    def created(self, patient_ins: str, document: str, at: float | None = None) -> None:
        """``document`` (its masterIdentifier) was created for ``patient_ins``, ``at`` (scenario seconds since the
        epoch; None: unknown, then every search expects it)."""
        self._patient_of[document] = patient_ins
        self._by_patient.setdefault(patient_ins, {})[document] = False
        if at is not None:
            self._created_at[document] = at

    def masking(self, document: str) -> None:
        patient = self._patient_of.get(document)
        if patient is not None:
            self._by_patient[patient][document] = True

    def deleting(self, document: str) -> None:
        patient = self._patient_of.pop(document, None)
        if patient is not None:
            del self._by_patient[patient][document]

    def blocking(self, patient_ins: str, rpps: str) -> None:
        self._blocking.add((patient_ins, rpps))

    def expected(self, patient_ins: str, by_patient: bool, rpps: str | None = None,
                 since: float | None = None) -> frozenset[str]:
        """The masterIdentifiers a complete search of ``patient_ins``'s record must list, by the patient or a
        professional (``rpps``: which one; None for any professional, then none the patient blocked); ``since``
        (seconds since the epoch): only those created then or later (a later visit asks what came since)."""
        documents = self._by_patient.get(patient_ins)
        if not documents:
            return frozenset()
        if since is not None:
            documents = {d: masked for d, masked in documents.items() if self._created_at.get(d, since) >= since}
        if by_patient:
            return frozenset(documents)
        if (patient_ins, rpps) in self._blocking or (rpps is None and any(p == patient_ins for p, _ in self._blocking)):
            return frozenset()
        return frozenset(document for document, masked in documents.items() if not masked)

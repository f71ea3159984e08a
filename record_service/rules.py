"""The DMP's access rules as pure decisions: who may do what to which document.

Kept apart from HTTP and SQL so that the rule matrix reads in one place (CSP L1111-17 ff.):
- a patient sees only their own record, masked documents included;
- a professional the patient blocked sees nothing of that patient;
- a document masked by the patient is invisible to professionals other than its author or the
  professional / facility that deposited it;
- a patient's decision on a document (mask, unmask, delete) holds for all its versions: the
  replacement chain v1 -> v2 -> v3 is one document (the registry applies it to every version, and a
  new version enters the chain's state), so no path reaches a version the decision hides;
- only the author (or the patient) may delete a document;
- a professional the patient blocked may not consult anything of that record (an empty search, 403 on a
  read, each attempt in the access history), but may still deposit into it (depositing needs only that
  the patient did not oppose) and replace or delete the documents they authored: none of that shows them
  anything they did not already hold;
- only the patient manages masking, blocking and opting out, and reads the access history;
- a patient who opted out has no record: nothing to find, nothing to deposit.
"""

from __future__ import annotations

from dataclasses import dataclass

from record_service.auth import Actor
from record_service.outcomes import ServiceError, forbidden, not_found


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    """What the rules need to know about one stored document."""

    patient_ins: str
    status: str
    masked: bool
    authors: tuple[str, ...]  # RPPS (11 digits) of the authoring professionals, FINESS (9) of authoring organisations
    depositor_rpps: str | None
    depositor_finess: str | None
    depositor_ins: str | None


@dataclass(frozen=True, slots=True)
class PatientState:
    opted_out: bool
    blocked: bool  # the calling professional is blocked by this patient


def is_author(actor: Actor, document: DocumentFacts) -> bool:
    """The professional wrote or deposited the document, or works at the facility that authored or deposited it."""
    if not actor.is_professional:
        return False
    return (actor.rpps in document.authors or actor.rpps == document.depositor_rpps
            or (actor.finess is not None and (actor.finess == document.depositor_finess
                                              or actor.finess in document.authors)))


def check_record_access(actor: Actor, patient_ins: str) -> None:
    """A patient may only look at their own record (professionals are checked per patient state)."""
    if actor.is_patient and actor.ins != patient_ins:
        raise forbidden("a patient may only access their own record", reason="other-patient")


def check_patient_only(actor: Actor, patient_ins: str | None, what: str) -> None:
    """Masking, blocking, opting out and the access history belong to the patient alone."""
    if not actor.is_patient:
        raise forbidden(f"only the patient may {what}", reason="patient-only")
    if patient_ins is not None and actor.ins != patient_ins:
        raise forbidden("a patient may only act on their own record", reason="other-patient")


def check_can_deposit(actor: Actor, patient_ins: str, state: PatientState) -> None:
    if actor.is_patient and actor.ins != patient_ins:
        raise forbidden("a patient may only deposit into their own record", reason="other-patient")
    if state.opted_out:
        raise ServiceError(403, "forbidden", "the patient has opted out of the shared record: "
                           "deposits are refused", "subject", reason="opted-out")


def _check_visible(actor: Actor, document: DocumentFacts) -> None:
    """404 for what ``actor`` may not know exists: a deleted document, another patient's document (for a
    patient), a masked one (for a professional who is not its author). Every decision on a document checks
    this first, so that no answer (403, 409, 422) tells a document apart from one that does not exist."""
    if document.status == "deleted":
        raise not_found("no such document")
    if actor.is_patient and actor.ins != document.patient_ins:
        raise not_found("no such document")
    if actor.is_professional and document.masked and not is_author(actor, document):
        raise not_found("no such document")  # masked: invisible, not merely forbidden


def check_can_read(actor: Actor, document: DocumentFacts, state: PatientState) -> None:
    """Raises unless ``actor`` may see this document (a 404 where its very existence must not show)."""
    if state.opted_out:
        raise not_found("no such document")
    _check_visible(actor, document)
    if state.blocked:
        raise forbidden("the patient has blocked this professional's access to their record", reason="blocked")


def check_can_mask(actor: Actor, document: DocumentFacts) -> None:
    """Only the patient masks or unmasks, and only in their own record (another's document: 404)."""
    check_patient_only(actor, None, "mask or unmask a document")
    _check_visible(actor, document)


def check_can_delete(actor: Actor, document: DocumentFacts) -> None:
    """The patient deletes any document of their record; a professional, a document they authored."""
    _check_visible(actor, document)
    if actor.is_professional and not is_author(actor, document):
        raise forbidden("only the document's author may delete it", reason="not-author")


def replaced_not_found() -> ServiceError:
    """The one answer for a replaced document that does not exist for the caller, whatever the reason (never
    issued, another record's, deleted, masked from them, named by reference or by masterIdentifier)."""
    return ServiceError(404, "not-found", "the replaced document does not exist", "DocumentReference.relatesTo.target",
                        reason="not-found")


def check_can_replace(actor: Actor, document: DocumentFacts, patient_ins: str) -> None:
    """The author (or the patient who deposited it) replaces a current document of the same record; a document
    of another record, deleted, or masked from the caller is one that does not exist (404)."""
    if document.patient_ins != patient_ins:
        raise replaced_not_found()
    try:
        _check_visible(actor, document)
    except ServiceError:
        raise replaced_not_found() from None
    if actor.is_patient:
        if actor.ins != document.depositor_ins:
            raise forbidden("a patient may only replace documents they deposited", reason="not-author")
    elif not is_author(actor, document):
        raise forbidden("only the document's author may replace it", reason="not-author")
    if document.status != "current":
        raise ServiceError(409, "conflict", f"the replaced document is already {document.status}",
                           "DocumentReference.relatesTo", reason="conflict")

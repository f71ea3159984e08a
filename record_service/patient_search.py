"""TD0.2 on the FHIR front (ANS PDSm4DMP ``transaction_td02``): ``GET /Patient?identifier=SYSTEM|INS``.

"Does this patient have an open DMP, and may I (this professional) access it?" The XDS front answers the
same question at ``POST /xds/td02`` (:mod:`record_service.xds.endpoints`); both read
:func:`record_service.registry.patient_state`, so they agree on every patient:

- **no open record** is a patient who opposed / closed their record (``POST /Patient/$opt-out``, the
  ``opt_outs`` table: the XDS TD0.2's ``DmpStatus`` ``FERME``): a ``searchset`` Bundle with ``total`` 0 and
  no entry. The service keeps no other "no record" state (a record exists from its first deposit, and a
  patient may be deposited for at any time), so any other valid INS has an open record (XDS ``OK``);
- **an open record**: ``total`` 1 and one ``Patient`` with ``identifier`` the INS (under the system asked,
  ``urn:oid:1.2.250.1.213.1.4.8`` for a bare INS) and ``active`` true. For a professional it carries the
  extension :data:`AUTHORISATION_EXTENSION` with ``valueCode`` ``VALIDE``, or ``INTERDIT`` when the patient
  blocked this professional (the XDS TD0.2's ``Autorisation``); a patient asking about themself gets no
  such extension (it is a professional's authorisation).

The check is not written to the patient's access history, as the XDS TD0.2 is not: it reads no document.

Parameters: ``identifier`` (an INS system of :data:`segur.identifiers.INS_SYSTEMS` — INS-NIR ``…4.8`` and
INS-NIR-TEST ``…4.10``; the NIA ``…4.9`` and the demo ``…4.11`` are not INS systems this service knows,
so they are refused — with the INS, or a bare INS) is required; no modifier. A repeated ``identifier`` is
AND (two patients: nothing matches), a comma list OR (of one patient only). Any other parameter is left
out of the search and of its self link, or refused (400) with ``Prefer: handling=strict``, as on
DocumentReference.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

import orjson

from record_service import search_filters as sf
from record_service.auth import Actor
from record_service.outcomes import ServiceError, invalid, required
from record_service.rules import PatientState
from record_service.searches import Parameters, checked_ins
from segur.identifiers import INS_NIR_SYSTEM

AUTHORISATION_EXTENSION = "https://segur-loadsim.example/fhir/StructureDefinition/dmp-authorisation"
_CONTROL = frozenset(chr(c) for c in (*range(0x20), 0x7F))


class PatientSearch:
    """A checked TD0.2 search: the patient's INS, the system to answer it under, whether it can match."""

    __slots__ = ("ins", "system", "no_match", "as_given", "applied")

    def __init__(self, ins: str, system: str, no_match: bool, as_given: bool, applied: list[tuple[str, str]]):
        self.ins, self.system, self.no_match, self.as_given, self.applied = ins, system, no_match, as_given, applied

    def self_query(self) -> str:
        """The parameters applied, for the self link when some given were left out."""
        return urlencode(self.applied, quote_via=quote, safe=":|,/")


def patient_search(params: Parameters, strict: bool = False) -> PatientSearch:
    """The TD0.2 search a query string asks; a 400 naming the first parameter at fault."""
    ins: str | None = None
    system: str | None = None
    no_match = False
    as_given = True
    applied: list[tuple[str, str]] = []
    for name, value in params.multi_items():
        if not _CONTROL.isdisjoint(name) or not _CONTROL.isdisjoint(value):
            raise invalid(f"search parameter {name[:80]!r}: a FHIR string has no control characters", name[:80])
        base, _, modifier = name.partition(":")
        if base != "identifier" or not value:
            if strict:
                raise ServiceError(400, "not-supported", f"search parameter {name[:80]!r} "
                                   f"{'has an empty value' if base == 'identifier' else 'is not supported'}: "
                                   "a Patient search takes identifier=SYSTEM|INS only (Prefer: handling=strict)",
                                   name[:80], reason="unsupported-parameter")
            as_given = False
            continue
        if modifier:
            raise ServiceError(400, "not-supported", f"{name[:80]}: the modifier :{modifier[:40]} is not supported"
                               " (supported: none)", name[:80], reason="unsupported-modifier")
        found: set[str] = set()
        for item in sf.split_list(value, name):
            item_system, item_ins = sf.token(item, name)
            item_ins = checked_ins(item_system, item_ins, name)
            no_match |= item_system == ""  # every INS has its system: "|INS" names no patient
            if item_system and system is None:
                system = item_system
            found.add(item_ins)
        if len(found) > 1:
            raise invalid(f"{name}: TD0.2 asks about one patient, not {len(found)}", name)
        one = found.pop()
        no_match |= ins is not None and ins != one  # identifier=A&identifier=B: no patient has both
        ins = ins or one
        applied.append((name, value))
    if ins is None:
        raise required("identifier")
    return PatientSearch(ins, system or INS_NIR_SYSTEM, no_match, as_given, applied)


def patient_resource(search: PatientSearch, actor: Actor, state: PatientState) -> bytes:
    """The ``Patient`` of an open record (JSON bytes), with the professional's authorisation."""
    resource: dict = {"resourceType": "Patient"}
    if actor.is_professional:
        resource["extension"] = [{"url": AUTHORISATION_EXTENSION,
                                  "valueCode": "INTERDIT" if state.blocked else "VALIDE"}]
    resource["identifier"] = [{"system": search.system, "value": search.ins}]
    resource["active"] = True
    return orjson.dumps(resource)


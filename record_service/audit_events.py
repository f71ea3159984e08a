"""The access history as FHIR AuditEvent resources (one per professional read of the record)."""

from __future__ import annotations

import orjson

from record_service.bundles import format_instant
from segur.identifiers import FINESS_SYSTEM, INS_NIR_SYSTEM, RPPS_SYSTEM

_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
         "display": "RESTful Operation"}
_SUBTYPES = {
    "search": {"system": "http://hl7.org/fhir/restful-interaction", "code": "search-type"},
    "read": {"system": "http://hl7.org/fhir/restful-interaction", "code": "read"},
}
_OUTCOME_CODES = {"success": "0", "refused": "4"}


def audit_event(row: tuple) -> bytes:
    """An AuditEvent from a row (id, at_us, actor_rpps, sector, finess, action, document_id, outcome, detail, ins)."""
    event_id, at_us, rpps, sector, finess, action, document_id, outcome, detail, patient_ins = row
    agent: dict = {"type": {"text": sector or "professional"}, "requestor": True,
                   "who": {"identifier": {"system": RPPS_SYSTEM, "value": "8" + rpps}}}
    agents = [agent]
    if finess:
        agents.append({"type": {"text": "facility"}, "requestor": False,
                       "who": {"identifier": {"system": FINESS_SYSTEM, "value": finess}}})
    entities: list[dict] = [{"what": {"identifier": {"system": INS_NIR_SYSTEM, "value": patient_ins}},
                             "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                      "code": "1", "display": "Person"}}]
    if document_id:
        entities.append({"what": {"reference": f"DocumentReference/{document_id}"}})
    event: dict = {
        "resourceType": "AuditEvent", "id": str(event_id), "type": _TYPE, "subtype": [_SUBTYPES[action]],
        "action": "R" if action == "read" else "E", "recorded": format_instant(at_us),
        "outcome": _OUTCOME_CODES.get(outcome, "4"), "agent": agents,
        "source": {"observer": {"display": "segur record service"}}, "entity": entities,
    }
    if outcome != "success" or detail:
        event["outcomeDesc"] = f"{outcome}{': ' + detail if detail else ''}"
    return orjson.dumps(event)

"""Checks answers against an independent FHIR implementation (fhir.resources' R4B models).

R4B differs from R4 only in resources this service does not serve; the models check structure,
types, cardinalities and code bindings of what the service returns.
"""

from __future__ import annotations

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

_MODELS = {model.__name__: model for model in
           (AuditEvent, Binary, Bundle, CapabilityStatement, DocumentReference, OperationOutcome, Patient)}


def validate(resource: dict):
    """The parsed model; raises pydantic's ValidationError if the resource is not valid FHIR."""
    model = _MODELS[resource["resourceType"]]
    parsed = model.model_validate(resource)
    if resource["resourceType"] == "Bundle":
        for entry in resource.get("entry", []):
            if "resource" in entry:
                validate(entry["resource"])
    return parsed

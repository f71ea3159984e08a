"""The CapabilityStatement served at ``/metadata``: what this server implements, and nothing more."""

from __future__ import annotations

import orjson

_DOCUMENT_SEARCH = ["patient.identifier", "status", "type", "date", "author.identifier", "_count"]


def capability_statement() -> bytes:
    search = [{"name": name, "type": "token" if name not in ("date", "_count") else
               ("date" if name == "date" else "number")} for name in _DOCUMENT_SEARCH]
    return orjson.dumps({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": "segur-loadsim record service"},
        "implementation": {"description": "DMP-style document registry and repository (IHE MHD)"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "instantiates": ["https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentRecipient",
                         "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder"],
        "rest": [{
            "mode": "server",
            "security": {"description": "Bearer JWT: a professional (RPPS, sector, FINESS) or a patient (INS)"},
            "interaction": [{"code": "transaction"}],
            "resource": [
                {"type": "DocumentReference", "interaction": [{"code": "read"}, {"code": "search-type"},
                                                              {"code": "delete"}],
                 "searchParam": search,
                 "operation": [{"name": "mask", "definition": "urn:segur:OperationDefinition/mask"},
                               {"name": "unmask", "definition": "urn:segur:OperationDefinition/unmask"}]},
                {"type": "Binary", "interaction": [{"code": "read"}]},
                {"type": "Patient", "operation": [
                    {"name": "block", "definition": "urn:segur:OperationDefinition/block"},
                    {"name": "unblock", "definition": "urn:segur:OperationDefinition/unblock"},
                    {"name": "opt-out", "definition": "urn:segur:OperationDefinition/opt-out"}]},
                {"type": "AuditEvent", "interaction": [{"code": "search-type"}],
                 "searchParam": [{"name": "patient.identifier", "type": "token"}]},
            ],
        }],
    })

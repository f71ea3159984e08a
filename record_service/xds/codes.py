"""Code systems as the two fronts name them: an OID in ebRIM (``codingScheme``), a URI in FHIR (``system``).

A code deposited by ITI-41 is stored with its FHIR system so that ITI-67 finds it, and a code deposited
by ITI-65 is served to ITI-18 with its OID, through the table below (the systems the DMP's metadata
use, docs/xds-sources.md 5.6). Any other OID becomes ``urn:oid:<OID>`` (FHIR R4's rule for OIDs, and
back); any other URI is served as it is.
"""

from __future__ import annotations

from record_service.codes import LOINC, TRE_A05, VISIBILITY_SYSTEM

_BY_OID = {
    "2.16.840.1.113883.6.1": LOINC,                                                 # typeCode, contentTypeCode
    "1.2.250.1.213.1.1.4.12": TRE_A05,                                              # TRE_A05 types (ANS)
    "1.2.250.1.213.1.1.4.13": VISIBILITY_SYSTEM,                                    # TRE_A07: MASQUE_PS...
    "2.16.840.1.113883.5.25": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",  # N, R, V
}
_BY_URI = {uri: oid for oid, uri in _BY_OID.items()}



def system_of(oid: str) -> str:
    """The FHIR system of an ebRIM ``codingScheme`` (an OID, or already a URI)."""
    if oid in _BY_OID:
        return _BY_OID[oid]
    return oid if ":" in oid else f"urn:oid:{oid}"


def scheme_of(system: str) -> str:
    """The ebRIM ``codingScheme`` of a FHIR system (its OID when it has one)."""
    if system in _BY_URI:
        return _BY_URI[system]
    return system[len("urn:oid:"):] if system.startswith("urn:oid:") else system

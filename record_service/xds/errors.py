"""XDS errors: a refusal as a ``RegistryResponse`` Failure with a ``RegistryErrorList`` (ITI TF-3 4.2.4).

The registry and the rules refuse with :class:`~record_service.outcomes.ServiceError` (the FHIR
front's); :func:`from_service_error` gives the XDS error code of each kind, so that both fronts refuse
the same things for the same reasons, each in its own words. Storage faults are not XDS errors: they
stay 503 with ``Retry-After`` (a SOAP Receiver fault).
"""

from __future__ import annotations

from lxml import etree

from record_service.outcomes import ServiceError
from record_service.xds.terms import FAILURE, NS, PARTIAL_SUCCESS, SEVERITY_ERROR, SUCCESS, q

# the codes of ITI TF-3 Table 4.2.4.1-2 this front answers
REGISTRY_ERROR = "XDSRegistryError"
REPOSITORY_ERROR = "XDSRepositoryError"
REGISTRY_METADATA = "XDSRegistryMetadataError"
REPOSITORY_METADATA = "XDSRepositoryMetadataError"
MISSING_DOCUMENT = "XDSMissingDocument"
MISSING_DOCUMENT_METADATA = "XDSMissingDocumentMetadata"
PATIENT_ID_DOES_NOT_MATCH = "XDSPatientIdDoesNotMatch"
UNKNOWN_PATIENT = "XDSUnknownPatientId"
NON_IDENTICAL_HASH = "XDSNonIdenticalHash"
DUPLICATE_UNIQUE_ID_IN_REGISTRY = "XDSDuplicateUniqueIdInRegistry"  # a submission set's uniqueId already registered
DUPLICATE_IN_MESSAGE = "XDSRepositoryDuplicateUniqueIdInMessage"
DEPRECATED_DOCUMENT = "XDSRegistryDeprecatedDocumentError"
DOCUMENT_UNIQUE_ID = "XDSDocumentUniqueIdError"
UNKNOWN_REPOSITORY = "XDSUnknownRepositoryId"
UNKNOWN_STORED_QUERY = "XDSUnknownStoredQuery"
MISSING_PARAM = "XDSStoredQueryMissingParam"
PARAM_NUMBER = "XDSStoredQueryParamNumber"
TOO_MANY_RESULTS = "XDSTooManyResults"
REPOSITORY_OUT_OF_RESOURCES = "XDSRepositoryOutOfResources"


class XdsError(Exception):
    """One refusal: ``code`` an XDS error code, ``context`` what is wrong (``codeContext``), ``location`` the
    object at fault (e.g. a DocumentUniqueId); ``reason`` the label counted in the service's metrics."""

    def __init__(self, code: str, context: str, location: str | None = None, reason: str | None = None):
        super().__init__(context)
        self.code, self.context, self.location = code, context, location
        self.reason = reason or code


# ServiceError.reason -> the XDS code of the same refusal
_CODES = {
    "conflict": NON_IDENTICAL_HASH, "opted-out": UNKNOWN_PATIENT, "blocked": REGISTRY_ERROR,
    "not-author": REGISTRY_ERROR, "not-found": REGISTRY_METADATA, "oversized": REPOSITORY_OUT_OF_RESOURCES,
    "too-many-documents": REGISTRY_METADATA, "unknown-type": REGISTRY_METADATA, "invalid-ins": REGISTRY_METADATA,
    "wrong-content-type": REGISTRY_METADATA, "hash-mismatch": REPOSITORY_METADATA,
    "size-mismatch": REPOSITORY_METADATA, "other-patient": PATIENT_ID_DOES_NOT_MATCH,
    "duplicate-submission-set": DUPLICATE_UNIQUE_ID_IN_REGISTRY,
}


def from_service_error(error: ServiceError) -> XdsError:
    """The XDS error for a refusal of the registry or the rules (storage faults excepted: they are re-raised)."""
    if error.status in (503, 507):
        raise error
    code = _CODES.get(error.reason, REGISTRY_ERROR)
    if error.reason == "conflict" and "already" in error.message and "replaced" in error.message:
        code = DEPRECATED_DOCUMENT  # an RPLC on a document that is no longer Approved
    return XdsError(code, error.message, reason=error.reason)


def registry_response(errors: list[XdsError] = (), partial: bool = False,
                      tag: str = "RegistryResponse") -> etree._Element:
    """``rs:RegistryResponse`` (or a response of the same type named ``tag`` in ``query``): Success without
    errors, Failure with them, PartialSuccess when ``partial``."""
    namespace = "query" if tag == "AdhocQueryResponse" else "rs"
    status = PARTIAL_SUCCESS if partial and errors else (FAILURE if errors else SUCCESS)
    element = etree.Element(q(namespace, tag), {"status": status}, nsmap={namespace: NS[namespace], "rs": NS["rs"]})
    if errors:
        append_errors(element, errors)
    if namespace == "query":  # query.xsd: an AdhocQueryResponse always has its (maybe empty) object list
        etree.SubElement(element, q("rim", "RegistryObjectList"), nsmap={"rim": NS["rim"]})
    return element


def append_errors(element: etree._Element, errors: list[XdsError]) -> None:
    """Add a ``rs:RegistryErrorList`` with one ``rs:RegistryError`` per error to ``element``."""
    listing = etree.SubElement(element, q("rs", "RegistryErrorList"), {"highestSeverity": SEVERITY_ERROR})
    for error in errors:
        attributes = {"errorCode": error.code, "codeContext": error.context[:1000], "severity": SEVERITY_ERROR}
        if error.location:
            attributes["location"] = error.location[:256]
        etree.SubElement(listing, q("rs", "RegistryError"), attributes)

"""The fixed vocabulary of XDS.b on SOAP 1.2: namespaces, WS-Addressing actions, ebRIM classification and
identification schemes, statuses and error codes (IHE ITI TF-2 18/41/43, TF-3 4.2; docs/xds-sources.md)."""

from __future__ import annotations

NS = {
    "soap": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "rim": "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0",
    "rs": "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0",
    "lcm": "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0",
    "query": "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0",
    "xdsb": "urn:ihe:iti:xds-b:2007",
    "xop": "http://www.w3.org/2004/08/xop/include",
    "segur": "urn:segur-loadsim:xds:td02",
}


def q(prefix: str, local: str) -> str:
    """The Clark name ``{namespace}local`` lxml uses."""
    return f"{{{NS[prefix]}}}{local}"


# WS-Addressing actions (request -> response)
ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
TD02 = "urn:segur-loadsim:dmp:TD0.2"
RESPONSE_ACTIONS = {ITI41: ITI41 + "Response", ITI18: ITI18 + "Response", ITI43: ITI43 + "Response",
                    TD02: TD02 + "Response"}
# the ANS sample client's spellings (docs/xds-sources.md 5.1): accepted as the same operations
ACTION_ALIASES = {"urn:ihe:iti:xds-b:2007:ProvideAndRegisterDocumentSet-b": ITI41,
                  "urn:ihe:iti:xds-b:2007:RegistryStoredQuery-b": ITI18}

# statuses
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"

# objects, classifications, identifiers (ITI TF-3 4.2.5)
DOCUMENT_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"  # stable DocumentEntry objectType
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_EVENT = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
DE_FORMAT = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_FACILITY_TYPE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SUBMISSION_SET = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"  # the classification node of a SubmissionSet
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
REGISTRY_PACKAGE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"  # objectType
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"

# the stored queries (ITI TF-2 3.18.4.1.2.4)
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
FIND_SUBMISSION_SETS = "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9"
GET_ASSOCIATIONS = "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
GET_DOCUMENTS_AND_ASSOCIATIONS = "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a"
GET_SUBMISSION_SETS = "urn:uuid:51224314-5390-4169-9b91-b1980040715a"
STORED_QUERY_NAMES = {FIND_DOCUMENTS: "FindDocuments", FIND_SUBMISSION_SETS: "FindSubmissionSets",
                      GET_ASSOCIATIONS: "GetAssociations", GET_DOCUMENTS: "GetDocuments",
                      GET_DOCUMENTS_AND_ASSOCIATIONS: "GetDocumentsAndAssociations",
                      GET_SUBMISSION_SETS: "GetSubmissionSets"}

# this registry and repository: the DMP's repositoryUniqueId (docs/xds-sources.md 5.5)
REPOSITORY_UNIQUE_ID = "1.2.250.1.213.4.1.1.1.2"

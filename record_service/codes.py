"""The code systems the service checks against: document types, professional sectors, content types.

Type codes are the DMP's JDV_J07 XdsTypeCode value set (LOINC, plus the ANS's TRE_A05 codes for
prescriptions and patient-deposited documents); anything else is refused as an unknown type.
"""

from __future__ import annotations

from identity.sectors import SECTORS  # noqa: F401 - the professional sectors live with identity; re-exported

LOINC = "http://loinc.org"
TRE_A05 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypDocComplementaire/FHIR/TRE-A05-TypDocComplementaire"

LOINC_TYPE_CODES = frozenset({
    "11490-0",  # lettre de liaison à la sortie
    "34874-8",  # compte rendu opératoire
    "11502-2",  # compte rendu d'examens biologiques
    "18748-4",  # compte rendu d'imagerie médicale
    "60591-5",  # volet de synthèse médicale
    "87273-9",  # note de vaccination
    "57833-6",  # prescription de produits de santé
    "57832-8",  # prescription de soins
    "60593-1",  # dispensation médicamenteuse
    "74207-2",  # document de liaison d'urgence
    "34112-3",  # compte rendu hospitalier (séjour)
    "15507-7",  # compte rendu de passage aux urgences
    "11488-4",  # compte rendu de consultation
    "60568-3",  # compte rendu d'anatomo-cytopathologie
    "89601-9",  # certificat médical
})
TRE_A05_TYPE_CODES = frozenset({"PRESC-BIO", "PRESC-KINE", "PRESC-INF"} | {f"DOCPAT{i:02d}" for i in range(1, 10)})

TYPE_CODES_BY_SYSTEM = {LOINC: LOINC_TYPE_CODES, TRE_A05: TRE_A05_TYPE_CODES}

# What the DMP accepts as document bodies: PDF, CDA R2 (XML), plain text, RTF and common images.
CONTENT_TYPES = frozenset({
    "application/pdf", "text/xml", "application/xml", "application/hl7-v3+xml", "text/plain",
    "text/rtf", "image/jpeg", "image/png", "image/tiff",
})

VISIBILITY_SYSTEM = ("https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/"
                     "TRE-A07-StatutVisibiliteDocument")
MASKED_FROM_PROFESSIONALS = "MASQUE_PS"

SUBMISSION_SET_SYSTEM = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"

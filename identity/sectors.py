"""Our professional sectors, and the DMP codes each stands for in a VIHF.

``SECTORS`` are the simulator's sectors (``simulator.scenario.PROFESSIONAL_SECTORS``): the record service
checks a caller's sector against them, whatever the credential (token or VIHF).

A VIHF names the sector as ``Secteur_Activite`` = ``CODE^1.2.250.1.71.4.2.4``, a code of TRE_R02
SecteurActivite (value set JDV_J61 HealthcareFacilityTypeCode-DMP), and the profession as the first
``urn:oasis:names:tc:xacml:2.0:subject:role`` (TRE_G15 "professions", codeSystem 1.2.250.1.71.1.2.7);
see docs/xds-sources.md 1.2. TRE_R02 has no sector for imaging, nor one for "other professionals":
those rows are our reading, marked [inference]. Each sector has its own code, so a VIHF's
``Secteur_Activite`` gives the sector back.

Sources:
- TRE_R02: https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite
  (urn:oid:1.2.250.1.71.4.2.4), version 20250523120000, read in its FSH source (codes and labels below);
- ``lab`` -> SA29: the acceptance check's healthcareFacilityTypeCode (../shared/acceptance/xds) and
  docs/xds-sources.md 1.5; ``medico_social`` -> SA41: the code of the HL7v2-IG's VIHF example;
- TRE_G15 codes 10 / 21 / 60: the ANS kit and DRIMbox (docs/xds-sources.md 1.2); which profession a sector
  stands for is [inference].
"""

from __future__ import annotations

SECTORS = ("hospital", "town_doctor", "lab", "imaging", "pharmacy", "other_professional", "medico_social")

SECTEUR_ACTIVITE_OID = "1.2.250.1.71.4.2.4"  # TRE_R02 SecteurActivite

# sector -> (TRE_R02 code, its label)
SECTEUR_ACTIVITE = {
    "hospital": ("SA01", "Etablissement public de santé"),
    "town_doctor": ("SA07", "Cabinet individuel"),
    "lab": ("SA29", "Laboratoire d'analyses et de biologie médicale"),
    "imaging": ("SA09", "Exercice en société"),  # [inference] imaging practices are mostly companies (SEL)
    "pharmacy": ("SA33", "Pharmacie d'officine"),
    "other_professional": ("SA08", "Cabinet de groupe"),  # [inference] nurses, physiotherapists, midwives in town
    "medico_social": ("SA41", "Autre établissement du domaine social ou médico-social"),
}
SECTOR_BY_SECTEUR_ACTIVITE = {code: sector for sector, (code, _) in SECTEUR_ACTIVITE.items()}

PROFESSION_OID = "1.2.250.1.71.1.2.7"  # TRE_G15 "professions"
# sector -> (TRE_G15 profession code, its label): the first subject:role of a VIHF [inference]
PROFESSION = {
    "hospital": ("10", "Médecin"),
    "town_doctor": ("10", "Médecin"),
    "lab": ("21", "Pharmacien"),  # most medical biologists are pharmacists
    "imaging": ("10", "Médecin"),
    "pharmacy": ("21", "Pharmacien"),
    "other_professional": ("60", "Infirmier"),
    "medico_social": ("60", "Infirmier"),
}

assert set(SECTEUR_ACTIVITE) == set(PROFESSION) == set(SECTORS)
assert len(SECTOR_BY_SECTEUR_ACTIVITE) == len(SECTORS)

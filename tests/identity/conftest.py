"""Shared by identity's tests: structures (key pair + certificate) in temporary directories, the SAML schema,
and a way to re-sign an assertion after changing it (to build validly signed but wrong assertions)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from identity.actors import Actor
from identity.structure import Structure, load_or_create_structure
from identity.vihf import sign

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT.parent / "shared" / "xds-schemas"  # where the acceptance check reads them (../shared)
SCHEMA_FILES = [("http://www.w3.org/XML/1998/namespace", "xml.xsd"),
                ("http://www.w3.org/2000/09/xmldsig#", "xmldsig-core-schema.xsd"),
                ("http://www.w3.org/2001/04/xmlenc#", "xenc-schema.xsd"),
                ("urn:oasis:names:tc:SAML:2.0:assertion", "saml-schema-assertion-2.0.xsd")]

RPPS, FINESS, INS, OTHER_INS = "10003456786", "750712184", "295109912611193", "285067505612354"
LAB = Actor(rpps=RPPS, sector="lab", finess=FINESS)


@pytest.fixture(scope="session")
def structure(tmp_path_factory) -> Structure:
    return load_or_create_structure(tmp_path_factory.mktemp("structure") / "signing.key")


@pytest.fixture(scope="session")
def other_structure(tmp_path_factory) -> Structure:
    return load_or_create_structure(tmp_path_factory.mktemp("other") / "signing.key")


@pytest.fixture(scope="session")
def saml_schema() -> etree.XMLSchema:
    """saml-schema-assertion-2.0.xsd and what it imports, read offline from ../shared/xds-schemas/."""
    missing = [name for _, name in SCHEMA_FILES if not (SCHEMA_DIR / name).exists()]
    if missing:
        pytest.skip(f"the XDS schemas are not in {SCHEMA_DIR} (missing {', '.join(missing)})")
    imports = "".join(f'<xs:import namespace="{ns}" schemaLocation="{name}"/>' for ns, name in SCHEMA_FILES)
    driver = (f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:x-test:driver">'
              f"{imports}</xs:schema>")
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.fromstring(driver.encode(), parser, base_url=(SCHEMA_DIR / "driver.xsd").as_uri()))


def resign(assertion: etree._Element, structure: Structure) -> etree._Element:
    """``assertion`` (changed after signing) signed again by ``structure``, its signature in the same place, as
    :func:`identity.vihf.issue_assertion` signs."""
    copy = etree.fromstring(etree.tostring(assertion))
    signature = copy.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
    for child in list(signature):
        signature.remove(child)
    signature.set("Id", "placeholder")
    return sign(copy, structure)

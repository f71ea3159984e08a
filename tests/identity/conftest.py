"""Shared by identity's tests: structures (key pair + certificate) in temporary directories, the SAML schema,
and a way to re-sign an assertion after changing it (to build validly signed but wrong assertions)."""

from __future__ import annotations

import pytest
from lxml import etree

from identity.actors import Actor
from identity.structure import Structure, load_or_create_structure
from identity.vihf import sign
from tests import schemas

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
    """saml-schema-assertion-2.0.xsd and what it imports, read offline from tests/schemas/xds/."""
    return schemas.load(schemas.SAML)


def resign(assertion: etree._Element, structure: Structure) -> etree._Element:
    """``assertion`` (changed after signing) signed again by ``structure``, its signature in the same place, as
    :func:`identity.vihf.issue_assertion` signs."""
    copy = etree.fromstring(etree.tostring(assertion))
    signature = copy.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
    for child in list(signature):
        signature.remove(child)
    signature.set("Id", "placeholder")
    return sign(copy, structure)

"""The official XDS.b / ebRS / SOAP 1.2 / WS-Addressing / WS-Security / SAML 2.0 schemas (``xds/``, with
their sources), loaded offline for the tests, as the acceptance check loads them."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

DIRECTORY = Path(__file__).resolve().parent / "xds"
# namespace -> file, xmldsig before those that import it
SAML = [("http://www.w3.org/XML/1998/namespace", "xml.xsd"),
        ("http://www.w3.org/2000/09/xmldsig#", "xmldsig-core-schema.xsd"),
        ("http://www.w3.org/2001/04/xmlenc#", "xenc-schema.xsd"),
        ("urn:oasis:names:tc:SAML:2.0:assertion", "saml-schema-assertion-2.0.xsd")]
XDS = SAML + [
    ("http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
     "oasis-200401-wss-wssecurity-utility-1.0.xsd"),
    ("http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
     "oasis-200401-wss-wssecurity-secext-1.0.xsd"),
    ("http://www.w3.org/2005/08/addressing", "ws-addr200508.xsd"),
    ("http://www.w3.org/2003/05/soap-envelope", "soap-1.2.xsd"),
    ("http://www.w3.org/2005/05/xmlmime", "xmlmime.xsd"),
    ("urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0", "rim.xsd"),
    ("urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0", "rs.xsd"),
    ("urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0", "lcm.xsd"),
    ("urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0", "query.xsd"),
    ("urn:ihe:iti:xds-b:2007", "XDS.b_DocumentRepository.xsd"),
]


def load(files: list[tuple[str, str]]) -> etree.XMLSchema:
    """One schema importing ``files`` (namespace, file name) from :data:`DIRECTORY`, with no network."""
    missing = [name for _, name in files if not (DIRECTORY / name).exists()]
    assert not missing, f"the schemas are not in {DIRECTORY} (missing {', '.join(missing)})"
    imports = "".join(f'<xs:import namespace="{ns}" schemaLocation="{name}"/>' for ns, name in files)
    driver = (f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:x-test:driver">'
              f"{imports}</xs:schema>")
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.fromstring(driver.encode(), parser, base_url=(DIRECTORY / "driver.xsd").as_uri()))

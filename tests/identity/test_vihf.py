"""The DMP's VIHF: what issue_assertion signs is valid SAML 2.0 and names the professional, the patient and the
access mode; VihfVerifier gives them back, and refuses, with a stable code, every way an assertion can be wrong:
a bad signature, a value changed after signing, another structure, outside its validity window, a missing or
invalid identity, signature wrapping. The signature is checked once per assertion, the window on every use."""

from __future__ import annotations

import base64
import copy
import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from identity.actors import Actor
from identity.errors import VihfError
from identity.sectors import SECTEUR_ACTIVITE, SECTORS
from identity.structure import trusted_certificates
from identity.vihf import (CLOCK_SKEW_S, DS, MODES, PURPOSE_OF_USE, RESOURCE_ID, SAML, SECTOR, STRUCTURE, VihfVerifier,
                           ins_cx, issue_assertion)
from tests.identity.conftest import FINESS, INS, LAB, OTHER_INS, RPPS, resign

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
NS = {"saml": SAML, "ds": DS}


def _issue(structure, actor=LAB, ins=INS, **options) -> etree._Element:
    options.setdefault("now", NOW)
    return etree.fromstring(issue_assertion(structure, actor, ins, **options))


def _verifier(structure, **options) -> VihfVerifier:
    return VihfVerifier([structure.certificate], **options)


def _refused(verifier: VihfVerifier, assertion, code: str, now: float = NOW + 1) -> VihfError:
    with pytest.raises(VihfError) as caught:
        verifier.verify(assertion, now=now)
    assert caught.value.code == code, caught.value
    assert caught.value.text.startswith("VIHF")
    return caught.value


def _attribute_value(assertion: etree._Element, name: str) -> etree._Element:
    return assertion.find(f"saml:AttributeStatement/saml:Attribute[@Name='{name}']/saml:AttributeValue", NS)


# --- what is issued ----------------------------------------------------------------------------------------


def test_the_assertion_is_valid_saml_2_and_carries_the_rpps_the_ins_and_the_finess(structure, saml_schema):
    raw = issue_assertion(structure, LAB, INS, now=NOW)
    assertion = etree.fromstring(raw)
    assert saml_schema.validate(assertion), saml_schema.error_log
    assert assertion.tag == f"{{{SAML}}}Assertion" and assertion.get("Version") == "2.0"
    text = raw.decode()
    assert RPPS in text and INS in text and FINESS in text
    # ds:Signature enveloped right after Issuer, SAML's order; what the DMP's kit emits
    assert [etree.QName(child).localname for child in assertion][:3] == ["Issuer", "Signature", "Subject"]
    signature = assertion.find("ds:Signature", NS)
    assert signature.find("ds:SignatureValue", NS).text.strip()
    assert signature.find("ds:SignedInfo/ds:CanonicalizationMethod", NS).get("Algorithm") == \
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    assert signature.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm") == \
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    reference = signature.find("ds:SignedInfo/ds:Reference", NS)
    assert reference.get("URI") == "#" + assertion.get("ID")
    assert [t.get("Algorithm") for t in reference.findall("ds:Transforms/ds:Transform", NS)] == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature", "http://www.w3.org/2001/10/xml-exc-c14n#"]
    assert reference.find("ds:DigestMethod", NS).get("Algorithm") == "http://www.w3.org/2001/04/xmlenc#sha256"
    der = base64.b64decode("".join(signature.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS).text.split()))
    assert der == structure.certificate.public_bytes(Encoding.DER)
    issuer = assertion.find("saml:Issuer", NS)
    assert issuer.text == structure.subject and issuer.get("Format").endswith("X509SubjectName")
    assert assertion.find("saml:Subject/saml:NameID", NS).text == "8" + RPPS
    conditions = assertion.find("saml:Conditions", NS)
    assert conditions.get("NotBefore") == "2027-01-15T08:00:00.000Z"
    assert conditions.get("NotOnOrAfter") == "2027-01-15T08:10:00.000Z"
    assert assertion.find("saml:AuthnStatement/saml:AuthnContext/saml:AuthnContextClassRef", NS) is not None
    values = {name: (_attribute_value(assertion, name).text or "") for name in (
        "VIHF_Version", STRUCTURE, SECTOR, "Authentification_Mode", RESOURCE_ID, "Ressource_URN", "LPS_ID")}
    assert values == {"VIHF_Version": "3.0", STRUCTURE: "1" + FINESS, SECTOR: "SA29^1.2.250.1.71.4.2.4",
                      "Authentification_Mode": "INDIRECTE", RESOURCE_ID: f"{INS}^^^&1.2.250.1.213.1.4.8&ISO^NH",
                      "Ressource_URN": "urn:dmp", "LPS_ID": "segur-loadsim"}
    purpose = _attribute_value(assertion, PURPOSE_OF_USE)[0]
    assert (etree.QName(purpose).namespace, purpose.get("code"), purpose.get("codeSystem")) == (
        "urn:hl7-org:v3", "normal", "1.2.250.1.213.1.1.4.248")


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_is_schema_valid_and_comes_back(structure, saml_schema, mode):
    assertion = _issue(structure, mode=mode)
    assert saml_schema.validate(assertion), saml_schema.error_log
    assert _attribute_value(assertion, PURPOSE_OF_USE)[0].get("code") == MODES[mode][0]
    assert _verifier(structure).verify(assertion, now=NOW).mode == mode


@pytest.mark.parametrize("sector", SECTORS)
def test_every_sector_round_trips_through_its_secteur_activite(structure, sector):
    assertion = _issue(structure, Actor(rpps=RPPS, sector=sector))
    assert _attribute_value(assertion, SECTOR).text == f"{SECTEUR_ACTIVITE[sector][0]}^1.2.250.1.71.4.2.4"
    vihf = _verifier(structure).verify(assertion, now=NOW)
    assert vihf.actor == Actor(rpps=RPPS, sector=sector, finess=None)  # no facility: no Identifiant_Structure
    assert _attribute_value(assertion, STRUCTURE) is None


def test_round_trip_gives_the_actor_the_patient_the_mode_and_the_expiry(structure):
    assertion = _issue(structure, mode="emergency", expires_in=300)
    vihf = _verifier(structure).verify(assertion, now=NOW + 10)
    assert vihf.actor == LAB and vihf.actor.is_professional and not vihf.actor.is_patient
    assert (vihf.patient_ins, vihf.mode, vihf.expires_at) == (INS, "emergency", NOW + 300)
    assert vihf.assertion_id == assertion.get("ID") and vihf.assertion_id.startswith("VIHF-")


def test_the_signature_holds_once_moved_into_a_soap_envelope(structure):
    """Exclusive c14n: the namespaces of the surroundings (a default one, other prefixes) are not signed."""
    assertion = _issue(structure)
    envelope = etree.fromstring(
        b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns="urn:x-default" '
        b'xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" '
        b'xmlns:saml="urn:x-other-meaning-of-saml"><soap:Header><wsse:Security/></soap:Header>'
        b'<soap:Body><x/></soap:Body></soap:Envelope>')
    envelope.find(".//{*}Security").append(copy.deepcopy(assertion))
    received = etree.fromstring(etree.tostring(envelope))  # as the service parses a request
    inside = received.find(f".//{{{SAML}}}Assertion")
    assert _verifier(structure).verify(inside, now=NOW).actor == LAB


def test_bytes_are_accepted_too(structure):
    assert _verifier(structure).verify(issue_assertion(structure, LAB, INS, now=NOW), now=NOW).patient_ins == INS


def test_what_cannot_be_issued_is_refused(structure):
    with pytest.raises(ValueError, match="invalid INS"):
        issue_assertion(structure, LAB, "295109912611194")
    with pytest.raises(ValueError, match="not a patient"):
        issue_assertion(structure, Actor(ins=INS), INS)
    with pytest.raises(ValueError, match="invalid RPPS"):
        issue_assertion(structure, Actor(rpps="10003456789", sector="lab"), INS)
    with pytest.raises(ValueError, match="unknown sector"):
        issue_assertion(structure, Actor(rpps=RPPS, sector="dentist"), INS)
    with pytest.raises(ValueError, match="unknown mode"):
        issue_assertion(structure, LAB, INS, mode="bris_de_glace")
    with pytest.raises(ValueError, match="positive"):
        issue_assertion(structure, LAB, INS, expires_in=0)


# --- what is refused ---------------------------------------------------------------------------------------


def test_a_flipped_bit_in_the_signature_value_is_refused(structure):
    assertion = _issue(structure)
    value = assertion.find("ds:Signature/ds:SignatureValue", NS)
    raw = bytearray(base64.b64decode("".join(value.text.split())))
    raw[len(raw) // 2] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    assert "signature incorrecte" in _refused(_verifier(structure), assertion, "signature").text


@pytest.mark.parametrize("name, value", [(RESOURCE_ID, ins_cx(OTHER_INS)), (SECTOR, "SA01^1.2.250.1.71.4.2.4"),
                                         (STRUCTURE, "1310000019")])
def test_a_value_changed_after_signing_is_refused(structure, name, value):
    assertion = _issue(structure)
    _attribute_value(assertion, name).text = value
    _refused(_verifier(structure), assertion, "signature")


def test_a_changed_name_id_or_validity_is_refused(structure):
    assertion = _issue(structure)
    assertion.find("saml:Subject/saml:NameID", NS).text = "810100000007"
    _refused(_verifier(structure), assertion, "signature")
    assertion = _issue(structure)
    assertion.find("saml:Conditions", NS).set("NotOnOrAfter", "2099-01-01T00:00:00Z")
    _refused(_verifier(structure), assertion, "signature")


def test_an_assertion_of_another_structure_is_refused_as_untrusted(structure, other_structure):
    error = _refused(_verifier(structure), _issue(other_structure), "untrusted")
    assert other_structure.structure_id in error.text


def test_the_certificate_the_assertion_carries_proves_nothing(structure, other_structure):
    """Signed by another structure's key but carrying our certificate: the signature does not hold with it."""
    assertion = _issue(other_structure)
    ours = structure.certificate.public_bytes(Encoding.DER)
    assertion.find("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS).text = base64.b64encode(ours).decode()
    _refused(_verifier(structure), assertion, "signature")


def test_a_signature_without_a_certificate_is_refused(structure):
    assertion = _issue(structure)
    key_info = assertion.find("ds:Signature/ds:KeyInfo", NS)
    key_info.getparent().remove(key_info)  # KeyInfo is not signed: the signature itself still holds
    _refused(_verifier(structure), assertion, "untrusted")


def test_a_trust_store_with_another_structure_accepts_it(structure, other_structure, tmp_path):
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "partner.crt").write_bytes(other_structure.certificate_file.read_bytes())
    verifier = VihfVerifier(trusted_certificates(structure.key_file.with_name("signing.key"), trust))
    assert verifier.verify(_issue(other_structure), now=NOW).actor == LAB
    assert verifier.verify(_issue(structure), now=NOW).actor == LAB


def test_an_unsigned_assertion_is_refused(structure):
    assertion = _issue(structure)
    assertion.remove(assertion.find("ds:Signature", NS))
    _refused(_verifier(structure), assertion, "signature")


def test_expired_and_not_yet_valid_assertions_are_refused_with_a_small_clock_skew(structure):
    verifier = _verifier(structure)
    assertion = _issue(structure, expires_in=600)
    assert verifier.verify(assertion, now=NOW + 600 + CLOCK_SKEW_S - 1).patient_ins == INS  # within the skew
    assert "expiré" in _refused(verifier, assertion, "expired", now=NOW + 600 + CLOCK_SKEW_S).text
    assert verifier.verify(assertion, now=NOW - CLOCK_SKEW_S + 1).patient_ins == INS
    _refused(verifier, assertion, "not-yet-valid", now=NOW - CLOCK_SKEW_S - 1)


def test_missing_name_id_or_resource_id_or_validity_is_refused(structure):
    verifier = _verifier(structure)
    assertion = _issue(structure)
    subject = assertion.find("saml:Subject", NS)
    subject.remove(subject.find("saml:NameID", NS))
    assert "NameID" in _refused(verifier, resign(assertion, structure), "missing-attribute").text
    for name in (RESOURCE_ID, SECTOR, PURPOSE_OF_USE, "VIHF_Version"):
        assertion = _issue(structure)
        attribute = _attribute_value(assertion, name).getparent()
        attribute.getparent().remove(attribute)
        assert name in _refused(verifier, resign(assertion, structure), "missing-attribute").text
    assertion = _issue(structure)
    del assertion.find("saml:Conditions", NS).attrib["NotOnOrAfter"]
    _refused(verifier, resign(assertion, structure), "missing-attribute")


@pytest.mark.parametrize("name, value", [
    (RESOURCE_ID, "295109912611194^^^&1.2.250.1.213.1.4.8&ISO^NH"),  # bad key
    (RESOURCE_ID, f"{INS}^^^&1.2.250.1.213.1.4.9&ISO^NH"),  # NIA, not an INS-NIR
    (RESOURCE_ID, INS),  # not CX
    (SECTOR, "SA99^1.2.250.1.71.4.2.4"),
    (SECTOR, "SA29^1.2.250.1.71.4.2.5"),
    (STRUCTURE, "1750712185"),  # bad FINESS key
    (STRUCTURE, "3" + FINESS),  # not a FINESS
])
def test_an_invalid_identity_signed_by_a_trusted_structure_is_refused(structure, name, value):
    assertion = _issue(structure)
    _attribute_value(assertion, name).text = value
    _refused(_verifier(structure), resign(assertion, structure), "invalid-identity")


@pytest.mark.parametrize("idnat", ["10003456786", "810003456787", "0" + RPPS, "8" + RPPS + "0"])
def test_a_name_id_that_is_not_8_plus_a_valid_rpps_is_refused(structure, idnat):
    assertion = _issue(structure)
    assertion.find("saml:Subject/saml:NameID", NS).text = idnat
    _refused(_verifier(structure), resign(assertion, structure), "invalid-identity")


def test_an_unknown_access_mode_is_refused(structure):
    for code, system in (("urgence", "1.2.250.1.213.1.1.4.248"), ("normal", "1.2.3")):
        assertion = _issue(structure)
        purpose = _attribute_value(assertion, PURPOSE_OF_USE)[0]
        purpose.set("code", code)
        purpose.set("codeSystem", system)
        _refused(_verifier(structure), resign(assertion, structure), "invalid-identity")


def test_the_test_ins_system_is_accepted(structure):
    assertion = _issue(structure)
    _attribute_value(assertion, RESOURCE_ID).text = f"{INS}^^^&1.2.250.1.213.1.4.10&ISO"  # the check's own CX form
    assert _verifier(structure).verify(resign(assertion, structure), now=NOW).patient_ins == INS


def test_the_audience_when_one_is_configured(structure):
    verifier = _verifier(structure, audience="urn:segur:record-service")
    _refused(verifier, _issue(structure), "audience")
    _refused(verifier, _issue(structure, audience="urn:elsewhere"), "audience")
    assert verifier.verify(_issue(structure, audience="urn:segur:record-service"), now=NOW).actor == LAB
    assert _verifier(structure).verify(_issue(structure, audience="urn:elsewhere"), now=NOW).actor == LAB


def test_what_is_not_an_assertion_is_refused_as_malformed(structure):
    verifier = _verifier(structure)
    _refused(verifier, etree.fromstring(b"<Assertion/>"), "malformed")
    _refused(verifier, b"<saml:Assertion xmlns:saml='urn:oasis:names:tc:SAML:2.0:assertion'", "malformed")
    assertion = _issue(structure)
    del assertion.attrib["ID"]
    _refused(verifier, assertion, "malformed")


# --- signature wrapping ------------------------------------------------------------------------------------


def _evil_copy(assertion: etree._Element, evil_id: str) -> etree._Element:
    """The assertion's content naming another patient, unsigned, under ``evil_id``."""
    evil = copy.deepcopy(assertion)
    evil.set("ID", evil_id)
    evil.remove(evil.find("ds:Signature", NS))
    _attribute_value(evil, RESOURCE_ID).text = ins_cx(OTHER_INS)
    evil.find("saml:Subject/saml:NameID", NS).text = "810100000007"
    return evil


def test_a_second_unsigned_assertion_is_refused(structure):
    verifier = _verifier(structure)
    signed = _issue(structure)
    # inside the signed one (where a careless reader might look): the digest no longer matches
    inside = copy.deepcopy(signed)
    advice = etree.Element(f"{{{SAML}}}Advice")
    advice.append(_evil_copy(signed, "evil"))
    inside.insert(list(inside).index(inside.find("saml:Conditions", NS)) + 1, advice)
    _refused(verifier, inside, "signature")
    # beside it, first in the header: the one a front would pick is not signed
    security = etree.Element("{urn:x}Security")
    security.append(_evil_copy(signed, "evil"))
    security.append(copy.deepcopy(signed))
    _refused(verifier, security[0], "signature")


@pytest.mark.parametrize("evil_id", ["evil", "same"])
def test_the_signed_assertion_moved_under_an_extension_while_an_evil_one_sits_on_top_is_refused(structure, evil_id):
    """The classic wrapping: the evil assertion carries the signature (a direct child, where it is looked for)
    and the signed original sits in its Advice, so the reference still resolves to signed content."""
    verifier = _verifier(structure)
    signed = _issue(structure)
    evil = _evil_copy(signed, signed.get("ID") if evil_id == "same" else evil_id)
    evil.insert(1, copy.deepcopy(signed.find("ds:Signature", NS)))
    moved = copy.deepcopy(signed)
    moved.remove(moved.find("ds:Signature", NS))  # the enveloped transform would have removed it anyway
    advice = etree.Element(f"{{{SAML}}}Advice")
    advice.append(moved)
    evil.insert(list(evil).index(evil.find("saml:Conditions", NS)) + 1, advice)
    if evil_id == "evil":  # signxml alone accepts it, and says it signed the moved original, not the evil one
        result = verifier._check_signature(evil, structure.certificate, NOW)
        assert result.signed_xml.get("ID") == signed.get("ID") != evil.get("ID")
    error = _refused(verifier, evil, "signature")
    assert "ne porte pas sur l'assertion" in error.text or "Ambiguous" in error.text
    # the reference rewritten to the evil ID breaks the signature over SignedInfo
    evil.find("ds:Signature/ds:SignedInfo/ds:Reference", NS).set("URI", "#" + evil.get("ID"))
    _refused(verifier, evil, "signature")


def test_values_are_read_from_what_was_signed_not_from_the_tree_received(structure):
    """A comment is not signed (c14n without comments): one cut into NameID and resource-id leaves the signature
    valid, and a reader of the received tree would see the text before it only (lxml's .text)."""
    assertion = _issue(structure)
    name_id = assertion.find("saml:Subject/saml:NameID", NS)
    name_id.text = "8" + RPPS[:4]
    comment = etree.Comment("x")
    comment.tail = RPPS[4:]
    name_id.append(comment)
    resource = _attribute_value(assertion, RESOURCE_ID)
    resource.text = INS[:9]
    comment = etree.Comment("y")
    comment.tail = INS[9:] + "^^^&1.2.250.1.213.1.4.8&ISO^NH"
    resource.append(comment)
    vihf = _verifier(structure).verify(etree.fromstring(etree.tostring(assertion)), now=NOW)
    assert (vihf.actor.rpps, vihf.patient_ins) == (RPPS, INS)


# --- the cache ---------------------------------------------------------------------------------------------


def _counting(verifier: VihfVerifier, monkeypatch) -> list:
    calls = []
    check = verifier._check_signature

    def counted(*args, **kwargs):
        calls.append(args[0].get("ID"))
        return check(*args, **kwargs)

    monkeypatch.setattr(verifier, "_check_signature", counted)
    return calls


def test_a_reused_assertion_pays_for_its_signature_once_but_its_expiry_is_checked_every_time(structure, monkeypatch):
    verifier = _verifier(structure)
    calls = _counting(verifier, monkeypatch)
    raw = issue_assertion(structure, LAB, INS, now=NOW, expires_in=60)
    first = verifier.verify(etree.fromstring(raw), now=NOW)
    assert verifier.verify(etree.fromstring(raw), now=NOW + 30) == first  # same bytes, another parse
    assert len(calls) == 1
    _refused(verifier, etree.fromstring(raw), "expired", now=NOW + 60 + CLOCK_SKEW_S)
    _refused(verifier, etree.fromstring(raw), "not-yet-valid", now=NOW - CLOCK_SKEW_S - 10)
    assert len(calls) == 1
    verifier.verify(_issue(structure), now=NOW)  # another assertion: its own check
    assert len(calls) == 2


def test_a_refused_assertion_is_not_remembered(structure, monkeypatch):
    verifier = _verifier(structure)
    calls = _counting(verifier, monkeypatch)
    assertion = _issue(structure)
    assertion.find("saml:Subject/saml:NameID", NS).text = "810100000007"
    for _ in range(2):
        _refused(verifier, assertion, "signature")
    assert len(calls) == 2


def test_the_cache_is_bounded(structure):
    verifier = _verifier(structure, cache_size=2)
    assertions = [_issue(structure) for _ in range(3)]
    for assertion in assertions:
        verifier.verify(assertion, now=NOW)
    assert len(verifier._cache) == 2


def test_a_verification_is_fast_once_cached(structure):
    verifier = _verifier(structure)
    assertion = _issue(structure)
    verifier.verify(assertion, now=NOW)
    started = time.perf_counter()
    for _ in range(200):
        verifier.verify(assertion, now=NOW)
    assert (time.perf_counter() - started) / 200 < 0.002  # a serialisation and a hash, no signature

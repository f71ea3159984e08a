"""The DMP's VIHF: a signed SAML 2.0 assertion naming who calls, for which patient, in which access mode.

The DMP's professional interface (IHE XDS.b over SOAP) carries the caller's identity as a VIHF ("Vecteur
d'Identification et d'Habilitation Formelle") in the ``wsse:Security`` header: one ``saml:Assertion``
signed by the calling structure. :func:`issue_assertion` makes one (``segur vihf`` prints it);
:class:`VihfVerifier` checks one and gives the :class:`Vihf` it names. Sources for every field:
docs/xds-sources.md section 1 (ANS kit, HL7v2-IG, DRIMbox, IHE XUA); the acceptance check
(../shared/acceptance/xds, step ``vihf``) is the contract.

What is emitted, in the SAML schema's order:

- ``Issuer`` (Format X509SubjectName) = the structure certificate's subject DN;
- ``ds:Signature``, enveloped, right after ``Issuer``: RSA-SHA256, SHA-256 digest, exclusive c14n
  (``CanonicalizationMethod`` and the reference's transform), ``Reference URI="#<ID>"``, ``KeyInfo`` with the
  certificate. Exclusive c14n keeps the signature valid wherever the assertion is moved (into any SOAP
  envelope): no namespace of the surroundings enters what is signed;
- ``Subject/NameID`` = the IdNat_PS, ``8`` + RPPS (no SubjectConfirmation, as in every DMP example);
- ``Conditions`` NotBefore = the issue instant, NotOnOrAfter = + ``expires_in`` (no AudienceRestriction
  unless asked: the DMP says "ne pas renseigner");
- ``AuthnStatement`` (AuthnInstant, class TLSClient as DRIMbox in indirect mode);
- ``AttributeStatement``: VIHF_Version 3.0, Identifiant_Structure (``1`` + FINESS, when a facility is given),
  Secteur_Activite (``SAxx^1.2.250.1.71.4.2.4``, :mod:`identity.sectors`), subject-id, subject:role (CE, the
  profession), Authentification_Mode INDIRECTE, resource-id (the INS in CX form), Ressource_URN ``urn:dmp``,
  purposeofuse (CE, TRE_R248 access mode), LPS_ID / LPS_Nom / LPS_Version. The CEs carry no ``xsi:type``
  (see :func:`_coded_attribute`).

What is checked (:meth:`VihfVerifier.verify`), each failure a :class:`~identity.errors.VihfError` with a
stable code: the XML signature (signxml), with the certificate of ``KeyInfo`` required to be one of the
trusted ones (``untrusted`` otherwise: the certificate an assertion carries proves nothing by itself); that
the signature is the assertion's own (a direct child, one reference, to the assertion's ``ID``), every value
then read from what signxml returns as signed, never from the tree received (no signature wrapping); the
validity window on every use, cached or not, with :data:`CLOCK_SKEW_S` of tolerance; the audience when one is
configured; and the identity as a token's: an IdNat_PS with a valid RPPS, a known sector, a valid FINESS, a
valid INS (authority the INS-NIR or its test system), a known access mode.

Verified assertions are cached by the SHA-256 of ``etree.tostring`` of the element as received: the exact
bytes, not their c14n, because serialising is what the signature check has to do anyway while c14n would cost
a canonicalisation on every use just to find the entry; a byte that differs (even a namespace declaration
inherited from another envelope) only misses the cache and pays one more verification, it never hits the
entry of another assertion.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml import etree

from identity.actors import Actor, check_actor
from identity.errors import VihfError
from identity.sectors import (PROFESSION, PROFESSION_OID, SECTEUR_ACTIVITE, SECTEUR_ACTIVITE_OID,
                              SECTOR_BY_SECTEUR_ACTIVITE, SECTORS)
from identity.structure import Structure
from segur.identifiers import INS_NIR_SYSTEM, INS_OIDS, is_valid_finess, is_valid_ins, is_valid_rpps

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
HL7 = "urn:hl7-org:v3"
EXCLUSIVE_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
X509_SUBJECT_NAME = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:TLSClient"  # DRIMbox, indirect mode

VIHF_VERSION = "3.0"
ACCEPTED_VERSIONS = frozenset({"3.0", "4.0"})  # every implementation sends 3.0; the HL7v2-IG's table says 4.0
INS_OID = INS_NIR_SYSTEM.removeprefix("urn:oid:")  # 1.2.250.1.213.1.4.8

# Attribute names (AttributeStatement/Attribute/@Name)
VERSION = "VIHF_Version"
STRUCTURE = "Identifiant_Structure"
SECTOR = "Secteur_Activite"
SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
AUTHENTICATION_MODE = "Authentification_Mode"
RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
RESOURCE_URN = "Ressource_URN"
PURPOSE_OF_USE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
LPS_ID, LPS_NAME, LPS_VERSION = "LPS_ID", "LPS_Nom", "LPS_Version"

# our access modes -> TRE_R248 ModeAcces (OID 1.2.250.1.213.1.1.4.248): code, label
MODE_OID = "1.2.250.1.213.1.1.4.248"
MODE_SYSTEM_NAME = "mode acces VIHF 1.0"  # ANS kit, DRIMbox
MODES = {
    "normal": ("normal", "Accès normal"),
    "emergency": ("bris_de_glace", "Accès en bris de glace"),
    "regulation": ("centre_15", "Accès par un centre de régulation médicale"),
}
MODE_BY_CODE = {code: mode for mode, (code, _) in MODES.items()}

CLOCK_SKEW_S = 60.0  # tolerated difference between the issuer's clock and ours, both ways
_SOFTWARE = "segur-loadsim"


@dataclass(frozen=True, slots=True)
class Vihf:
    """What a verified VIHF says: the professional calling, the patient, the access mode, until when."""

    actor: Actor  # a professional: rpps, sector, finess (None without Identifiant_Structure)
    patient_ins: str
    mode: str  # "normal" | "emergency" | "regulation"
    expires_at: float  # NotOnOrAfter, seconds since the epoch
    assertion_id: str


# --- issuing ---------------------------------------------------------------------------------------------


def ins_cx(ins: str) -> str:
    """An INS as the VIHF's resource-id: ``INS^^^&1.2.250.1.213.1.4.8&ISO^NH``."""
    return f"{ins}^^^&{INS_OID}&ISO^NH"


def issue_assertion(structure: Structure, actor: Actor, patient_ins: str, mode: str = "normal",
                    expires_in: int = 600, now: float | None = None, audience: str | None = None) -> bytes:
    """One signed ``saml:Assertion`` (UTF-8 XML, no declaration) by ``structure`` for the professional ``actor``
    asking for ``patient_ins``'s record in ``mode``, valid ``expires_in`` seconds from ``now``.

    Raises ValueError for an actor that is not a well-formed professional, an invalid INS, an unknown mode or a
    lifetime that is not positive."""
    problem = check_actor(actor)
    if problem:
        raise ValueError(problem)
    if not actor.is_professional:
        raise ValueError("a VIHF names a professional (RPPS), not a patient")
    if not is_valid_ins(patient_ins):
        raise ValueError(f"invalid INS {patient_ins!r}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
    if expires_in <= 0:
        raise ValueError(f"expires_in must be positive, got {expires_in}")
    issued = time.time() if now is None else now
    assertion_id = f"VIHF-{uuid.uuid4()}"
    root = etree.Element(_saml("Assertion"), nsmap={"saml": SAML},
                         ID=assertion_id, IssueInstant=_instant(issued), Version="2.0")
    etree.SubElement(root, _saml("Issuer"), Format=X509_SUBJECT_NAME).text = structure.subject
    etree.SubElement(root, f"{{{DS}}}Signature", nsmap={"ds": DS}, Id="placeholder")  # where signxml signs
    subject = etree.SubElement(root, _saml("Subject"))
    etree.SubElement(subject, _saml("NameID")).text = "8" + actor.rpps
    conditions = etree.SubElement(root, _saml("Conditions"), NotBefore=_instant(issued),
                                  NotOnOrAfter=_instant(issued + expires_in))
    if audience is not None:
        restriction = etree.SubElement(conditions, _saml("AudienceRestriction"))
        etree.SubElement(restriction, _saml("Audience")).text = audience
    authn = etree.SubElement(root, _saml("AuthnStatement"), AuthnInstant=_instant(issued))
    context = etree.SubElement(authn, _saml("AuthnContext"))
    etree.SubElement(context, _saml("AuthnContextClassRef")).text = AUTHN_CONTEXT

    statement = etree.SubElement(root, _saml("AttributeStatement"))
    sector_code, _ = SECTEUR_ACTIVITE[actor.sector]
    profession_code, profession_label = PROFESSION[actor.sector]
    mode_code, mode_label = MODES[mode]
    _attribute(statement, VERSION, VIHF_VERSION)
    if actor.finess is not None:
        _attribute(statement, STRUCTURE, "1" + actor.finess)
    _attribute(statement, SECTOR, f"{sector_code}^{SECTEUR_ACTIVITE_OID}")
    _attribute(statement, SUBJECT_ID, f"Professionnel de santé 8{actor.rpps}")
    _coded_attribute(statement, ROLE, "Role", profession_code, PROFESSION_OID, "professions", profession_label)
    _attribute(statement, AUTHENTICATION_MODE, "INDIRECTE")
    _attribute(statement, RESOURCE_ID, ins_cx(patient_ins))
    _attribute(statement, RESOURCE_URN, "urn:dmp")
    _coded_attribute(statement, PURPOSE_OF_USE, "PurposeOfUse", mode_code, MODE_OID, MODE_SYSTEM_NAME, mode_label)
    _attribute(statement, LPS_ID, _SOFTWARE)
    _attribute(statement, LPS_NAME, _SOFTWARE)
    _attribute(statement, LPS_VERSION, _software_version())
    return etree.tostring(sign(root, structure), encoding="UTF-8", xml_declaration=False)


def sign(assertion: etree._Element, structure: Structure) -> etree._Element:
    """``assertion`` signed by ``structure`` where its placeholder ``ds:Signature`` (``Id="placeholder"``) sits:
    enveloped, RSA-SHA256, SHA-256 digest, exclusive c14n, one reference to the assertion's ``ID``."""
    from signxml import XMLSigner, methods  # imported on use: `segur` starts faster without it

    signer = XMLSigner(method=methods.enveloped, signature_algorithm="rsa-sha256", digest_algorithm="sha256",
                       c14n_algorithm=EXCLUSIVE_C14N)
    return signer.sign(assertion, key=structure.private_key, cert=[structure.certificate],
                       reference_uri="#" + assertion.get("ID"), id_attribute="ID")


def _saml(local: str) -> str:
    return f"{{{SAML}}}{local}"


def _attribute(statement: etree._Element, name: str, value: str) -> None:
    attribute = etree.SubElement(statement, _saml("Attribute"), Name=name)
    etree.SubElement(attribute, _saml("AttributeValue")).text = value


def _coded_attribute(statement: etree._Element, name: str, element: str, code: str, system: str,
                     system_name: str, label: str) -> None:
    """An attribute whose value is an HL7 v3 CE: ``<Role xmlns="urn:hl7-org:v3" code=… codeSystem=…
    codeSystemName=… displayName=…/>``. The DMP's examples also write ``xsi:type="CE"``; it is left out [check]:
    the acceptance check validates the assertion against the SAML schema alone, where a type of the HL7 schema
    cannot resolve (libxml2 refuses it), while an undeclared element in AttributeValue (xs:anyType) is accepted."""
    attribute = etree.SubElement(statement, _saml("Attribute"), Name=name)
    value = etree.SubElement(attribute, _saml("AttributeValue"))
    etree.SubElement(value, f"{{{HL7}}}{element}", nsmap={None: HL7},
                     code=code, codeSystem=system, codeSystemName=system_name, displayName=label)


def _instant(seconds: float) -> str:
    """xs:dateTime in UTC, milliseconds: 2026-01-05T09:30:00.000Z."""
    moment = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@lru_cache(maxsize=1)
def _software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("segur-loadsim")
    except PackageNotFoundError:
        return "0"


# --- verifying -------------------------------------------------------------------------------------------


class VihfVerifier:
    """Checks VIHF assertions against a trust store and gives the :class:`Vihf` each one names.

    ``trusted_certificates``: the structures whose signatures are accepted (see
    :func:`identity.structure.trusted_certificates`); ``audience``: when given, the assertion must name it in
    ``Conditions/AudienceRestriction/Audience``; ``cache_size``: verified assertions remembered (oldest
    forgotten first).
    """

    def __init__(self, trusted_certificates: Iterable[x509.Certificate], audience: str | None = None,
                 cache_size: int = 10_000, clock_skew: float = CLOCK_SKEW_S):
        self._trusted = {certificate.fingerprint(hashes.SHA256()): certificate
                         for certificate in trusted_certificates}
        if not self._trusted:
            raise ValueError("a VIHF verifier needs at least one trusted certificate")
        self._audience = audience
        self._cache: OrderedDict[bytes, tuple[Vihf, float]] = OrderedDict()
        self._cache_size = cache_size
        self._skew = clock_skew

    def verify(self, assertion: etree._Element | bytes, now: float | None = None) -> Vihf:
        """The :class:`Vihf` a ``saml:Assertion`` names (the element as received, or its bytes), or raises
        :class:`~identity.errors.VihfError`. The signature is checked once per distinct assertion (cached by its
        exact bytes); the validity window on every call."""
        now = time.time() if now is None else now
        if isinstance(assertion, (bytes, str)):
            assertion = _parse(assertion)
        raw = etree.tostring(assertion)
        key = hashlib.sha256(raw).digest()
        entry = self._cache.get(key)
        if entry is None:
            entry = self._verify(assertion, now)
            self._cache[key] = entry
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        vihf, not_before = entry
        if now < not_before - self._skew:
            raise VihfError("not-yet-valid", f"VIHF pas encore valide : NotBefore {_instant(not_before)}, "
                            f"il est {_instant(now)}")
        if now >= vihf.expires_at + self._skew:
            raise VihfError("expired", f"VIHF expiré : NotOnOrAfter {_instant(vihf.expires_at)} dépassé "
                            f"(il est {_instant(now)})")
        return vihf

    # the work done once per assertion

    def _verify(self, assertion: etree._Element, now: float) -> tuple[Vihf, float]:
        if not isinstance(assertion.tag, str) or assertion.tag != _saml("Assertion"):
            raise VihfError("malformed", "VIHF invalide : l'élément reçu n'est pas une saml:Assertion (SAML 2.0)")
        assertion_id = assertion.get("ID")
        if not assertion_id:
            raise VihfError("malformed", "VIHF invalide : l'assertion n'a pas d'attribut ID")
        signatures = assertion.findall(f"{{{DS}}}Signature")
        if len(signatures) != 1:
            raise VihfError("signature", "VIHF invalide : l'assertion n'est pas signée (aucune ds:Signature enfant)"
                            if not signatures else "VIHF invalide : plusieurs ds:Signature dans l'assertion")
        certificate = self._trusted_certificate(signatures[0])
        references = signatures[0].findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
        if len(references) != 1 or references[0].get("URI") != "#" + assertion_id:
            uris = ", ".join(repr(reference.get("URI")) for reference in references) or "aucune"
            raise VihfError("signature", f"VIHF invalide : la signature ne porte pas sur l'assertion {assertion_id!r} "
                            f"(références : {uris})")
        result = self._check_signature(assertion, certificate, now)
        signed = result.signed_xml
        # what the signature covers must be this very assertion: the signed copy is read, the tree received never
        signed_references = result.signature_xml.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
        if (signed is None or signed.tag != _saml("Assertion") or signed.get("ID") != assertion_id
                or [reference.get("URI") for reference in signed_references] != ["#" + assertion_id]):
            raise VihfError("signature", "VIHF invalide : la signature ne porte pas sur l'assertion reçue")
        return _read(signed, assertion_id, self._audience)

    def _trusted_certificate(self, signature: etree._Element) -> x509.Certificate:
        """The certificate in the signature's KeyInfo, if it is a trusted one."""
        values = signature.findall(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
        if not values:
            raise VihfError("untrusted", "VIHF invalide : la signature ne porte pas de certificat (ds:X509Certificate)")
        try:
            certificate = x509.load_der_x509_certificate(_base64(values[0].text or ""))
        except ValueError:
            raise VihfError("untrusted", "VIHF invalide : certificat de signature illisible") from None
        trusted = self._trusted.get(certificate.fingerprint(hashes.SHA256()))
        if trusted is None:
            try:
                subject = certificate.subject.rfc4514_string()
            except ValueError:
                subject = "sujet illisible"
            raise VihfError("untrusted", f"VIHF invalide : certificat de signature non reconnu ({subject})")
        return trusted

    def _check_signature(self, assertion: etree._Element, certificate: x509.Certificate, now: float):
        """signxml's verification of the enveloped signature with ``certificate`` (the trusted one, never the one
        the assertion carries); its VerifyResult. The one expensive step, done once per cached assertion."""
        from signxml import SignatureConfiguration, SignatureMethod, XMLVerifier  # imported on use
        from signxml.algorithms import DigestAlgorithm
        from signxml.exceptions import InvalidCertificate

        config = SignatureConfiguration(
            location="./",  # a direct child of the assertion
            expect_references=1,
            signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384,
                                         SignatureMethod.RSA_SHA512}),
            digest_algorithms=frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}),
            verification_time=dt.datetime.fromtimestamp(now, dt.timezone.utc))
        try:
            return XMLVerifier().verify(assertion, x509_cert=certificate, id_attribute="ID", expect_config=config)
        except InvalidCertificate as error:
            raise VihfError("untrusted", f"VIHF invalide : certificat de signature inutilisable ({error})") from None
        except Exception as error:  # anything that keeps the signature from being proven: a bad value, digest, form
            raise VihfError("signature", f"VIHF invalide : signature incorrecte ({_short(error)})") from None


def _parse(data: bytes | str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        return etree.fromstring(data.encode() if isinstance(data, str) else data, parser)
    except (etree.XMLSyntaxError, ValueError) as error:
        raise VihfError("malformed", f"VIHF invalide : XML illisible ({_short(error)})") from None


def _base64(text: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def _short(error: BaseException, limit: int = 160) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- reading the signed assertion ------------------------------------------------------------------------


def _read(signed: etree._Element, assertion_id: str, audience: str | None) -> tuple[Vihf, float]:
    """The Vihf and NotBefore of the signed assertion (what signxml returned)."""
    conditions = signed.find(_saml("Conditions"))
    if conditions is None or not conditions.get("NotOnOrAfter"):
        raise VihfError("missing-attribute", "VIHF invalide : Conditions/@NotOnOrAfter absent (durée de validité)")
    expires_at = _seconds(conditions.get("NotOnOrAfter"), "Conditions/@NotOnOrAfter")
    start = conditions.get("NotBefore") or signed.get("IssueInstant")
    not_before = _seconds(start, "Conditions/@NotBefore") if start else float("-inf")
    if audience is not None:
        audiences = [(element.text or "").strip()
                     for element in conditions.iter(_saml("Audience"))]
        if audience not in audiences:
            raise VihfError("audience", f"VIHF invalide : l'audience {audience!r} n'est pas nommée "
                            f"(AudienceRestriction : {', '.join(map(repr, audiences)) or 'aucune'})")

    values: dict[str, list[etree._Element]] = {}
    for attribute in signed.iterfind(f"{_saml('AttributeStatement')}/{_saml('Attribute')}"):
        values.setdefault(attribute.get("Name", ""), []).extend(attribute.findall(_saml("AttributeValue")))

    def text(name: str, required: bool = True) -> str | None:
        found = values.get(name)
        value = (found[0].text or "").strip() if found else ""
        if not value:
            if required:
                raise VihfError("missing-attribute", f"VIHF invalide : attribut {name} absent")
            return None
        return value

    def coded(name: str) -> etree._Element:
        found = values.get(name)
        element = next((child for child in found[0] if isinstance(child.tag, str)), None) if found else None
        if element is None or not element.get("code"):
            raise VihfError("missing-attribute", f"VIHF invalide : attribut {name} absent (un CE est attendu)")
        return element

    version = text(VERSION)
    if version not in ACCEPTED_VERSIONS:
        raise VihfError("malformed", f"VIHF invalide : {VERSION} {version!r} non pris en charge "
                        f"({' ou '.join(sorted(ACCEPTED_VERSIONS))})")

    name_id = signed.find(f"{_saml('Subject')}/{_saml('NameID')}")
    idnat = (name_id.text or "").strip() if name_id is not None else ""
    if not idnat:
        raise VihfError("missing-attribute", "VIHF invalide : Subject/NameID absent (identifiant du professionnel)")
    if not (idnat.startswith("8") and is_valid_rpps(idnat[1:])):
        raise VihfError("invalid-identity", f"VIHF invalide : Subject/NameID {idnat[:40]!r} n'est pas un IdNat_PS "
                        "8 + RPPS valide")

    sector_value = text(SECTOR)
    code, _, system = sector_value.partition("^")
    sector = SECTOR_BY_SECTEUR_ACTIVITE.get(code) if system == SECTEUR_ACTIVITE_OID else None
    if sector is None:
        known = ", ".join(f"{SECTEUR_ACTIVITE[s][0]}^{SECTEUR_ACTIVITE_OID}" for s in SECTORS)
        raise VihfError("invalid-identity", f"VIHF invalide : {SECTOR} {sector_value[:60]!r} inconnu (l'un de {known})")

    finess = None
    structure = text(STRUCTURE, required=False)
    if structure is not None:
        if not (structure.startswith("1") and is_valid_finess(structure[1:])):
            raise VihfError("invalid-identity", f"VIHF invalide : {STRUCTURE} {structure[:40]!r} n'est pas "
                            "1 + FINESS valide")
        finess = structure[1:]

    patient_ins = _ins_from_cx(text(RESOURCE_ID))

    purpose = coded(PURPOSE_OF_USE)
    mode = MODE_BY_CODE.get(purpose.get("code", "")) if purpose.get("codeSystem") == MODE_OID else None
    if mode is None:
        raise VihfError("invalid-identity", f"VIHF invalide : mode d'accès {purpose.get('code')!r} "
                        f"(codeSystem {purpose.get('codeSystem')!r}) inconnu : "
                        f"{', '.join(code for code, _ in MODES.values())} de {MODE_OID} attendus")

    actor = Actor(rpps=idnat[1:], sector=sector, finess=finess)
    problem = check_actor(actor)
    if problem:  # every field was checked above: a safety net
        raise VihfError("invalid-identity", f"VIHF invalide : {problem}")
    return Vihf(actor, patient_ins, mode, expires_at, assertion_id), not_before


def _ins_from_cx(value: str) -> str:
    """The INS of a resource-id ``INS^^^&OID&ISO[^NH]`` whose authority is the INS-NIR (or its test system)."""
    parts = value.split("^")
    authority = parts[3].split("&") if len(parts) > 3 else []
    ins = parts[0]
    if (len(parts) not in (4, 5) or len(authority) != 3 or authority[1] not in INS_OIDS
            or authority[2] != "ISO" or (len(parts) == 5 and parts[4] not in ("NH", ""))):
        raise VihfError("invalid-identity", f"VIHF invalide : {RESOURCE_ID} {value[:80]!r} n'est pas un INS au "
                        f"format CX (INS^^^&{INS_OID}&ISO^NH)")
    if not is_valid_ins(ins):
        raise VihfError("invalid-identity", f"VIHF invalide : INS {ins[:20]!r} du patient invalide (clé ou format)")
    return ins


def _seconds(value: str, where: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise VihfError("malformed", f"VIHF invalide : {where} {value[:40]!r} n'est pas un xs:dateTime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()

"""The calling structure's key pair and X.509 certificate: what signs its VIHF assertions.

In the DMP's indirect authentication mode the structure (a hospital, a lab, a software platform) signs the
VIHF with its seal certificate, its "certificat de cachet", and the VIHF's ``Issuer`` is that certificate's
subject DN (docs/xds-sources.md 1.3). Here one structure stands for every simulated caller: an RSA 2048 key
and a self-signed certificate kept beside the signing key file, so that ``segur serve --key FILE`` trusts
what ``segur vihf --key FILE`` signs, and the defaults (``.segur/signing.key``) agree when neither names one:

- ``<key>.structure.key.pem``: the private key (PKCS#8 PEM, mode 0600, refused when open to others);
- ``<key>.structure.crt.pem``: the certificate (PEM).

The certificate is a pure function of the key (its subject, serial and dates derive from the public key,
and an RSA PKCS#1 v1.5 signature is deterministic), so processes racing to make the pair agree: the key is
linked into place atomically (the first one wins, the others read it) and whoever makes the certificate
from that key makes the same bytes. Its subject follows a seal certificate's shape: ``C=FR``, ``O`` the
structure, ``OU`` its structure id (the ANS kit reads ``Identifiant_Structure`` from the OU), here
``1`` + a FINESS derived from the key [inference: a synthetic structure, not a registered one].
The service's trust store (:func:`trusted_certificates`) is that certificate, plus the PEM certificates of
an optional trust directory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from identity.keys import KeyFileError, create_exclusive, read_private
from segur.identifiers import luhn_complete

KEY_SUFFIX = ".structure.key.pem"
CERTIFICATE_SUFFIX = ".structure.crt.pem"
_KEY_BITS = 2048
_NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
_NOT_AFTER = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)  # RFC 5280 4.1.2.5: no expiry
_ORGANISATION = "segur-loadsim"
_MAX_PEM_BYTES = 64 * 1024


@dataclass(frozen=True)
class Structure:
    """The structure's private key and certificate, and the files they came from."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    key_file: Path
    certificate_file: Path

    @property
    def subject(self) -> str:
        """The certificate's subject DN (RFC 4514), the VIHF's ``Issuer``."""
        return self.certificate.subject.rfc4514_string()

    @property
    def structure_id(self) -> str:
        """The structure id in the certificate's OU (``1`` + FINESS)."""
        return self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value


def structure_files(key_file: str | Path) -> tuple[Path, Path]:
    """The structure's key and certificate files beside the signing key file ``key_file``."""
    key_file = Path(key_file)
    return Path(f"{key_file}{KEY_SUFFIX}"), Path(f"{key_file}{CERTIFICATE_SUFFIX}")


def load_or_create_structure(key_file: str | Path, create_parents: bool = True,
                             announce: Callable[[str], None] | None = None) -> Structure:
    """The structure beside the signing key file ``key_file``, made on first use (see the module's notes).

    Raises :class:`~identity.keys.KeyFileError` (exit 2 on the command line) when a file exists but cannot be
    used: not a regular file, unreadable, the private key open to group or others or not an RSA PEM key, the
    certificate not PEM or not the key's; existing files are never replaced. ``announce`` is told what was made.
    """
    key_path, certificate_path = structure_files(key_file)
    made_key = False
    try:
        private_key = _read_private_key(key_path)
    except FileNotFoundError:
        made = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
        pem = made.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        made_key = create_exclusive(key_path, pem, create_parents, "structure key")
        if made_key and announce is not None:
            announce(f"structure key {key_path} did not exist: made a new RSA {_KEY_BITS} key (mode 0600) and its "
                     f"self-signed certificate {certificate_path}; assertions signed by any other structure are "
                     "refused")
        private_key = _read_private_key(key_path)
    try:
        certificate = _read_certificate(certificate_path)
    except FileNotFoundError:
        if create_exclusive(certificate_path, certificate_for(private_key).public_bytes(serialization.Encoding.PEM),
                            create_parents, "structure certificate") and announce is not None and not made_key:
            announce(f"structure certificate {certificate_path} did not exist: made it again from {key_path}")
        certificate = _read_certificate(certificate_path)
    if certificate.public_key().public_numbers() != private_key.public_key().public_numbers():
        raise KeyFileError(f"structure certificate {certificate_path} is not the certificate of {key_path}: remove "
                           "it to have it made again from the key")
    return Structure(private_key, certificate, key_path, certificate_path)


def certificate_for(private_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """The structure's self-signed certificate: a pure function of its key (same key, same bytes)."""
    public_key = private_key.public_key()
    digest = hashlib.sha256(public_key.public_bytes(serialization.Encoding.DER,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)).digest()
    number = int.from_bytes(digest[:8], "big")
    finess = luhn_complete(f"{number % 95 + 1:02d}{number // 95 % 10**6:06d}")  # department 01-95 + 6 digits
    structure_id = "1" + finess  # IdNat_Struct of a FINESS
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANISATION),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, structure_id),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{_ORGANISATION} cachet {structure_id}"),
    ])
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(public_key)
            .serial_number(int.from_bytes(digest[8:24], "big") >> 1 | 1)  # positive, at most 16 bytes
            .not_valid_before(_NOT_BEFORE).not_valid_after(_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(private_key, hashes.SHA256()))


def trusted_certificates(key_file: str | Path, trust_dir: str | Path | None = None,
                         create_parents: bool = False,
                         announce: Callable[[str], None] | None = None) -> tuple[x509.Certificate, ...]:
    """The service's trust store: the certificate of the structure beside ``key_file`` (made if missing), then
    every certificate in the ``*.pem`` and ``*.crt`` files of ``trust_dir`` (other structures' certificates),
    if given. Raises :class:`~identity.keys.KeyFileError` for a file it cannot read as PEM certificates."""
    certificates = [load_or_create_structure(key_file, create_parents, announce).certificate]
    if trust_dir is not None:
        directory = Path(trust_dir)
        if not directory.is_dir():
            raise KeyFileError(f"trust directory {directory} does not exist or is not a directory")
        for path in sorted({*directory.glob("*.pem"), *directory.glob("*.crt")}):
            raw = read_private(path, "trusted certificate", _MAX_PEM_BYTES, private=False)
            try:
                certificates.extend(x509.load_pem_x509_certificates(raw))
            except ValueError:
                raise KeyFileError(f"trusted certificate {path} holds no readable PEM certificate") from None
    return tuple(certificates)


def _read_private_key(path: Path) -> rsa.RSAPrivateKey:
    raw = read_private(path, "structure key", _MAX_PEM_BYTES)
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"structure key {path} is not an unencrypted RSA private key in PEM: remove it and "
                           f"{path.name.removesuffix(KEY_SUFFIX)}{CERTIFICATE_SUFFIX} to have a new pair made")
    return key


def _read_certificate(path: Path) -> x509.Certificate:
    raw = read_private(path, "structure certificate", _MAX_PEM_BYTES, private=False)
    try:
        return x509.load_pem_x509_certificate(raw)
    except ValueError:
        raise KeyFileError(f"structure certificate {path} is not a PEM certificate: remove it to have it made again "
                           "from the key") from None

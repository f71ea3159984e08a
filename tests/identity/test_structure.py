"""The structure's key pair and certificate beside the key file: made once, atomically, mode 0600, whoever
races for them; the certificate a pure function of the key; refused with a clear message when unusable; the
trust store is that certificate plus a trust directory's."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from identity.keys import KeyFileError
from identity.structure import (CERTIFICATE_SUFFIX, KEY_SUFFIX, certificate_for, load_or_create_structure,
                                structure_files, trusted_certificates)
from segur.identifiers import is_valid_finess
from tests.races import race


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_made_beside_the_key_file_private_and_announced_once(tmp_path):
    said = []
    structure = load_or_create_structure(tmp_path / "signing.key", create_parents=False, announce=said.append)
    key_path, certificate_path = structure_files(tmp_path / "signing.key")
    assert (structure.key_file, structure.certificate_file) == (key_path, certificate_path)
    assert key_path.name == "signing.key" + KEY_SUFFIX and certificate_path.name == "signing.key" + CERTIFICATE_SUFFIX
    assert _mode(key_path) == 0o600 and _mode(certificate_path) == 0o600
    assert sorted(os.listdir(tmp_path)) == sorted([key_path.name, certificate_path.name])  # no temporary left
    assert len(said) == 1 and str(key_path) in said[0]
    again = load_or_create_structure(tmp_path / "signing.key", announce=said.append)
    assert again.certificate == structure.certificate and len(said) == 1
    assert structure.private_key.key_size == 2048


def test_the_certificate_looks_like_a_seal_certificate(tmp_path):
    structure = load_or_create_structure(tmp_path / "k")
    subject = structure.certificate.subject
    assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "FR"
    structure_id = structure.structure_id
    assert structure_id.startswith("1") and is_valid_finess(structure_id[1:])  # IdNat_Struct: 1 + FINESS
    assert structure.subject == subject.rfc4514_string() and f"OU={structure_id}" in structure.subject
    assert structure.certificate.issuer == subject  # self-signed
    assert not structure.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = structure.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment


def test_the_certificate_is_a_pure_function_of_the_key(tmp_path):
    structure = load_or_create_structure(tmp_path / "k")
    said = []
    structure.certificate_file.unlink()
    again = load_or_create_structure(tmp_path / "k", announce=said.append)
    assert again.certificate_file.read_bytes() == structure.certificate.public_bytes(Encoding.PEM)
    assert certificate_for(structure.private_key) == structure.certificate
    assert said and "made it again" in said[0]


def _fingerprint(path: str) -> bytes:
    return load_or_create_structure(path, create_parents=False).certificate.fingerprint(hashes.SHA256())


def test_concurrent_first_use_gives_everyone_the_same_structure(tmp_path):
    for attempt in range(3):
        fingerprints = race(_fingerprint, str(tmp_path / f"k{attempt}"), processes=6, timeout=60)
        assert len(set(fingerprints)) == 1
    assert len(os.listdir(tmp_path)) == 6  # two files per key, nothing else


def test_a_private_key_open_to_others_is_refused_and_kept(tmp_path):
    structure = load_or_create_structure(tmp_path / "k")
    structure.key_file.chmod(0o640)
    with pytest.raises(KeyFileError, match=f"structure key {structure.key_file} is open to group or others .*chmod 600"):
        load_or_create_structure(tmp_path / "k")
    assert _mode(structure.key_file) == 0o640


def test_an_unusable_key_or_certificate_is_refused_never_replaced(tmp_path):
    path = tmp_path / "k"
    key_path, certificate_path = structure_files(path)
    key_path.write_bytes(b"not a key")
    key_path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an unencrypted RSA private key"):
        load_or_create_structure(path)
    assert key_path.read_bytes() == b"not a key"
    key_path.unlink()
    load_or_create_structure(path)
    certificate_path.write_bytes(load_or_create_structure(tmp_path / "other").certificate_file.read_bytes())
    with pytest.raises(KeyFileError, match="is not the certificate of"):
        load_or_create_structure(path)
    certificate_path.write_bytes(b"garbage")
    with pytest.raises(KeyFileError, match="not a PEM certificate"):
        load_or_create_structure(path)


def test_a_named_key_whose_directory_is_missing_is_refused(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        load_or_create_structure(tmp_path / "missing" / "k", create_parents=False)
    assert not (tmp_path / "missing").exists()


def test_the_trust_store_is_the_structure_plus_a_trust_directory(tmp_path):
    ours = load_or_create_structure(tmp_path / "ours" / "k")
    theirs = [load_or_create_structure(tmp_path / "theirs" / f"k{n}") for n in range(2)]
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "a.pem").write_bytes(theirs[0].certificate_file.read_bytes() + theirs[1].certificate_file.read_bytes())
    (trust / "notes.txt").write_text("not read")
    assert trusted_certificates(tmp_path / "ours" / "k") == (ours.certificate,)
    assert trusted_certificates(tmp_path / "ours" / "k", trust) == (ours.certificate, theirs[0].certificate,
                                                                    theirs[1].certificate)
    (trust / "b.crt").write_text("garbage")
    with pytest.raises(KeyFileError, match="b.crt holds no readable PEM certificate"):
        trusted_certificates(tmp_path / "ours" / "k", trust)
    with pytest.raises(KeyFileError, match="trust directory"):
        trusted_certificates(tmp_path / "ours" / "k", tmp_path / "nowhere")

"""``segur vihf``: prints one assertion that the verifier on the trust store of the same --key accepts, as the
acceptance check calls it; refuses bad input with exit 2 and no traceback; and ``segur serve``'s app verifies
with the same structure."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from lxml import etree

from identity.command import _MODES
from identity.structure import structure_files, trusted_certificates
from identity.vihf import MODES, SAML, VihfVerifier
from segur.cli import main
from tests.identity.conftest import FINESS, INS, RPPS

SEGUR = [sys.executable, "-m", "segur.cli"]
CHECK_ARGS = ["--professional", RPPS, "--sector", "lab", "--facility", FINESS, "--patient", INS,
              "--mode", "normal", "--expires-in", "600"]  # what ../shared/acceptance/xds passes


def _vihf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SEGUR, "vihf", *args], capture_output=True, text=True, timeout=120)


def test_segur_vihf_prints_an_assertion_the_trust_store_of_the_same_key_accepts(tmp_path, saml_schema):
    key = tmp_path / "key"
    proc = _vihf(*CHECK_ARGS, "--key", str(key))
    assert proc.returncode == 0, proc.stderr
    assert "structure key" in proc.stderr and "made a new RSA 2048 key" in proc.stderr  # said, on stderr
    assertion = etree.fromstring(proc.stdout.strip().encode())
    assert assertion.tag == f"{{{SAML}}}Assertion" and saml_schema.validate(assertion), saml_schema.error_log
    assert all(value in proc.stdout for value in (RPPS, INS, FINESS))
    assert all(path.exists() for path in structure_files(key))
    vihf = VihfVerifier(trusted_certificates(key)).verify(assertion)
    assert (vihf.actor.rpps, vihf.actor.sector, vihf.actor.finess, vihf.patient_ins, vihf.mode) == (
        RPPS, "lab", FINESS, INS, "normal")
    again = _vihf(*CHECK_ARGS, "--key", str(key))  # the structure is kept: nothing announced, still trusted
    assert again.returncode == 0 and again.stderr == ""
    VihfVerifier(trusted_certificates(key)).verify(etree.fromstring(again.stdout.encode()))


def test_segur_vihf_and_segur_serve_default_to_the_same_structure(tmp_path):
    """Without --key both use .segur/signing.key (relative to where they run)."""
    proc = subprocess.run([*SEGUR, "vihf", *CHECK_ARGS[:-4]], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    default_key = tmp_path / ".segur" / "signing.key"
    assert VihfVerifier(trusted_certificates(default_key)).verify(proc.stdout.encode()).mode == "normal"


def test_the_service_app_verifies_with_the_structure_beside_its_key(tmp_path):
    from record_service.app import create_app
    from record_service.settings import Settings, default_sqlite_url

    key = tmp_path / "signing.key"
    result = CliRunner().invoke(main, ["vihf", *CHECK_ARGS, "--key", str(key)])
    assert result.exit_code == 0, result.output
    assertion = result.stdout[result.stdout.index("<"):].strip().encode()
    data = tmp_path / "data"
    data.mkdir()
    app = create_app(Settings(db_url=default_sqlite_url(data), data_dir=str(data), key_file=str(key)))
    starlette = app.app.app  # MetricsMiddleware -> AdmissionMiddleware -> Starlette
    assert starlette.state.vihf_verifier.verify(assertion).actor.rpps == RPPS


@pytest.mark.parametrize("args, expected", [
    (["--professional", "10003456789"], "--professional '10003456789': an RPPS is 11 digits"),
    (["--patient", "295109912611194"], "--patient '295109912611194': an INS is 15 characters"),
    (["--facility", "75071218"], "--facility '75071218': a FINESS is 9 digits"),
    (["--sector", "dentist"], "Invalid value for '--sector'"),
    (["--mode", "bris_de_glace"], "Invalid value for '--mode'"),
    (["--expires-in", "0"], "Invalid value for '--expires-in'"),
])
def test_bad_input_exits_2_with_a_precise_error(tmp_path, args, expected):
    options = dict(zip(CHECK_ARGS[::2], CHECK_ARGS[1::2]))
    options.update(zip(args[::2], args[1::2]))
    result = CliRunner().invoke(main, ["vihf", *[w for pair in options.items() for w in pair],
                                       "--key", str(tmp_path / "key")])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert not any(tmp_path.iterdir())  # nothing made for a refused request


def test_errors_exit_2_without_a_traceback(tmp_path):
    proc = _vihf(*CHECK_ARGS, "--key", str(tmp_path / "missing" / "key"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    key = tmp_path / "key"
    structure_key, _ = structure_files(key)
    structure_key.write_text("not a key")
    structure_key.chmod(0o644)
    proc = _vihf(*CHECK_ARGS[:-4], "--key", str(key))
    assert proc.returncode == 2 and "chmod 600" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    proc = _vihf("--professional", "1", "--sector", "lab", "--patient", INS)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


def test_help_shows_an_example_whose_values_are_valid():
    result = CliRunner().invoke(main, ["vihf", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output
    assert f"--professional {RPPS} --sector lab --facility {FINESS} --patient {INS}" in result.output
    assert set(_MODES) == set(MODES)

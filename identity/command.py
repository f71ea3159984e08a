"""``segur vihf``: print one signed VIHF (the DMP's SAML 2.0 assertion) for the XDS.b front."""

from __future__ import annotations

import click

from identity.keys import DEFAULT_KEY_FILE
from identity.sectors import SECTORS
from segur.errors import InputError
from segur.identifiers import is_valid_finess, is_valid_ins, is_valid_rpps

_MODES = ("normal", "emergency", "regulation")  # identity.vihf.MODES, without importing lxml for --help


def _to_stderr(message: str) -> None:
    click.echo(message, err=True)


@click.command()
@click.option("--professional", metavar="RPPS", required=True,
              help="the professional's RPPS (11 digits, Luhn); the assertion's NameID is its IdNat_PS, 8+RPPS")
@click.option("--sector", required=True, type=click.Choice(SECTORS),
              help="the professional's sector; Secteur_Activite is its TRE_R02 code (lab: SA29)")
@click.option("--facility", metavar="FINESS", help="the facility (9-digit FINESS); Identifiant_Structure = 1+FINESS")
@click.option("--patient", metavar="INS", required=True,
              help="the patient's INS (15 characters); resource-id = INS^^^&1.2.250.1.213.1.4.8&ISO^NH")
@click.option("--mode", default="normal", show_default=True, type=click.Choice(_MODES),
              help="access mode (purposeofuse): normal, emergency (bris de glace), regulation (centre 15)")
@click.option("--expires-in", default=600, show_default=True, type=click.IntRange(1, 10 * 365 * 86400),
              metavar="SECONDS", help="lifetime: Conditions/@NotOnOrAfter = now + SECONDS")
@click.option("--key", "key_file", default=None, type=click.Path(dir_okay=False),
              help=f"the signing key file shared with `segur serve --key` (default {DEFAULT_KEY_FILE}): the "
                   "structure's RSA key and certificate are KEY.structure.key.pem and KEY.structure.crt.pem beside "
                   "it, made (mode 0600) when missing; `segur serve` with the same --key trusts what they sign")
def vihf(professional: str, sector: str, facility: str | None, patient: str, mode: str, expires_in: int,
         key_file: str | None) -> None:
    """Print one signed VIHF: a SAML 2.0 assertion naming a professional, a patient and an access mode.

    It goes in the wsse:Security header of the XDS.b front's SOAP requests (/xds/iti41, /xds/iti18,
    /xds/iti43), signed by the calling structure (enveloped XML signature, RSA-SHA256).

    \b
    Example:
      segur vihf --professional 10003456786 --sector lab --facility 750712184 --patient 295109912611193
      segur vihf --professional 10003456786 --sector hospital --patient 295109912611193 \\
                 --mode emergency --expires-in 300 --key /tmp/dmp/signing.key
    """
    if not is_valid_rpps(professional):
        raise InputError(f"--professional {professional!r}: an RPPS is 11 digits whose last is a Luhn check digit")
    if not is_valid_ins(patient):
        raise InputError(f"--patient {patient!r}: an INS is 15 characters (13 of the NIR, 2A/2B for Corsica, then "
                         "its 2-digit key 97 - number mod 97)")
    if facility is not None and not is_valid_finess(facility):
        raise InputError(f"--facility {facility!r}: a FINESS is 9 digits whose last is a Luhn check digit")
    from identity.actors import Actor
    from identity.structure import load_or_create_structure
    from identity.vihf import issue_assertion

    structure = load_or_create_structure(key_file or DEFAULT_KEY_FILE, create_parents=key_file is None,
                                         announce=_to_stderr)  # a named key's directory must exist
    assertion = issue_assertion(structure, Actor(rpps=professional, sector=sector, finess=facility), patient,
                                mode=mode, expires_in=expires_in)
    click.echo(assertion.decode("utf-8"))

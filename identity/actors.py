"""The caller: a professional (RPPS, sector, optionally the facility's FINESS) or a patient (INS)."""

from __future__ import annotations

from dataclasses import dataclass

from identity.sectors import SECTORS
from segur.identifiers import is_valid_finess, is_valid_ins, is_valid_rpps


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller: exactly one of ``rpps`` (professional) or ``ins`` (patient) is set."""

    rpps: str | None = None
    sector: str | None = None
    finess: str | None = None
    ins: str | None = None

    @property
    def is_professional(self) -> bool:
        return self.rpps is not None

    @property
    def is_patient(self) -> bool:
        return self.ins is not None


def check_actor(actor: Actor) -> str | None:
    """What is wrong with an actor's identity, or None when it is well formed."""
    if (actor.rpps is None) == (actor.ins is None):
        return "a token names exactly one professional (RPPS) or one patient (INS)"
    if actor.ins is not None:
        return None if is_valid_ins(actor.ins) else f"invalid INS {actor.ins!r}"
    if not is_valid_rpps(actor.rpps):
        return f"invalid RPPS {actor.rpps!r}"
    if actor.sector not in SECTORS:
        return f"unknown sector {actor.sector!r} (one of {', '.join(SECTORS)})"
    if actor.finess is not None and not is_valid_finess(actor.finess):
        return f"invalid FINESS {actor.finess!r}"
    return None

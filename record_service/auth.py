"""Who is calling: signed bearer tokens (HS256 JWT via PyJWT) for a professional or a patient.

A professional token carries the RPPS, the sector and optionally the facility's FINESS; a patient
token carries the INS. ``segur token`` issues them and ``segur serve`` checks them with the same key
file. Verified tokens are cached (by their exact text) so a busy client does not pay for the HMAC on
every request; the expiry is still checked on every use.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import jwt

from record_service.codes import SECTORS
from record_service.outcomes import ServiceError, unauthenticated
from segur.identifiers import is_valid_finess, is_valid_ins, is_valid_rpps

DEFAULT_KEY_FILE = Path(".segur") / "signing.key"  # git-ignored; shared by `serve` and `token`
_ALGORITHM = "HS256"
_ISSUER = "segur-record-service"


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


def load_or_create_key(path: str | Path) -> bytes:
    """The signing key in ``path``, created (256 random bits, mode 0600) on first use."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
                f.flush()
                os.fsync(f.fileno())
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"signing key in {path} is too short (at least 32 characters)")
    return key.encode()


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


def issue_token(key: bytes, actor: Actor, expires_in: int, now: float | None = None) -> str:
    """A signed token for ``actor``, valid ``expires_in`` seconds."""
    problem = check_actor(actor)
    if problem:
        raise ValueError(problem)
    issued = int(now if now is not None else time.time())
    claims: dict = {"iss": _ISSUER, "iat": issued, "exp": issued + expires_in}
    if actor.is_patient:
        claims.update(sub=f"patient:{actor.ins}", ins=actor.ins)
    else:
        claims.update(sub=f"professional:{actor.rpps}", rpps=actor.rpps, sector=actor.sector)
        if actor.finess:
            claims["finess"] = actor.finess
    return jwt.encode(claims, key, algorithm=_ALGORITHM)


class TokenVerifier:
    """Turns an ``Authorization`` header into an :class:`Actor`, or raises a 401."""

    def __init__(self, key: bytes, cache_size: int = 10_000):
        self._key = key
        self._cache: OrderedDict[str, tuple[Actor, float]] = OrderedDict()
        self._cache_size = cache_size

    def actor(self, authorization: str | None) -> Actor:
        if not authorization:
            raise unauthenticated("no bearer token: send Authorization: Bearer <token>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated("the Authorization header must be 'Bearer <token>'")
        cached = self._cache.get(token)
        if cached is None:
            cached = self._verify(token)
            self._remember(token, cached)
        actor, expires = cached
        if expires <= time.time():
            raise unauthenticated("the token has expired")
        return actor

    def _verify(self, token: str) -> tuple[Actor, float]:
        try:
            # expiry is checked by the caller on every use, cached or not
            claims = jwt.decode(token, self._key, algorithms=[_ALGORITHM], issuer=_ISSUER,
                                options={"require": ["exp", "iat", "sub"], "verify_exp": False})
        except jwt.InvalidTokenError as error:
            raise unauthenticated(f"invalid token: {error}") from None
        actor = Actor(rpps=claims.get("rpps"), sector=claims.get("sector"), finess=claims.get("finess"),
                      ins=claims.get("ins"))
        problem = check_actor(actor)
        if problem:
            raise unauthenticated(f"invalid token: {problem}")
        exp = claims["exp"]
        if not isinstance(exp, (int, float)):
            raise unauthenticated("invalid token: exp is not a number")
        return actor, float(exp)

    def _remember(self, token: str, entry: tuple[Actor, float]) -> None:
        self._cache[token] = entry
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


__all__ = ["Actor", "DEFAULT_KEY_FILE", "ServiceError", "TokenVerifier", "issue_token", "load_or_create_key"]

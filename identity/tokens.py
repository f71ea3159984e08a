"""Signed bearer tokens (HS256 JWT via PyJWT) for a professional or a patient.

A professional token carries the RPPS, the sector and optionally the facility's FINESS; a patient
token carries the INS. ``segur token`` issues them and ``segur serve`` checks them with the same key
file. Verified tokens are cached (by their exact text) so a busy client does not pay for the HMAC on
every request; the expiry is still checked on every use.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import jwt

from identity.actors import Actor, check_actor
from identity.errors import Unauthenticated

_ALGORITHM = "HS256"
_ISSUER = "segur-record-service"


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


OPERATOR_SUBJECT = "operator:bulk-load"   # the subject of the operator's token: the bulk load's alone


def issue_operator_token(key: bytes, expires_in: int = 24 * 3600, now: float | None = None) -> str:
    """A bulk-load operator token signed with the service's key, valid ``expires_in`` seconds (it names no
    RPPS and no INS: :class:`TokenVerifier` refuses it as an actor)."""
    issued = int(now if now is not None else time.time())
    return jwt.encode({"iss": _ISSUER, "sub": OPERATOR_SUBJECT, "iat": issued, "exp": issued + expires_in},
                      key, algorithm=_ALGORITHM)


def operator_claims(key: bytes, token: str) -> dict:
    """The verified claims of an operator token (issuer, expiry, signature); raises ``jwt.InvalidTokenError``."""
    return jwt.decode(token, key, algorithms=[_ALGORITHM], issuer=_ISSUER, options={"require": ["exp", "iat", "sub"]})


class TokenVerifier:
    """Turns an ``Authorization`` header into an :class:`Actor`, or raises :class:`Unauthenticated`."""

    def __init__(self, key: bytes, cache_size: int = 10_000):
        self._key = key
        self._cache: OrderedDict[str, tuple[Actor, float]] = OrderedDict()
        self._cache_size = cache_size

    def actor(self, authorization: str | None) -> Actor:
        if not authorization:
            raise Unauthenticated("no bearer token: send Authorization: Bearer <token>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        cached = self._cache.get(token)
        if cached is None:
            cached = self._verify(token)
            self._remember(token, cached)
        actor, expires = cached
        if expires <= time.time():
            raise Unauthenticated("the token has expired")
        return actor

    def _verify(self, token: str) -> tuple[Actor, float]:
        try:
            # expiry is checked by the caller on every use, cached or not
            claims = jwt.decode(token, self._key, algorithms=[_ALGORITHM], issuer=_ISSUER,
                                options={"require": ["exp", "iat", "sub"], "verify_exp": False})
        except jwt.InvalidTokenError as error:
            raise Unauthenticated(f"invalid token: {error}") from None
        actor = Actor(rpps=claims.get("rpps"), sector=claims.get("sector"), finess=claims.get("finess"),
                      ins=claims.get("ins"))
        problem = check_actor(actor)
        if problem:
            raise Unauthenticated(f"invalid token: {problem}")
        exp = claims["exp"]
        if not isinstance(exp, (int, float)):
            raise Unauthenticated("invalid token: exp is not a number")
        return actor, float(exp)

    def _remember(self, token: str, entry: tuple[Actor, float]) -> None:
        self._cache[token] = entry
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

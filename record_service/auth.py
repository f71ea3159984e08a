"""Who is calling: signed bearer tokens (HS256 JWT via PyJWT) for a professional or a patient.

A professional token carries the RPPS, the sector and optionally the facility's FINESS; a patient
token carries the INS. ``segur token`` issues them and ``segur serve`` checks them with the same key
file. Verified tokens are cached (by their exact text) so a busy client does not pay for the HMAC on
every request; the expiry is still checked on every use.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt

from record_service.blobs import fsync_directory
from record_service.codes import SECTORS
from record_service.outcomes import ServiceError, unauthenticated
from segur.errors import InputError
from segur.identifiers import is_valid_finess, is_valid_ins, is_valid_rpps

DEFAULT_KEY_FILE = Path(".segur") / "signing.key"  # git-ignored; shared by `serve` and `token`
_ALGORITHM = "HS256"
_ISSUER = "segur-record-service"
_MIN_KEY_CHARACTERS = 32


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


class KeyFileError(InputError):
    """A signing key file that cannot be used as it is; the message names the file and the fix."""


def load_or_create_key(path: str | Path, create_parents: bool = True,
                       announce: Callable[[str], None] | None = None) -> bytes:
    """The signing key in ``path`` (at least 32 characters of text), created on first use.

    A file that does not exist is created atomically with 256 random bits in hex, mode 0600: written to a
    temporary file beside it, then linked to its name, so that processes starting together (several
    ``segur serve`` / ``segur token``) all read the same complete key, never an empty one. Its directory
    is made when ``create_parents`` (the default location), else it must exist.

    Raises :class:`KeyFileError` (exit 2 on the command line) when the file exists but is not a regular
    file, cannot be read, is readable or writable by group or others, is empty, too short or not text,
    or when its directory is missing; an existing key is never replaced. ``announce`` is told when a new key
    was made (a named key that did not exist is made, not refused: harnesses name fresh paths, but never
    silently: the command line says so on stderr).
    """
    path = Path(path)
    try:
        return _read_key(path)
    except FileNotFoundError:
        if _create_key(path, create_parents) and announce is not None:
            announce(f"signing key {path} did not exist: made a new one (mode 0600); tokens signed with any "
                     "other key are refused")
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    """The key in ``path``; FileNotFoundError when there is no such file."""
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise KeyFileError(f"signing key {path} is not a regular file")
            if info.st_mode & 0o077:
                raise KeyFileError(f"signing key {path} is open to group or others (mode {info.st_mode & 0o777:03o}): "
                                   f"run `chmod 600 {path}` (and make a new key if others may have read it)")
            raw = f.read(4096)
    except FileNotFoundError:
        raise
    except (IsADirectoryError, NotADirectoryError):
        raise KeyFileError(f"signing key {path} is not a regular file") from None
    except OSError as error:
        raise KeyFileError(f"cannot read signing key {path}: {error.strerror}") from None
    try:
        key = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise KeyFileError(f"signing key {path} is not text: remove it to have a new one made, or give another "
                           "--key") from None
    if len(key) < _MIN_KEY_CHARACTERS:
        state = "empty" if not key else f"too short ({len(key)} characters, at least {_MIN_KEY_CHARACTERS})"
        raise KeyFileError(f"signing key {path} is {state}: remove it to have a new one made, or give another --key")
    return key.encode()


def _create_key(path: Path, create_parents: bool) -> bool:
    """Make the key file at ``path`` unless another process made it first (then theirs is kept); whether this
    call made it."""
    if create_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise KeyFileError(f"cannot make signing key {path}: directory {path.parent} does not exist")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # O_EXCL, mode 0600
    except OSError as error:
        raise KeyFileError(f"cannot make signing key {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)
            made = True
        except FileExistsError:  # another process linked its key first: use theirs
            made = False
        fsync_directory(path.parent)
    except OSError as error:  # a full disk, a file system without hard links
        raise KeyFileError(f"cannot make signing key {path}: {error.strerror}") from None
    finally:
        os.unlink(temporary)
    return made


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


__all__ = ["Actor", "DEFAULT_KEY_FILE", "KeyFileError", "ServiceError", "TokenVerifier", "issue_token",
           "load_or_create_key"]

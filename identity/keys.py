"""The signing key file shared by ``segur serve`` and the commands that mint credentials (``segur token``,
``segur vihf``), and the careful file handling every private file of identity gets.

A key file is made on first use, atomically (written beside its name, then linked to it, so that processes
starting together all read the same complete key), mode 0600; it is refused, with a message that names the
file and the fix, when it is open to group or others, unreadable, empty, too short or not text; an existing
key is never replaced.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from segur.files import fsync_directory
from segur.errors import InputError

DEFAULT_KEY_FILE = Path(".segur") / "signing.key"  # git-ignored; shared by `serve`, `token` and `vihf`
_MIN_KEY_CHARACTERS = 32


class KeyFileError(InputError):
    """A key file that cannot be used as it is; the message names the file and the fix."""


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
        if create_exclusive(path, (secrets.token_hex(32) + "\n").encode(), create_parents, "signing key") \
                and announce is not None:
            announce(f"signing key {path} did not exist: made a new one (mode 0600); tokens signed with any "
                     "other key are refused")
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    """The key in ``path``; FileNotFoundError when there is no such file."""
    raw = read_private(path, "signing key", 4096)
    try:
        key = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise KeyFileError(f"signing key {path} is not text: remove it to have a new one made, or give another "
                           "--key") from None
    if len(key) < _MIN_KEY_CHARACTERS:
        state = "empty" if not key else f"too short ({len(key)} characters, at least {_MIN_KEY_CHARACTERS})"
        raise KeyFileError(f"signing key {path} is {state}: remove it to have a new one made, or give another --key")
    return key.encode()


def read_private(path: Path, what: str, limit: int, private: bool = True) -> bytes:
    """Up to ``limit`` bytes of the file ``path`` (``what`` names it in errors); FileNotFoundError when there
    is no such file. Refused (:class:`KeyFileError`) when it is not a regular file, cannot be read, or, when
    ``private``, is readable or writable by group or others."""
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise KeyFileError(f"{what} {path} is not a regular file")
            if private and info.st_mode & 0o077:
                raise KeyFileError(f"{what} {path} is open to group or others (mode {info.st_mode & 0o777:03o}): "
                                   f"run `chmod 600 {path}` (and make a new key if others may have read it)")
            return f.read(limit)
    except FileNotFoundError:
        raise
    except (IsADirectoryError, NotADirectoryError):
        raise KeyFileError(f"{what} {path} is not a regular file") from None
    except OSError as error:
        raise KeyFileError(f"cannot read {what} {path}: {error.strerror}") from None


def create_exclusive(path: Path, data: bytes, create_parents: bool, what: str) -> bool:
    """Make the file ``path`` holding ``data``, mode 0600, unless another process made it first (then theirs is
    kept); whether this call made it. Written and fsynced under a temporary name beside it, then linked to its
    name (never a partial file under the name), and the directory fsynced."""
    if create_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise KeyFileError(f"cannot make {what} {path}: directory {path.parent} does not exist")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # O_EXCL, mode 0600
    except OSError as error:
        raise KeyFileError(f"cannot make {what} {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)
            made = True
        except FileExistsError:  # another process linked its file first: use theirs
            made = False
        fsync_directory(path.parent)
    except OSError as error:  # a full disk, a file system without hard links
        raise KeyFileError(f"cannot make {what} {path}: {error.strerror}") from None
    finally:
        os.unlink(temporary)
    return made

"""Result directories written all or nothing: a hidden sibling first, renamed into place at the end."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from segur.errors import InputError


@contextmanager
def staged_directory(directory: Path) -> Iterator[Path]:
    """Yield a staging folder that becomes ``directory`` if the block succeeds, and vanishes if not.

    ``directory`` must not exist or be empty: a run never mixes its files with another's.
    """
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InputError(f"{directory} already exists and is not empty: choose another --out or remove it")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create {directory.parent}: {error.strerror}") from None
    staging = directory.parent / f".{directory.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if directory.exists():
            directory.rmdir()
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

"""The page cache of a set of files: evict them (to measure a corpus in the cold regime without writing one
larger than RAM) and sample how much of them is resident.

    from segur import page_cache
    files, size, seconds = page_cache.evict(data_dir / "blobs")   # a directory (recursively) or paths
    page_cache.residency(paths)                                   # fraction of a sample's pages resident

Eviction is ``posix_fadvise(POSIX_FADV_DONTNEED)`` on each file, after a ``sync()`` (a dirty page is not
dropped) and done twice (a page still in a CPU's LRU batch survives the first call). It drops clean pages of
regular files only; it needs no privilege (unlike ``echo 1 > /proc/sys/vm/drop_caches``) and leaves every
other file's pages (the database's, the file system's metadata) where they are. Residency is measured with
``mincore(2)`` on a read-only shared mapping of each sampled file, which reads nothing from the disk.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import random
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["evict", "residency", "residency_sample", "resident_pages", "files_under"]

_PAGE = os.sysconf("SC_PAGE_SIZE")
_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long)
        libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
        _LIBC = libc
    return _LIBC


def files_under(paths_or_dir: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """The regular files named: a directory's, recursively (hidden ones too), one file, or an iterable of paths."""
    if isinstance(paths_or_dir, (str, os.PathLike)):
        root = os.fspath(paths_or_dir)
        if not os.path.isdir(root):
            return [root]
        found = []
        for directory, _, names in os.walk(root):
            found.extend(os.path.join(directory, name) for name in names)
        return found
    return [os.fspath(p) for p in paths_or_dir]


def evict(paths_or_dir, passes: int = 2, sync: bool = True) -> tuple[int, int, float]:
    """Drop the files' pages from the page cache: ``(files, bytes, seconds)`` (files evicted, their total size,
    the time it took, the ``sync()`` included). A file that vanished meanwhile is skipped."""
    started = time.perf_counter()
    paths = files_under(paths_or_dir)
    if sync:
        os.sync()
    files = size = 0
    for done in range(passes):
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                if done == 0:
                    files += 1
                    size += os.fstat(fd).st_size
            finally:
                os.close(fd)
    return files, size, time.perf_counter() - started


def resident_pages(path: str | os.PathLike) -> tuple[int, int]:
    """(pages in the page cache, pages) of one file, by mincore(2) on a read-only mapping (which reads nothing)."""
    libc = _libc()
    fd = os.open(os.fspath(path), os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if not size:
            return 0, 0
        pages = (size + _PAGE - 1) // _PAGE
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address is None or address == ctypes.c_void_p(-1).value:
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            vector = (ctypes.c_ubyte * pages)()
            if libc.mincore(ctypes.c_void_p(address), size, vector) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            return sum(v & 1 for v in vector), pages
        finally:
            libc.munmap(ctypes.c_void_p(address), size)
    finally:
        os.close(fd)


def residency_sample(paths_or_dir, sample: int = 500, seed: int = 0) -> dict:
    """Of a random sample of the files (all of them when fewer): how many have no page resident, how many all
    of them, and the fraction of their pages resident."""
    paths = files_under(paths_or_dir)
    chosen = random.Random(seed).sample(paths, min(sample, len(paths)))
    empty = full = resident = pages = 0
    for path in chosen:
        try:
            r, p = resident_pages(path)
        except FileNotFoundError:
            continue
        empty += r == 0
        full += r == p
        resident += r
        pages += p
    return {"files": len(chosen), "with_no_page_resident": empty, "fully_resident": full,
            "resident_pages_fraction": round(resident / pages, 4) if pages else None}


def residency(paths, sample: int = 500, seed: int = 0) -> float:
    """The fraction of the pages of a random sample of ``sample`` files (a directory's, or the paths given)
    that are in the page cache: 0.0 after ``evict``, about 1.0 after every file was read (RAM allowing)."""
    fraction = residency_sample(paths, sample, seed)["resident_pages_fraction"]
    return 0.0 if fraction is None else fraction

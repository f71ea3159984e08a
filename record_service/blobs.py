"""Document bytes, stored once per content in files named by their SHA-256, and who holds them.

A file is written under a temporary name in one directory (``<blobs>/.tmp``), fsynced, renamed into place
and its directory fsynced, so a file under its final name is always complete: a crash leaves at most a
temporary file in ``.tmp`` (removed whole at the next start), never a truncated document. Identical
documents share one file (deduplication for free).

Reads do not block the event loop on a disk: :meth:`BlobStore.get_cached` answers a document only when its
bytes are all in the page cache (``cachestat(2)`` says so without reading, then ``preadv(..., RWF_NOWAIT)``),
and the caller reads the others on a thread (:meth:`BlobStore.get`).

Sharing files makes removing one a race: a deposit of the same bytes, in this worker process or another,
may be about to commit a document that names it. :class:`ContentHolds` settles it: a deposit *holds*
each content it writes from before the file is looked for until its metadata transaction has answered,
and a file is removed only by whoever *claims* its content, which succeeds only when no deposit in any
process holds it (and blocks new holders until the claim ends). The claimant then asks the database
whether a live document names the content, and removes the file only if none does (see
``storage.Store.discard``).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from segur.files import fsync_directory

_HOLDS_FILE = ".holds"
TEMPORARY_DIR = ".tmp"  # every file being written, under ".<sha256>.<random>.tmp"
_NOWAIT = getattr(os, "RWF_NOWAIT", None)  # Linux >= 4.14, Python >= 3.7
_PAGE = os.sysconf("SC_PAGE_SIZE")
_CACHESTAT = 451  # cachestat(2), Linux >= 6.5: the same number on every architecture (the unified table)


def _cachestat():
    """``cached_pages(fd) -> int | None``: how many of a file's pages are in the page cache, by cachestat(2)
    (one system call that reads nothing and starts no read-ahead), or None where the kernel lacks it."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None

    class _Range(ctypes.Structure):
        _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]

    class _Stat(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint64) for name in ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted",
                                                          "nr_recently_evicted")]

    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    whole = _Range(0, 0)  # len 0: to the end of the file
    whole_ref = ctypes.byref(whole)
    local = threading.local()

    def cached_pages(fd: int) -> int | None:
        stat = getattr(local, "stat", None)
        if stat is None:
            stat = local.stat = _Stat()
        if syscall(_CACHESTAT, ctypes.c_int(fd), whole_ref, ctypes.byref(stat), ctypes.c_uint(0)) != 0:
            return None
        return stat.nr_cache

    try:  # probe it once: ENOSYS (an older kernel), or blocked by a seccomp filter
        fd = os.open("/", os.O_RDONLY)
        try:
            probe = cached_pages(fd)
        finally:
            os.close(fd)
    except OSError:
        return None
    return cached_pages if probe is not None else None
_REUSED_BUFFER = 1 << 20
_RETRY_DEADLOCK_S = 0.005


def _offset(sha256: str) -> int:
    """The byte of the holds file that stands for a content: its first 60 bits. Two contents sharing one
    only make removal more cautious (a claim fails while either is held), never less."""
    return int(sha256[:15], 16)


class ContentHolds:
    """Contents (SHA-256 in hex) held by deposits in flight, across the processes sharing a data directory.

    Across processes, a POSIX record lock (``fcntl.lockf``) on one byte of ``<blobs>/.holds`` per content:
    shared while held, exclusive while claimed for removal; the kernel drops a dead process's locks. Such
    locks belong to the process, not to a thread or a descriptor, so within a process a count per content
    (under a condition variable) decides when the process takes and drops its shared lock, and a claim
    fails while any of its own deposits holds the content. The process keeps a single descriptor of the
    file, opened on first use (in the worker, after any fork): closing any descriptor of it would drop all
    of the process's locks. Linux may report a false deadlock (EDEADLK) between processes, since it sees
    locks per process: the wait is then retried.

    :meth:`hold` blocks while another process has the content claimed (the claimant's check, one commit);
    :meth:`claim` never blocks. Errors: ``OSError`` from the holds file (open, lock).
    """

    def __init__(self, path: Path):
        self._path = path
        self._fd = -1
        self._pid = -1
        self._changed = threading.Condition()
        self._held: dict[str, int] = {}  # content -> deposits of this process holding it
        self._busy: set[str] = set()  # contents whose process-wide lock is being taken, or which are claimed

    def _descriptor(self) -> int:
        if self._pid != os.getpid():  # first use, or a forked child: locks are not inherited
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        return self._fd

    def _lock(self, sha256: str, how: int) -> None:
        while True:
            try:
                fcntl.lockf(self._descriptor(), how, 1, _offset(sha256))
                return
            except OSError as error:
                if error.errno != errno.EDEADLK:
                    raise
                time.sleep(_RETRY_DEADLOCK_S)

    def _drop(self, sha256: str) -> bool:
        """One holder fewer (the condition held); whether it was this process's last."""
        count = self._held[sha256] - 1
        if count:
            self._held[sha256] = count
            return False
        del self._held[sha256]
        return True

    def hold(self, sha256: str) -> None:
        """Hold a content: until :meth:`release`, nobody removes its file."""
        with self._changed:
            while sha256 in self._busy:
                self._changed.wait()
            count = self._held.get(sha256, 0)
            self._held[sha256] = count + 1
            if count:
                return
            self._busy.add(sha256)
        try:
            self._lock(sha256, fcntl.LOCK_SH)  # outside the condition: may wait for another process's claim
        except BaseException:
            with self._changed:
                self._drop(sha256)
                self._busy.discard(sha256)
                self._changed.notify_all()
            raise
        with self._changed:
            self._busy.discard(sha256)
            self._changed.notify_all()

    def release(self, sha256: str) -> None:
        """Stop holding a content (its deposit has answered)."""
        with self._changed:
            if self._drop(sha256):
                self._lock(sha256, fcntl.LOCK_UN)

    def claim(self, sha256: str, holding: bool = False) -> bool:
        """Claim a content for removal; False when a deposit (of any process) holds it, or another claims it.

        ``holding``: the caller holds it (a refused deposit) and stops holding it, whatever the answer. A
        claim that fails leaves the decision to the holders: the last of them to be refused claims it.
        """
        with self._changed:
            if holding and not self._drop(sha256):
                return False
            if not holding and (sha256 in self._held or sha256 in self._busy):
                return False
            try:  # turns this process's shared lock, if any, into the exclusive one
                fcntl.lockf(self._descriptor(), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _offset(sha256))
            except OSError:  # held elsewhere (EACCES, EAGAIN), or no lock to be had: the file is kept
                if holding:  # a failed request leaves the shared lock in place
                    self._lock(sha256, fcntl.LOCK_UN)
                return False
            self._busy.add(sha256)
            return True

    def end_claim(self, sha256: str) -> None:
        """The claimant is done (file removed or kept): holders may come again."""
        with self._changed:
            try:
                self._lock(sha256, fcntl.LOCK_UN)
            finally:
                self._busy.discard(sha256)
                self._changed.notify_all()


_CACHED_PAGES = _cachestat()


class BlobStore:
    """Content-addressed files under ``root/<2 hex>/<sha256>``, and the holds on them (``holds``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        self.temporary = self.root / TEMPORARY_DIR
        self.temporary.mkdir(exist_ok=True)
        self.holds = ContentHolds(self.root / _HOLDS_FILE)
        # whether a read may ask for page-cached bytes only; turned off for good by a file system that
        # refuses the flag (EOPNOTSUPP): every read then goes to a thread
        self.nowait = _NOWAIT is not None
        # cachestat first (a miss then costs no read-ahead started from the caller's thread, which a RWF_NOWAIT
        # read does, and which can wait for a free slot in the disk's queue); None where the kernel lacks it
        self.cached_pages = _CACHED_PAGES if self.nowait else None
        self._buffers = threading.local()  # get_cached's read buffer, per thread (the event loop's, in the service)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store ``data`` durably (fsynced before returning) and return its SHA-256 in hex.

        Errors: ``OSError`` (e.g. ENOSPC), with no temporary file left behind. Without a hold (see
        :meth:`hold`) the file may be removed by a concurrent clean-up: for tools and benches only.
        """
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        final = self.path(sha256)
        if final.exists():  # complete by construction: only ever renamed into place after fsync
            return sha256
        directory = final.parent
        directory.mkdir(exist_ok=True)
        temporary = self.temporary / f".{sha256}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, final)  # same file system: an atomic rename across directories
        except BaseException:  # a full disk, an I/O error: no half-written file stays
            temporary.unlink(missing_ok=True)
            raise
        fsync_directory(directory)
        return sha256

    def hold(self, data: bytes, sha256: str) -> None:
        """Hold ``sha256`` (see :class:`ContentHolds`) and make sure its file is stored, durably.

        On return the caller holds it and must :meth:`ContentHolds.release` it (its deposit accepted) or
        claim it for removal (refused). Errors: ``OSError`` (e.g. ENOSPC), with the hold already released.
        """
        self.holds.hold(sha256)
        try:
            self.put(data, sha256)
        except BaseException:
            self.holds.release(sha256)
            raise

    def get(self, sha256: str, size: int | None = None) -> bytes:
        """The bytes of a stored document; ``size``, when known, lets one read() fetch them all.

        Plain descriptor reads rather than a buffered file object: on the retrieve path this halves the
        cost of reading 100 KB from the page cache. Reads go on to end of file whatever ``size`` says.
        """
        fd = os.open(f"{self._root}/{sha256[:2]}/{sha256}", os.O_RDONLY)
        try:
            wanted = (size if size is not None else 1 << 20) + 1
            first = os.read(fd, wanted)
            if len(first) < wanted:  # a regular file's short read is its end: no second call to see it
                return first
            chunks = [first]
            while chunks[-1]:
                chunks.append(os.read(fd, 1 << 20))
        finally:
            os.close(fd)
        return b"".join(chunks)

    def get_cached(self, sha256: str, size: int) -> bytes | None:
        """The bytes of a stored document if they are all in the page cache, else None (then read them with
        :meth:`get`, on a thread): never waits for the disk, so it may run on the event loop.

        ``cachestat(2)`` first counts the file's cached pages (reading nothing): fewer than its size needs is
        None at once, all of them is a plain ``pread``. Without cachestat (kernels before 6.5),
        ``preadv(..., RWF_NOWAIT)`` copies what the page cache holds and answers EAGAIN rather than wait for a
        disk read, but a miss starts the read-ahead from the caller's thread, which may wait there for a slot
        in a busy disk's queue; a partly cached file (a short read) is None too. The open itself may look up a directory
        entry and an inode that are not cached (a few metadata blocks): the price of a page-cache hit
        without a thread hop. Errors: ``FileNotFoundError`` (no file), ``OSError``.
        """
        if not self.nowait:
            return None
        # one byte more than the database says: a longer file is not "all"; a buffer of up to 1 MiB is reused
        # (a fresh one costs its zeroing and page faults), a larger one is not kept
        buffer = getattr(self._buffers, "buffer", None)
        if size + 1 > _REUSED_BUFFER:
            buffer = bytearray(size + 1)
        elif buffer is None:
            buffer = self._buffers.buffer = bytearray(_REUSED_BUFFER)
        fd = os.open(f"{self._root}/{sha256[:2]}/{sha256}", os.O_RDONLY)
        try:
            if self.cached_pages is not None:
                if self.cached_pages(fd) != (size + _PAGE - 1) // _PAGE:
                    return None  # not all cached (or not that size): read on a thread, no I/O started here
                # all cached: one copy, from the page cache straight into the answer's bytes (a preadv into the
                # reused buffer, then bytes() of it, cost 12 µs for 110 KB against 5 µs; a page evicted in the
                # microseconds between the two calls would be read here: the price of the copy saved)
                data = os.pread(fd, size + 1, 0)
                return data if len(data) == size else None
            try:
                read = os.preadv(fd, [memoryview(buffer)[:size + 1]], 0, _NOWAIT)
            except BlockingIOError:
                return None
            except OSError as error:
                if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                self.nowait = False  # this file system cannot tell: every read goes to a thread
                return None
        finally:
            os.close(fd)
        if read != size:  # partly cached, or not the size the database says: the thread's read decides
            return None
        return bytes(memoryview(buffer)[:read])

    def size(self, sha256: str) -> int | None:
        """The size of a stored document's file, or None when there is none."""
        try:
            return os.stat(self.path(sha256)).st_size
        except FileNotFoundError:
            return None

    def batches(self, size: int) -> Iterator[list[str]]:
        """Every file name in the store (temporary ones included), ``size`` at a time."""
        batch: list[str] = []
        for directory in sorted(self.root.iterdir()):
            if not directory.is_dir() or directory.name.startswith("."):
                continue
            for entry in os.scandir(directory):
                batch.append(entry.name)
                if len(batch) >= size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def sample(self, budget: int, per_directory: int, rng) -> list[str]:
        """File names (temporary ones included) from the content directories, bounded whatever the store holds.

        Visits the ``<2 hex>`` directories in a random order and reads at most ``per_directory`` entries of
        each (``os.scandir`` stops there: one or two ``getdents`` calls, whatever the directory's size), until
        ``budget`` names are read. Costs at most 256 directory opens and ``budget`` entries; a store with
        fewer files than that (every directory under ``per_directory``) is listed whole. The entries read of
        one directory are the first in the file system's order (on ext4, by hash of the name), so a large
        store is sampled by directory at random, and within a directory by position.
        """
        directories = [d for d in os.listdir(self._root) if len(d) == 2 and not d.startswith(".")]
        rng.shuffle(directories)
        names: list[str] = []
        for directory in directories:
            if len(names) >= budget:
                break
            try:
                with os.scandir(f"{self._root}/{directory}") as entries:
                    for count, entry in enumerate(entries, 1):
                        names.append(entry.name)
                        if count >= per_directory or len(names) >= budget:
                            break
            except NotADirectoryError:
                continue
        return names

    def remove_all_temporary(self) -> int:
        """Remove every file in the temporary directory (writes that never completed); how many. Only while
        nothing is written (at start, before the workers): it holds only files being written, so it costs
        at most the writes that were in flight when the service last stopped."""
        removed = 0
        with os.scandir(self.temporary) as entries:
            for entry in entries:
                os.unlink(entry.path)
                removed += 1
        return removed

    def remove_temporary(self, names: list[str]) -> int:
        """Remove the temporary files among ``names`` found in the content directories (left there by
        versions that wrote them beside their final name); how many."""
        removed = 0
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):  # ".<sha256>.<random>.tmp"
                (self.root / name[1:3] / name).unlink(missing_ok=True)
                removed += 1
        return removed

    def remove(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def count(self) -> int:
        """How many documents are stored (temporary files excluded)."""
        return sum(1 for p in self.root.glob("??/*") if not p.name.startswith("."))

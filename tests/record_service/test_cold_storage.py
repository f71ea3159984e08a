"""The service for a cold repository: a document not in the page cache is read on a thread, never on the event
loop (record_service.blobs.BlobStore.get_cached, endpoints.Endpoints.stored_bytes), and the start-up check of
the data directory looks at a bounded number of files (storage.check_data_directory). Both back ends.

The app runs in this process (driven through ASGI), so the pool's read can be counted and slowed down.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import json
import mmap
import os
import random
import threading
import time
from pathlib import Path

import pytest

from conftest import BACKENDS
from record_documents import deposit_bundle, locations, make_ins, professional, search_path
from record_service import blobs as blobs_module
from record_service.app import create_app
from record_service.auth import issue_token, load_or_create_key
from record_service.blobs import BlobStore
from record_service.settings import Settings, default_sqlite_url
from record_service.storage import _SWEEP_FILES, check_data_directory, open_store, prepare

PAYLOAD = 150_000


def resident_pages(path: Path) -> int:
    """How many of a file's pages are in the page cache (mincore on a private, never written mapping of it)."""
    size = path.stat().st_size
    if not size:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vector = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mapping:
        start = ctypes.c_char.from_buffer(mapping)
        try:
            if libc.mincore(ctypes.addressof(start), size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            del start
    return sum(v & 1 for v in vector)


def evict(path: Path) -> None:
    """Drop a file's pages from the page cache (after an fsync, so none is dirty), checked with mincore."""
    for _ in range(50):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        if resident_pages(path) == 0:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} stays in the page cache")


def nowait_works(directory: Path) -> bool:
    """Whether this kernel and file system tell a cold file by RWF_NOWAIT (else every read goes to a thread)."""
    probe = directory / "probe"
    probe.write_bytes(os.urandom(65536))
    try:
        for _ in range(3):  # rarely, the read-ahead it starts is done before it looks again (a fast disk)
            evict(probe)
            fd = os.open(probe, os.O_RDONLY)
            try:
                os.preadv(fd, [bytearray(65536)], 0, os.RWF_NOWAIT)
            except BlockingIOError:
                return True
            except OSError:
                return False
            finally:
                os.close(fd)
        return False  # answered from a page cache that was just emptied: it cannot tell
    finally:
        probe.unlink()


# --- the blob store ----------------------------------------------------------------------------

def test_a_cached_file_is_read_without_waiting_and_an_evicted_one_is_not(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    data = os.urandom(PAYLOAD)
    sha = store.put(data)
    store.get(sha, len(data))  # now cached
    assert store.get_cached(sha, len(data)) == data
    evict(store.path(sha))
    if nowait_works(tmp_path):
        assert store.get_cached(sha, len(data)) is None, "a cold file was read on the caller's thread"
    assert store.get(sha, len(data)) == data  # the thread's read
    assert store.get_cached(sha, len(data)) == data  # cached again
    assert store.get_cached(sha, len(data) - 1) is None  # not the size the database says: the thread's read decides
    with pytest.raises(FileNotFoundError):
        store.get_cached("ab" * 32, 10)


def test_a_partly_cached_file_is_left_to_the_thread(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    data = os.urandom(1_000_000)
    sha = store.put(data)
    evict(store.path(sha))
    if not nowait_works(tmp_path):
        pytest.skip("RWF_NOWAIT cannot tell a cold file on this file system")
    with open(store.path(sha), "rb") as f:
        f.read(4096)  # the first pages (and their read-ahead), not the whole file
    assert store.get_cached(sha, len(data)) is None


def test_a_miss_starts_no_read_from_the_callers_thread(tmp_path):
    """With cachestat(2) (Linux >= 6.5), a cold file is told without a RWF_NOWAIT read, which would start the
    read-ahead on the event loop (and could wait there for a slot in a busy disk's queue): after the miss,
    the file still has no page in the page cache."""
    store = BlobStore(tmp_path / "blobs")
    if store.cached_pages is None:
        pytest.skip("no cachestat(2) on this kernel: a RWF_NOWAIT read tells a cold file, starting its read-ahead")
    data = os.urandom(PAYLOAD)
    sha = store.put(data)
    store.get(sha, len(data))
    fd = os.open(store.path(sha), os.O_RDONLY)
    try:
        assert store.cached_pages(fd) == (len(data) + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    finally:
        os.close(fd)
    evict(store.path(sha))
    for _ in range(3):
        assert store.get_cached(sha, len(data)) is None
    assert resident_pages(store.path(sha)) == 0, "the miss started a read of the file"
    assert store.get(sha, len(data)) == data
    assert store.get_cached(sha, len(data)) == data


def test_writes_go_through_the_temporary_directory(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    seen: list[str] = []
    real_replace = os.replace

    def replace(source, target):
        seen.append(str(source))
        return real_replace(source, target)

    os.replace = replace
    try:
        sha = store.put(b"some bytes")
    finally:
        os.replace = real_replace
    assert seen and all(Path(s).parent == store.temporary for s in seen)
    assert store.path(sha).read_bytes() == b"some bytes" and not list(store.temporary.iterdir())


# --- the app, in this process --------------------------------------------------------------------

class InProcess:
    """The record service's ASGI app run on this thread's event loop: lifespan, then requests."""

    def __init__(self, settings: Settings):
        self.settings = settings
        prepare(settings)
        self.app = create_app(settings)
        self.key = load_or_create_key(settings.key_file)
        self._lifespan: asyncio.Task | None = None

    async def __aenter__(self) -> "InProcess":
        self._in, self._out = asyncio.Queue(), asyncio.Queue()
        self._lifespan = asyncio.ensure_future(self.app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                                        self._in.get, self._out.put))
        await self._in.put({"type": "lifespan.startup"})
        message = await asyncio.wait_for(self._out.get(), 30)
        assert message["type"] == "lifespan.startup.complete", message
        return self

    async def __aexit__(self, *exc) -> None:
        await self._in.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self._out.get(), 60)
        await asyncio.wait_for(self._lifespan, 60)

    async def call(self, method: str, path: str, token: str, body: bytes = b"") -> tuple[int, bytes]:
        path, _, query = path.partition("?")
        headers = [(b"authorization", f"Bearer {token}".encode()), (b"host", b"testserver")]
        if body:
            headers += [(b"content-type", b"application/fhir+json"), (b"content-length", str(len(body)).encode())]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
                 "root_path": "", "headers": headers, "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
                 "state": {}}
        delivered = False
        answer: dict = {"status": None, "body": []}

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"].append(message.get("body", b""))

        await self.app(scope, receive, send)
        return answer["status"], b"".join(answer["body"])


@pytest.fixture(params=BACKENDS)
def settings(request, tmp_path) -> Settings:
    data_dir = tmp_path / "data"
    if request.param == "postgresql":
        db_url = request.getfixturevalue("postgres").create_database(f"cold_{time.time_ns()}")
    else:
        db_url = default_sqlite_url(data_dir)
    return Settings(db_url=db_url, data_dir=str(data_dir), key_file=str(tmp_path / "signing.key"))


class PoolReads:
    """``BlobStore.get`` (the thread's read) counted, and slowed down when asked (a slow disk)."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []  # the thread each read ran on
        self.delay = 0.0
        self.started = threading.Event()
        real = BlobStore.get

        def get(store, sha256, size=None):
            self.calls.append(threading.current_thread().name)
            self.started.set()
            if self.delay:
                time.sleep(self.delay)
            return real(store, sha256, size)

        monkeypatch.setattr(BlobStore, "get", get)


async def _deposit(service: InProcess, token: str, ins: str, rpps: str, data: bytes) -> str:
    status, body = await service.call("POST", "/", token, json.dumps(deposit_bundle(ins, rpps, data)).encode())
    assert status == 201, body[:300]
    return locations(json.loads(body), "DocumentReference")[0]


def test_a_cold_retrieve_is_read_on_a_thread_and_a_cached_one_on_the_loop(settings, monkeypatch, tmp_path):
    pool = PoolReads(monkeypatch)
    rng = random.Random(1)
    author, ins = professional(rng), make_ins(rng)
    data = os.urandom(PAYLOAD)
    blob = Path(settings.blob_dir) / hashlib.sha256(data).hexdigest()[:2] / hashlib.sha256(data).hexdigest()
    cold = nowait_works(tmp_path)

    async def scenario() -> None:
        async with InProcess(settings) as service:
            token = issue_token(service.key, author, 3600)
            document_id = await _deposit(service, token, ins, author.rpps, data)
            for _ in range(3):  # a read without waiting may start read-ahead and, on a fast disk, rarely find it done
                evict(blob)
                status, body = await service.call("GET", f"/Binary/{document_id}", token)
                assert (status, body) == (200, data)
                if pool.calls:
                    break
            assert pool.calls and all(name.startswith("blob-reader") for name in pool.calls), pool.calls
            if cold:  # now cached (the thread read it): served from the page cache, no thread
                pool.calls.clear()
                status, body = await service.call("GET", f"/Binary/{document_id}", token)
                assert (status, body) == (200, data) and pool.calls == []

    asyncio.run(scenario())


def test_a_slow_disk_read_does_not_stall_the_workers_other_requests(settings, monkeypatch, tmp_path):
    """While a retrieve waits 2 s for its file on a thread, a find and a cached retrieve of the same worker
    answer at once."""
    pool = PoolReads(monkeypatch)
    rng = random.Random(2)
    author, ins = professional(rng), make_ins(rng)
    slow, fast = os.urandom(PAYLOAD), os.urandom(PAYLOAD)

    async def scenario() -> None:
        async with InProcess(settings) as service:
            token = issue_token(service.key, author, 3600)
            slow_id = await _deposit(service, token, ins, author.rpps, slow)
            fast_id = await _deposit(service, token, ins, author.rpps, fast)
            assert (await service.call("GET", f"/Binary/{fast_id}", token))[1] == fast  # cached now
            sha = hashlib.sha256(slow).hexdigest()
            evict(Path(settings.blob_dir) / sha[:2] / sha)
            if not nowait_works(tmp_path):
                pytest.skip("RWF_NOWAIT cannot tell a cold file on this file system: every read is on a thread")
            pool.delay = 2.0
            for _ in range(3):  # see the test above: rarely, the read without waiting finds the read-ahead done
                evict(Path(settings.blob_dir) / sha[:2] / sha)
                waiting = asyncio.ensure_future(service.call("GET", f"/Binary/{slow_id}", token))
                while not pool.started.is_set() and not waiting.done():
                    await asyncio.sleep(0.01)
                if pool.started.is_set():
                    break
                assert (await waiting) == (200, slow)
            assert pool.started.is_set()
            pool.calls.clear()
            started = time.perf_counter()
            status, body = await service.call("GET", search_path(ins), token)
            assert status == 200 and len(json.loads(body).get("entry", [])) == 2
            status, body = await service.call("GET", f"/Binary/{fast_id}", token)
            assert (status, body) == (200, fast) and pool.calls == []  # served from the cache, on the loop
            answered = time.perf_counter() - started
            assert not waiting.done(), "the slow read did not take its time"
            assert answered < 1.0, f"the worker's other requests waited {answered:.2f} s behind a disk read"
            assert (await waiting) == (200, slow)

    asyncio.run(scenario())


# --- the start-up check ---------------------------------------------------------------------------

class CountingScandir:
    """``os.scandir`` whose entries handed out are counted (what the check reads of the directory)."""

    def __init__(self, monkeypatch):
        self.entries = 0
        self.directories = 0
        real = os.scandir
        counter = self

        class Counted:
            def __init__(self, path):
                self._inner = real(path)
                counter.directories += 1

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._inner.close()

            def __iter__(self):
                return self

            def __next__(self):
                entry = next(self._inner)
                counter.entries += 1
                return entry

            def close(self):
                self._inner.close()

        monkeypatch.setattr(os, "scandir", Counted)


def test_the_start_up_check_reads_a_bounded_sample_of_files(tmp_path, monkeypatch):
    """A store of many files (none named by a document: orphans, as after crashes): the check reads at most
    _SWEEP_FILES names, removes the orphans among them, and every temporary file (one directory, whole)."""
    data_dir = tmp_path / "data"
    settings = Settings(db_url=default_sqlite_url(data_dir), data_dir=str(data_dir), key_file=str(tmp_path / "k"))
    prepare(settings)  # an empty store: both sides get their identity
    blobs = BlobStore(settings.blob_dir)
    total = 0
    for shard in range(256):
        directory = blobs.root / f"{shard:02x}"
        directory.mkdir(exist_ok=True)
        for i in range(40):
            name = hashlib.sha256(f"{shard}-{i}".encode()).hexdigest()
            (directory / (f"{shard:02x}" + name[2:])).touch()
            total += 1
    for i in range(30):  # writes that never completed
        (blobs.temporary / f".{'cd' * 32}.{i:08x}.tmp").touch()
    assert total > 2 * _SWEEP_FILES
    counting = CountingScandir(monkeypatch)
    check = check_data_directory(open_store(settings), random.Random(3))
    monkeypatch.undo()
    assert check.temporary_files_removed == 30 and not list(blobs.temporary.iterdir())
    assert 0 < check.files_swept <= _SWEEP_FILES
    assert check.orphan_files_removed == check.files_swept  # every one drawn was an orphan
    # what it read of the directories: the sample, the temporary directory, and one entry per content
    # directory to tell whether the store holds files
    assert counting.entries <= _SWEEP_FILES + 30 + 256 + 256, counting.entries
    assert counting.directories <= 2 * 256 + 1
    left = sum(1 for d in blobs.root.iterdir() if d.is_dir() and not d.name.startswith(".") for _ in os.listdir(d))
    assert left == total - check.orphan_files_removed  # sampled, not all: the rest waits for later starts
    check = check_data_directory(open_store(settings), random.Random(4))  # another start draws others
    assert 0 < check.orphan_files_removed <= _SWEEP_FILES


def test_a_small_store_is_swept_whole(tmp_path):
    data_dir = tmp_path / "data"
    settings = Settings(db_url=default_sqlite_url(data_dir), data_dir=str(data_dir), key_file=str(tmp_path / "k"))
    prepare(settings)
    blobs = BlobStore(settings.blob_dir)
    names = []
    for i in range(300):
        name = hashlib.sha256(str(i).encode()).hexdigest()
        (blobs.root / name[:2]).mkdir(exist_ok=True)
        (blobs.root / name[:2] / name).touch()
        names.append(name)
    legacy = blobs.root / names[0][:2] / f".{names[0]}.0badc0de.tmp"  # beside its final name, as before
    legacy.touch()
    check = check_data_directory(open_store(settings))
    assert check.orphan_files_removed == 300 and check.temporary_files_removed == 1
    assert not any(blobs.path(n).exists() for n in names) and not legacy.exists()

"""What the app needs from a back end: reads on the event loop, writes through the group committer.

Each worker has a group committer for the record's writes (deposits, patient controls), and a journal
writer for the access history's rows (see ``audit_journal``: an append to the worker's own journal
file, indexed into ``audit_events`` later, the same on both back ends). Each answers only once what
it wrote is durable, so a read by a professional is answered only once its access-history row is;
keeping them apart means a read never waits behind a deposit's commit (nor a deposit behind a burst
of reads).

Document bytes live as long as a live document names them: a deposit's files are held while its
metadata is in flight, and removed if it is refused, whatever refused it; a delete removes the files
of the versions it deleted unless another live document shares them (:meth:`Store.write_with_bytes`,
:meth:`Store.discard`, ``blobs.ContentHolds``). Storage faults answer 507 (full disk) or 503 with
``Retry-After``, never 500 (``outcomes.storage_fault``).

Before the workers start, :func:`prepare` creates the schema and checks that the data directory
belongs to the database (see :func:`check_data_directory`).

Two implementations, :class:`~record_service.sqlite_store.SqliteStore` and
:class:`~record_service.postgres_store.PostgresStore`, chosen by the ``--db`` URL. SQL is written
once with ``?`` placeholders; the PostgreSQL store translates it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import logging
import os
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from record_service import schema
from record_service.audit_journal import AuditIndexer, JournalWriter
from record_service.blobs import BlobStore, fsync_directory
from record_service.committer import GroupCommitter, WriteTransaction
from record_service.outcomes import as_storage_fault
from record_service.settings import Settings

_log = logging.getLogger("record_service.storage")
T = TypeVar("T")


class Store:
    """Metadata in a database, bytes in a :class:`BlobStore`, writes group-committed."""

    dialect = "abstract"

    def __init__(self, settings: Settings, journal_dir: Path,
                 on_commit: Callable[[int, float], None] | None = None):
        self.settings = settings
        self.blobs = BlobStore(settings.blob_dir)
        self.journal_dir = journal_dir  # the access history's journals
        self._on_commit = on_commit
        self.committer: GroupCommitter | None = None  # the record's writes
        self.journal: JournalWriter | None = None  # access-history rows, into this worker's journal
        self._indexer: AuditIndexer | None = None
        self._background: set[asyncio.Task] = set()  # writes and removals that outlive their request

    async def open(self) -> None:
        raise NotImplementedError

    def _start_writers(self, connect_indexer: Callable[[], WriteTransaction]) -> None:
        """Start this worker's group committer (on a :meth:`connect` connection), its access-history journal
        writer and the journals' indexer (``connect_indexer``: the indexer's connection)."""
        self.committer = GroupCommitter(self.connect, self.settings.max_batch, self._on_commit,
                                        name="record-committer")
        self.committer.start()
        self.journal = JournalWriter(self.journal_dir, self._on_commit)
        self._indexer = AuditIndexer(connect_indexer, self.journal_dir, dialect=self.dialect)
        self._indexer.start()

    async def close(self) -> None:
        if self._background:  # deposits and removals still going: their holds end with them
            await asyncio.wait(list(self._background), timeout=30)
        if self.committer is not None:
            await asyncio.to_thread(self.committer.stop)  # drains its queue; the loop goes on answering
        if self.journal is not None:
            await self.journal.close()
        if self._indexer is not None:  # this worker's journal is finished: index it, then it is deleted
            await asyncio.to_thread(self._indexer.stop)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of a read-only query, seeing everything committed so far."""
        raise NotImplementedError

    def connect(self) -> WriteTransaction:
        """A synchronous connection of its own, for work done before the workers start."""
        raise NotImplementedError

    async def fetch_audit(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of a read-only query on the access history (``audit_events``), once every journal line
        acknowledged so far is indexed."""
        try:
            await asyncio.to_thread(self._indexer.index)
        except Exception as error:  # the history cannot be brought up to date: a fault, not a partial answer
            raise as_storage_fault(error) from error
        return await self._fetch_indexed_audit(sql, params)

    async def _fetch_indexed_audit(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        return await self.fetch(sql, params)

    async def write(self, write: Callable[[WriteTransaction], T]) -> T:
        return await self.committer.write(write)

    async def write_with_bytes(self, write: Callable[[WriteTransaction], T], contents: Mapping[str, bytes],
                               executor: Executor) -> T:
        """Store the files of ``contents`` (SHA-256 in hex -> bytes; fsynced, on ``executor``'s threads), then
        run ``write`` (the metadata naming them) through the group committer; its result once committed.

        A refused request leaves no byte behind, whatever refused it (the write's ServiceError, a storage
        fault, a file that could not be written): the contents are held while the write is in flight, then
        released if it committed, or given to :meth:`discard` if not (removed unless a live document names
        them). Runs to its end even if the caller is cancelled (a client gone away): the write may still
        commit, and the holds must last until it has answered. Errors: the write's ServiceError; a storage
        fault as its 503/507 ServiceError (see ``outcomes.storage_fault``).
        """
        return await self._shielded(self._write_with_bytes(write, contents, executor))

    async def _write_with_bytes(self, write: Callable[[WriteTransaction], T], contents: Mapping[str, bytes],
                                executor: Executor) -> T:
        loop = asyncio.get_running_loop()
        shas = list(contents)
        results = await asyncio.gather(*(loop.run_in_executor(executor, self.blobs.hold, contents[sha], sha)
                                         for sha in shas), return_exceptions=True)
        held = [sha for sha, result in zip(shas, results) if not isinstance(result, BaseException)]
        failure = next((result for result in results if isinstance(result, BaseException)), None)
        if failure is not None:
            await self._discard(held, holding=True)
            raise as_storage_fault(failure) from failure
        try:
            result = await self.write(write)
        except BaseException:
            await self._discard(held, holding=True)
            raise
        for sha in held:
            self.blobs.holds.release(sha)
        return result

    async def _shielded(self, work: Awaitable[T]) -> T:
        """``work`` run to its end whatever happens to the caller (its outcome still retrieved)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that went away does not make it "never retrieved"

    async def discard(self, contents: Sequence[str], holding: bool = False) -> int:
        """Remove the files of ``contents`` that no live document names (see :meth:`_discard`); how many.
        Runs to its end even if the caller is cancelled."""
        return await self._shielded(self._discard(contents, holding))

    async def _discard(self, contents: Sequence[str], holding: bool = False) -> int:
        """Remove the files of ``contents`` (SHA-256 in hex) that no live document names; how many.

        Called with ``holding`` by a refused deposit for the contents it held, and without by a delete once
        it has committed. Safe against deposits of the same bytes, in any worker process: a content is
        removed only by whoever claims it (:meth:`~record_service.blobs.ContentHolds.claim`), which fails
        while a deposit holds it (that deposit either commits a document naming the file, or is refused and
        claims it in turn), and keeps new holders waiting until the removal is over. The claimant asks,
        through the group committer (after every write queued before), which claimed contents a document
        that is not deleted still names, and removes the others' files once that answer has committed. If
        the database cannot answer, the files are kept (the start-up sweep removes them if unnamed).
        """
        claimed = [sha for sha in dict.fromkeys(contents) if self.blobs.holds.claim(sha, holding)]
        if not claimed:
            return 0
        try:
            unnamed = await self.write(_unnamed(claimed))
            await asyncio.to_thread(_remove_files, self.blobs, unnamed)
            return len(unnamed)
        except Exception as error:
            _log.warning("kept %d files of refused or deleted documents (removed at the next start): %s",
                         len(claimed), error)
            return 0
        finally:
            for sha in claimed:
                self.blobs.holds.end_claim(sha)

    async def audit(self, row: tuple) -> None:
        """Append one access-history row; returns once it is committed (durable)."""
        await self.journal.append(row)


def _unnamed(contents: list[str]) -> Callable[[WriteTransaction], list[str]]:
    """A write that answers which of ``contents`` no document that is not deleted names."""
    def write(tx: WriteTransaction) -> list[str]:
        marks = ",".join("?" * len(contents))
        named = {row[0] for row in tx.execute(
            f"SELECT DISTINCT sha256 FROM documents WHERE sha256 IN ({marks}) AND status <> 'deleted'", contents)}
        return [sha for sha in contents if sha not in named]

    return write


def _remove_files(blobs: BlobStore, contents: list[str]) -> None:
    for sha in contents:
        blobs.remove(sha)


def open_store(settings: Settings, on_commit: Callable[[int, float], None] | None = None) -> Store:
    """The store the settings' database URL names (not yet opened)."""
    url = settings.db_url
    if url.startswith("sqlite:///"):
        from record_service.sqlite_store import SqliteStore

        return SqliteStore(settings, on_commit)
    if url.startswith(("postgresql://", "postgres://")):
        from record_service.postgres_store import PostgresStore

        return PostgresStore(settings, on_commit)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://…")


def prepare(settings: Settings) -> "DataDirectoryCheck":
    """Create the data directory, the tables and indexes, then check the files (run once before workers start)."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    BlobStore(settings.blob_dir)
    from record_service.migrations import migrate  # it builds on the registry, which builds on this module

    store = open_store(settings)
    store.create_schema()
    connection = store.connect()
    try:
        migrated = migrate(connection)
    finally:
        connection.close()
    return dataclasses.replace(check_data_directory(store), documents_migrated=migrated)


class DataDirectoryMismatch(Exception):
    """The database names documents whose files are not in the data directory: they do not belong together."""


@dataclass(frozen=True)
class DataDirectoryCheck:
    documents_checked: int
    documents_without_file: int  # a few (fewer than half the sample): damage to report, not a wrong directory
    temporary_files_removed: int
    orphan_files_removed: int
    documents_migrated: int = 0  # written by an older version, given their chains and search values at this start
    files_swept: int = 0  # file names drawn for the orphan sweep (bounded: see check_data_directory)


_SAMPLE = 50  # documents whose files are looked for at start
_LIVE = "status <> 'deleted'"  # a deleted document's file is removed (see Store.discard): it names none
_BATCH = 500  # files asked about per query when sweeping
_SWEEP_FILES = 4096  # file names drawn at start for the orphan sweep (see check_data_directory)
_SWEEP_PER_DIRECTORY = 256  # at most this many of one content directory: 16 directories or more per start


def lock_data_directory(data_dir: str | Path) -> int:
    """Take the data directory for this process (and the workers it forks) until it exits; the descriptor.

    Two services on one directory would each take the other's files for leftovers at start, and delete
    them under deposits in flight: the second one is refused instead.
    """
    path = Path(data_dir) / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise DataDirectoryMismatch(f"{data_dir} is in use by another service (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _tie_to_database(store: Store, connection: WriteTransaction) -> None:
    """Make sure the data directory and the database belong together, by an identity kept in both.

    Refused: two different identities; or one side that has an identity while the other has content of
    its own (documents, files). Otherwise the side without one takes the other's, or both a new one.
    """
    blobs = store.blobs
    marker = Path(store.settings.data_dir) / "store-id"
    in_directory = marker.read_text().strip() if marker.exists() else None
    in_database = next(iter(connection.execute("SELECT id FROM store_identity")), (None,))[0]
    has_files = next(blobs.batches(1), None) is not None
    has_documents = bool(connection.execute("SELECT 1 FROM documents LIMIT 1"))
    where = f"the data directory {store.settings.data_dir} and the database"
    if in_directory and in_database and in_directory != in_database:
        raise DataDirectoryMismatch(f"{where} belong to different stores ({in_directory} and {in_database})")
    if in_database and not in_directory and has_files:
        raise DataDirectoryMismatch(f"{where} do not belong together: the directory holds document files but "
                                    f"not the database's identity ({in_database})")
    if in_directory and not in_database and has_documents:
        raise DataDirectoryMismatch(f"{where} do not belong together: the database holds documents but not the "
                                    f"directory's identity ({in_directory})")
    if not has_documents and has_files and in_directory != in_database:
        raise DataDirectoryMismatch(f"{where} do not belong together: the directory holds document files and the "
                                    "database none (each start removes files no document names: refusing "
                                    "rather than deleting another database's documents)")
    identity = in_database or in_directory or secrets.token_hex(16)
    if in_database is None:
        connection.begin()
        connection.execute("INSERT INTO store_identity (id) VALUES (?)", (identity,))
        connection.commit()
    if in_directory is None:
        temporary = marker.with_name(".store-id.tmp")
        temporary.write_text(identity + "\n")
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, marker)
        fsync_directory(marker.parent)


def check_data_directory(store: Store, rng: random.Random | None = None) -> DataDirectoryCheck:
    """Before any worker runs (so nothing is being deposited): make sure the database and the data directory
    belong together, then remove what failed deposits left behind. Bounded whatever the store holds (a
    billion files cost what a thousand do): a bounded number of queries, files and directories, never a walk.

    - Both carry the same identity (see :func:`_tie_to_database`, which reads at most the first entry of each
      content directory), and a sample of ``_SAMPLE`` stored documents, from a random point of the id index,
      has its files: a database pointed at another service's data directory is refused at start rather than
      answering 500 per read, or losing files to the sweep below. (Sampled, as it always was.)
    - Temporary files are writes that never completed. Every write's temporary file lives in one directory
      (``blobs/.tmp``), which is emptied whole: this guarantee stays total, and costs the writes that were in
      flight when the service stopped (at most workers x blob threads), not the store's size.
    - Files no document names are bytes written for a deposit whose metadata never committed (refused and
      cut short by a crash, or kept because the database could not answer its clean-up) or the bytes of
      deleted documents whose removal was cut short. These are now removed from a random sample of at most
      ``_SWEEP_FILES`` names (``_SWEEP_PER_DIRECTORY`` per content directory, directories in a random order;
      see ``BlobStore.sample``), the whole store when it holds fewer. Sampled, not total, and safe: such a
      file is a complete file that no live document names, so it only wastes its bytes (a read goes through
      the database; a later deposit of the same bytes reuses it, complete by construction); they arise only
      from work cut short (one per deposit or delete in flight at a crash), and each start removes those it
      draws. Temporary files in a content directory (written there by earlier versions) met in the sample
      are removed too.
    """
    blobs = store.blobs
    rng = rng or random.SystemRandom()
    connection = store.connect()
    try:
        _tie_to_database(store, connection)
        start = secrets.token_hex(16)
        sample = connection.execute(f"SELECT id, sha256, size FROM documents WHERE id >= ? AND {_LIVE}"
                                    " ORDER BY id LIMIT ?", (start, _SAMPLE))
        if len(sample) < _SAMPLE:
            sample += connection.execute(f"SELECT id, sha256, size FROM documents WHERE id < ? AND {_LIVE}"
                                         " ORDER BY id LIMIT ?", (start, _SAMPLE - len(sample)))
        missing = [(doc_id, sha256) for doc_id, sha256, size in sample if blobs.size(sha256) != size]
        if len(missing) * 2 > len(sample):  # most of them: the wrong directory, not a few damaged files
            raise DataDirectoryMismatch(
                f"{len(missing)} of {len(sample)} documents checked have no file (or a file of another size) under "
                f"{blobs.root}, e.g. DocumentReference/{missing[0][0]} ({missing[0][1]}): this data directory does "
                "not belong to this database")
        temporary = blobs.remove_all_temporary()
        orphans = 0
        drawn = blobs.sample(_SWEEP_FILES, _SWEEP_PER_DIRECTORY, rng)
        for at in range(0, len(drawn), _BATCH):
            names = drawn[at:at + _BATCH]
            temporary += blobs.remove_temporary(names)
            stored = [name for name in names if not name.startswith(".")]
            if not stored:
                continue
            marks = ",".join("?" * len(stored))
            named = {row[0] for row in connection.execute(
                f"SELECT DISTINCT sha256 FROM documents WHERE sha256 IN ({marks}) AND {_LIVE}", stored)}
            for name in stored:
                if name not in named:
                    blobs.remove(name)
                    orphans += 1
        return DataDirectoryCheck(len(sample), len(missing), temporary, orphans, files_swept=len(drawn))
    finally:
        connection.close()

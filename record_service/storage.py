"""What the app needs from a back end: reads on the event loop, writes through the group committers.

Two group committers per worker: one for the record's writes (deposits, patient controls), one for the
access history's rows. Each answers only after its own commit, so a read by a professional is answered
only once its access-history row is durable; keeping them apart means a read never waits behind a
deposit's commit (nor a deposit behind a burst of reads). On SQLite the access history's "commit" is
an append to the worker's own journal file, indexed into a database file of its own later (see
``audit_journal``); on PostgreSQL it is a transaction on the ``audit_events`` table.

Before the workers start, :func:`prepare` creates the schema and checks that the data directory
belongs to the database (see :func:`check_data_directory`).

Two implementations, :class:`~record_service.sqlite_store.SqliteStore` and
:class:`~record_service.postgres_store.PostgresStore`, chosen by the ``--db`` URL. SQL is written
once with ``?`` placeholders; the PostgreSQL store translates it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from record_service.blobs import BlobStore
from record_service.committer import GroupCommitter, WriteTransaction
from record_service.settings import Settings

T = TypeVar("T")


class Store:
    """Metadata in a database, bytes in a :class:`BlobStore`, writes group-committed."""

    dialect = "abstract"

    def __init__(self, settings: Settings, on_commit: Callable[[int, float], None] | None = None):
        self.settings = settings
        self.blobs = BlobStore(settings.blob_dir)
        self._on_commit = on_commit
        self.committer: GroupCommitter | None = None  # the record's writes
        self.audit_committer: GroupCommitter | None = None  # access-history rows

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        for committer in (self.committer, self.audit_committer):
            if committer is not None:
                committer.stop()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of a read-only query, seeing everything committed so far."""
        raise NotImplementedError

    def connect(self) -> WriteTransaction:
        """A synchronous connection of its own, for work done before the workers start."""
        raise NotImplementedError

    async def fetch_audit(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of a read-only query on the access history (``audit_events``)."""
        return await self.fetch(sql, params)

    async def write(self, write: Callable[[WriteTransaction], T]) -> T:
        return await self.committer.write(write)

    async def audit(self, row: tuple) -> None:
        """Append one access-history row; returns once it is committed (durable)."""
        await self.audit_committer.audit(row)


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
    store = open_store(settings)
    store.create_schema()
    return check_data_directory(store)


class DataDirectoryMismatch(Exception):
    """The database names documents whose files are not in the data directory: they do not belong together."""


@dataclass(frozen=True)
class DataDirectoryCheck:
    documents_checked: int
    temporary_files_removed: int
    orphan_files_removed: int


_SAMPLE = 50  # documents whose files are looked for at start
_BATCH = 500  # files asked about per query when sweeping


def check_data_directory(store: Store) -> DataDirectoryCheck:
    """Before any worker runs (so nothing is being deposited): make sure the database and the data directory
    belong together, then remove what failed deposits left behind.

    - A sample of stored documents, from a random point of the id index, must have their files: a database
      pointed at another service's data directory is refused at start rather than answering 500 per read.
    - Temporary files are writes that never completed; files no document names are bytes written for a
      deposit whose metadata never committed (refused by a concurrent conflict, a storage error, a crash).
      Neither was ever acknowledged, and no request is in flight to claim them, so both are removed.
    """
    blobs = store.blobs
    connection = store.connect()
    try:
        start = secrets.token_hex(16)
        sample = connection.execute("SELECT id, sha256, size FROM documents WHERE id >= ? ORDER BY id LIMIT ?",
                                    (start, _SAMPLE))
        if len(sample) < _SAMPLE:
            sample += connection.execute("SELECT id, sha256, size FROM documents WHERE id < ? ORDER BY id LIMIT ?",
                                         (start, _SAMPLE - len(sample)))
        missing = [(doc_id, sha256) for doc_id, sha256, size in sample if blobs.size(sha256) != size]
        if missing:
            raise DataDirectoryMismatch(
                f"{len(missing)} of {len(sample)} documents checked have no file (or a file of another size) under "
                f"{blobs.root}, e.g. DocumentReference/{missing[0][0]} ({missing[0][1]}): this data directory does "
                "not belong to this database")
        temporary = orphans = 0
        for names in blobs.batches(_BATCH):
            temporary += blobs.remove_temporary(names)
            stored = [name for name in names if not name.startswith(".")]
            if not stored:
                continue
            marks = ",".join("?" * len(stored))
            named = {row[0] for row in connection.execute(f"SELECT DISTINCT sha256 FROM documents WHERE sha256 IN ({marks})",
                                                          stored)}
            for name in stored:
                if name not in named:
                    blobs.remove(name)
                    orphans += 1
        return DataDirectoryCheck(len(sample), temporary, orphans)
    finally:
        connection.close()

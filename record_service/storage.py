"""What the app needs from a back end: reads on the event loop, writes through the group committers.

Two group committers per worker: one for the record's writes (deposits, patient controls), one for the
access history's rows. Each answers only after its own commit, so a read by a professional is answered
only once its access-history row is durable, exactly as before; keeping them apart means a read never
waits behind a deposit's commit (nor a deposit behind a burst of reads), and on SQLite the access
history lives in a database file of its own, so the constant stream of audit rows does not invalidate
the record database's page cache for every read that follows.

Two implementations, :class:`~record_service.sqlite_store.SqliteStore` and
:class:`~record_service.postgres_store.PostgresStore`, chosen by the ``--db`` URL. SQL is written
once with ``?`` placeholders; the PostgreSQL store translates it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def prepare(settings: Settings) -> None:
    """Create the data directory, the tables and indexes (run once before workers start)."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    BlobStore(settings.blob_dir)
    store = open_store(settings)
    store.create_schema()

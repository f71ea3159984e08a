"""What the app needs from a back end: reads on the event loop, writes through the group committer.

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
        self.committer: GroupCommitter | None = None

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        if self.committer is not None:
            self.committer.stop()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of a read-only query, seeing everything committed so far."""
        raise NotImplementedError

    async def write(self, write: Callable[[WriteTransaction], T]) -> T:
        return await self.committer.write(write)

    async def audit(self, row: tuple) -> None:
        await self.committer.audit(row)


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

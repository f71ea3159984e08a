"""The embedded back end: SQLite in WAL mode.

Reads run on the event loop's own connection: an indexed lookup takes tens of microseconds, less
than a hop to a thread pool would. Writes go through the group committer's connection with
``synchronous=FULL``, so a committed transaction survives a power cut, and it costs one fsync per
batch rather than per request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from record_service import schema
from record_service.committer import GroupCommitter
from record_service.storage import Store

_BUSY_TIMEOUT_MS = 10_000


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                 timeout=_BUSY_TIMEOUT_MS / 1000)
    connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache per connection
    connection.execute("PRAGMA mmap_size = 268435456")
    return connection


class _SqliteWriteTransaction:
    """The committer's connection; ``BEGIN IMMEDIATE`` takes the write lock up front (no upgrade deadlocks)."""

    def __init__(self, path: str):
        self._connection = _connect(path)

    def begin(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._connection.execute("COMMIT")

    def rollback(self) -> None:
        if self._connection.in_transaction:
            self._connection.execute("ROLLBACK")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._connection.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._connection.executemany(sql, rows)

    def close(self) -> None:
        self._connection.close()


class SqliteStore(Store):
    dialect = "sqlite"

    def __init__(self, settings, on_commit=None):
        super().__init__(settings, on_commit)
        # sqlite:////abs/path or sqlite:///relative/path, as SQLAlchemy spells them
        self.path = settings.db_url.removeprefix("sqlite:///")
        self._reader: sqlite3.Connection | None = None

    def create_schema(self) -> None:
        connection = _connect(self.path)
        try:
            connection.execute("BEGIN IMMEDIATE")  # one process at a time
            for statement in schema.statements("sqlite"):
                connection.execute(statement)
            connection.execute("COMMIT")
        finally:
            connection.close()

    async def open(self) -> None:
        self.create_schema()
        self._reader = _connect(self.path)
        self._reader.execute("PRAGMA query_only = ON")
        self.committer = GroupCommitter(lambda: _SqliteWriteTransaction(self.path), schema.AUDIT_INSERT,
                                        self.settings.max_batch, self._on_commit)
        self.committer.start()

    async def close(self) -> None:
        await super().close()
        if self._reader is not None:
            self._reader.close()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._reader.execute(sql, params).fetchall()

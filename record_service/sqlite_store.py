"""The embedded back end: SQLite in WAL mode, the record and its access history in two database files.

Reads run on the event loop's own connections: an indexed lookup takes tens of microseconds, less
than a hop to a thread pool would. Reads made close together share one read transaction: the first
opens it and queues the callback that ends it, so it lasts until the loop's next turn. Each statement
on its own took and released the WAL's read lock (a few ``fcntl`` calls), which cost as much as a
lookup by id (measured: 4.5 µs alone, 2.5 µs in a shared transaction). No client can tell: a request
that arrives after the transaction's first read is queued on the loop behind the callback that ends
it, so its own reads see a snapshot taken after it arrived, with everything acknowledged before.

Writes go through the group committer's connection with ``synchronous=FULL``, so a committed
transaction survives a power cut, and it costs one fsync per batch rather than per request.

Professional reads are journaled first (see ``audit_journal``) and indexed into the access history's
database in large batches, rather than committed there one group at a time.

Why the access history has a file of its own (``<name>.audit<ext>`` beside the record database):
every professional read appends a row, so with one file the database changed between any two reads,
and SQLite drops a connection's whole page cache when it sees the file changed: each search then
re-read its index pages (measured: ~85 µs instead of ~30 µs per search). With two files, reads of the
record only see the record change when something is deposited or changed. Each file is consistent
and durable on its own; no transaction spans both (an audit row never needs to commit with a document).

Several worker processes share each file. SQLite serialises their write transactions with a lock
it polls, sleeping 1, 2, 5, 10… ms between tries, so a writer that just missed the lock waited far
longer than the other's commit took. Each write connection therefore first takes an exclusive
``flock`` on a ``.writer-lock`` file beside the database, which the kernel hands to the next waiter
the moment it is released. That lock only orders the waiters: SQLite's own locking still guarantees
correctness (``busy_timeout`` remains for any other connection).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from record_service import schema
from record_service.audit_journal import journal_dir
from record_service.outcomes import as_storage_fault
from record_service.storage import Store

_BUSY_TIMEOUT_MS = 10_000
# Each connection's own page cache (KiB) and memory map (bytes) of its database file: measured by
# bench/db_settings.py on a record of millions of rows (see the README)
CACHE_KIB = 65536
MMAP_BYTES = 268435456


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                 timeout=_BUSY_TIMEOUT_MS / 1000)
    connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    connection.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    return connection


def audit_path(path: str) -> str:
    """The access history's database file beside the record's: ``records.sqlite3`` -> ``records.audit.sqlite3``."""
    base, extension = os.path.splitext(path)
    return f"{base}.audit{extension}"


class _SqliteWriteTransaction:
    """A committer's connection; ``BEGIN IMMEDIATE`` takes the write lock up front (no upgrade deadlocks)."""

    def __init__(self, path: str):
        self._connection = _connect(path)
        self._lock = os.open(f"{path}.writer-lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._locked = False

    def begin(self) -> None:
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # blocks without the GIL; woken as soon as it is free
        self._locked = True
        self._connection.execute("BEGIN IMMEDIATE")

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            self._connection.execute("COMMIT")
        finally:
            self._unlock()

    def rollback(self) -> None:
        try:
            if self._connection.in_transaction:
                self._connection.execute("ROLLBACK")
        finally:
            self._unlock()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._connection.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._connection.executemany(sql, rows)

    def close(self) -> None:
        try:
            self._connection.close()
        finally:
            self._locked = False
            os.close(self._lock)  # releases the flock if still held


def _run_schema(path: str, statements: list[str]) -> None:
    connection = _connect(path)
    try:
        connection.execute("BEGIN IMMEDIATE")  # one process at a time
        for statement in statements:
            try:
                connection.execute(statement)
            except sqlite3.OperationalError as error:  # a column an older database already has
                if schema.IF_MISSING not in statement or "duplicate column" not in str(error):
                    raise
        connection.execute("COMMIT")
    finally:
        connection.close()


def _move_legacy_audit(path: str, audit: str) -> None:
    """Data directories from before the split kept ``audit_events`` in the record file: move its rows over."""
    connection = _connect(path)
    try:
        if not connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'"
                                  ).fetchall():
            return
        connection.execute("ATTACH DATABASE ? AS audit", (audit,))
        connection.execute("BEGIN IMMEDIATE")
        if connection.execute("SELECT 1 FROM main.sqlite_master WHERE name = 'audit_events'").fetchall():
            connection.execute("INSERT OR IGNORE INTO audit.audit_events SELECT * FROM main.audit_events")
            connection.execute("DROP TABLE main.audit_events")
        connection.execute("COMMIT")
    finally:
        connection.close()


class SqliteStore(Store):
    dialect = "sqlite"

    def __init__(self, settings, on_commit=None):
        # sqlite:////abs/path or sqlite:///relative/path, as SQLAlchemy spells them
        self.path = settings.db_url.removeprefix("sqlite:///")
        self.audit_path = audit_path(self.path)
        super().__init__(settings, journal_dir(self.audit_path), on_commit)
        self._reader: sqlite3.Connection | None = None
        self._audit_reader: sqlite3.Connection | None = None
        self._reading = False

    def create_schema(self) -> None:
        _run_schema(self.path, schema.record_statements("sqlite"))
        _run_schema(self.audit_path, schema.audit_statements("sqlite"))
        _move_legacy_audit(self.path, self.audit_path)

    def connect(self) -> _SqliteWriteTransaction:
        return _SqliteWriteTransaction(self.path)

    async def open(self) -> None:
        self.create_schema()
        self._reader = _connect(self.path)
        self._reader.execute("PRAGMA query_only = ON")
        self._audit_reader = _connect(self.audit_path)
        self._audit_reader.execute("PRAGMA query_only = ON")
        self._start_writers(lambda: _SqliteWriteTransaction(self.audit_path))

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            for reader in (self._reader, self._audit_reader):
                if reader is not None:
                    reader.close()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of ``sql``; a storage fault (I/O error, locked too long) raises its 503 ServiceError."""
        try:
            if not self._reading:
                self._reader.execute("BEGIN")
                self._reading = True
                asyncio.get_running_loop().call_soon(self._end_read)
            return self._reader.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise as_storage_fault(error) from error

    def _end_read(self) -> None:
        self._reading = False
        try:
            self._reader.execute("COMMIT")
        except sqlite3.Error:  # a read transaction has nothing to lose: make sure it is over
            if self._reader.in_transaction:
                self._reader.execute("ROLLBACK")

    async def _fetch_indexed_audit(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        try:
            return self._audit_reader.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise as_storage_fault(error) from error
